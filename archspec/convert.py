"""`archspec convert`: move a checkpoint between frameworks through the spec's tensor map.

The source framework reads the file (in its own worker process), archspec maps names and
layouts through the spec (refusing a checkpoint that does not fit it, with the list of
missing, unexpected and wrongly shaped tensors), and the target framework writes it.
The output is written to a temporary file and renamed: a failure leaves nothing behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from archspec.backend import Backend
from archspec.errors import Pos, SpecError
from archspec.ir import Graph
from archspec.runner import WorkerError, Workers
from archspec.tensors import from_native, to_native


def convert(graph: Graph, source: Backend, src: Path, target: Backend, dst: Path) -> int:
    """Convert `src` (a `source` checkpoint) into `dst` for `target`; returns tensor count."""
    if not src.is_file():
        raise SpecError.at(Pos(str(src)), "checkpoint not found")
    with Workers() as workers:
        native = workers.path("source.npz")
        try:
            workers[source].call("read_checkpoint", path=str(src.resolve()), out=native)
        except WorkerError as exc:
            reason = str(exc).strip().splitlines()[-1]
            raise SpecError.at(
                Pos(str(src)), f"cannot read a {source.spec.title} checkpoint: {reason}"
            ) from None
        with np.load(native) as data:
            arrays = {k: data[k] for k in data.files}
        canonical = from_native(arrays, graph, source, str(src))
        out = workers.path("target.npz")
        np.savez(out, **to_native(canonical, graph, target))
        dst.parent.mkdir(parents=True, exist_ok=True)
        # the suffix is kept: some frameworks append their own otherwise (.ckpt)
        tmp = dst.with_name(f".{dst.stem}.archspec-tmp{dst.suffix}")
        try:
            workers[target].call("write_checkpoint", arrays=out, path=str(tmp.resolve()))
            os.replace(tmp, dst)
        finally:
            tmp.unlink(missing_ok=True)
        return len(canonical)
