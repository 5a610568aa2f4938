"""`archspec import`: an existing PyTorch model becomes a readable spec, proved equal.

Stages, one module each: capture (build and trace the model), lift (calls as
primitives), recover (the module tree as scopes, sequences and block calls), blocks (one
block per class, parameters from what differs), write (the YAML text), prove (the round
trip: the spec's PyTorch module loads the model's state dict strictly and agrees).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from archspec.errors import SpecError


@dataclass
class Imported:
    """The written spec and the model it came from."""

    text: str
    model: Any
    name: str


def import_model(target: str, args: tuple[str, ...], input_shape: tuple[int, ...]) -> Imported:
    """Trace TARGET and recover its spec; every unsupported op is reported at once."""
    from archspec.importing.blocks import BlockWriter
    from archspec.importing.calls import base
    from archspec.importing.capture import load_model, trace
    from archspec.importing.lift import lift
    from archspec.importing.recover import Recoverer, scope_tree, wire
    from archspec.importing.write import network_spec, spec_text

    model, init_args = load_model(target, args)
    captured = trace(model, init_args, target, input_shape)
    lifted, x, output, problems = lift(captured)
    if problems:
        raise SpecError(problems)
    root = scope_tree(model, lifted, problems, target)
    consumers: dict[str, list[str]] = {}
    for item in lifted:
        for value in item.inputs:
            consumers.setdefault(base(value), []).append(item.name)
    wire(root, consumers, output)
    rec = Recoverer(init_args, target)
    rec.problems = problems
    nodes, out = rec.body(root, x)
    writer = BlockWriter(rec)
    blocks = writer.run()
    nodes = writer.materialize(nodes)
    if rec.problems:
        raise SpecError(rec.problems)
    spec = network_spec(type(model), input_shape, blocks, nodes, out, init_args.get(id(model)))
    return Imported(spec_text(spec, target), model, spec["name"])


def save_weights(model: Any, path: str, spec_name: str) -> None:
    """The model's state dict as a .safetensors file with PyTorch's names, for `archspec
    convert --from torch` (written through a temporary file: never half a file)."""
    from pathlib import Path

    from archspec.backend import available
    from archspec.build import write_file
    from archspec.checkpoint import write_safetensors
    from archspec.convert import safetensors_format

    arrays = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    metadata = {"format": safetensors_format(available()["torch"]), "archspec_spec": spec_name}
    write_file(Path(path), lambda tmp: write_safetensors(tmp, arrays, metadata))
