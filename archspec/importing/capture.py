"""`archspec import`, stage 1: build the user's PyTorch model and trace it with torch.fx,
keeping the module hierarchy (each traced node knows the module path it ran in) and the
constructor arguments of every module (what a block's parameters are named after).

Importing runs the model's own code: that is what the user asks for by naming it.
Nothing else is run, and tracing never calls the model on data-dependent branches: a
branch on a traced value is refused, located at the line that takes it.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archspec.errors import Pos, SpecError, shorten
from archspec.load import parse_scalar


@dataclass
class Captured:
    """A traced model: the module, its fx graph and each module's constructor arguments."""

    model: Any  # torch.nn.Module
    graph: Any  # torch.fx.Graph
    init_args: dict[int, dict[str, Any]]  # id(module) -> its constructor's bound arguments
    target: str


def load_model(target: str, args: tuple[str, ...]) -> tuple[Any, dict[int, dict[str, Any]]]:
    """Call TARGET (`package.module:callable` or `path/file.py:callable`) with `args`
    (YAML scalars; `name=value` for keywords); record every module's constructor args."""
    import torch

    source, sep, name = target.rpartition(":")
    if not sep or not source or not name:
        raise SpecError.at(Pos("TARGET"), f"expected MODULE:CALLABLE, got `{shorten(target)}`")
    factory = _resolve(_import(source), name, target)
    positional, keywords = _arguments(args)
    with _recording_init_args() as init_args:
        try:
            model = factory(*positional, **keywords)
        except Exception as exc:  # the user's code failed: say where, as Python would
            raise SpecError([_located(exc, f"{target}(...) failed")]) from None
    if not isinstance(model, torch.nn.Module):
        raise SpecError.at(
            Pos("TARGET"), f"`{shorten(target)}` returned {type(model).__name__}, not an nn.Module"
        )
    return model.eval(), init_args


def trace(
    model: Any, init_args: dict[int, dict[str, Any]], target: str, input_shape: tuple[int, ...]
) -> Captured:
    """The model's fx graph, traced beside a real run on an input of `input_shape`: every
    node knows its value (`node.meta["value"]`), and shapes read in forward (`x.shape`,
    `x.size(1)`) are the run's numbers, so shape arithmetic never enters the graph. A
    branch on a tensor's value is a located error."""
    import torch

    from archspec.importing.tracer import ConcreteTracer

    tracer = ConcreteTracer(torch.randn(2, *input_shape))
    tracer.record_stack_traces = True
    try:
        with torch.no_grad():
            graph = tracer.trace(model)
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "control flow" in message or "iterate" in message:
            message = (
                "data-dependent control flow: this line branches (or loops) on a tensor's "
                "value, which a spec cannot express"
            )
        raise SpecError([_located(exc, message)]) from None
    return Captured(model, graph, init_args, target)


def _import(source: str):
    if source.endswith(".py"):
        path = Path(source)
        if not path.is_file():
            raise SpecError.at(Pos(source), "no such file")
        spec = importlib.util.spec_from_file_location(f"archspec_import_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses and pickling look modules up by name
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise SpecError([_located(exc, f"importing {path.name} failed")]) from None
        return module
    try:
        return importlib.import_module(source)
    except Exception as exc:
        raise SpecError.at(Pos("TARGET"), f"cannot import `{shorten(source)}`: {exc}") from None


def _resolve(module, name: str, target: str):
    value = module
    for part in name.split("."):
        if not hasattr(value, part):
            raise SpecError.at(Pos("TARGET"), f"`{shorten(target)}`: no `{shorten(part)}` there")
        value = getattr(value, part)
    if not callable(value):
        raise SpecError.at(Pos("TARGET"), f"`{shorten(target)}` is not callable")
    return value


def _arguments(args: tuple[str, ...]) -> tuple[list[Any], dict[str, Any]]:
    positional: list[Any] = []
    keywords: dict[str, Any] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if sep and key.isidentifier():
            keywords[key] = parse_scalar(value, "--args")
        elif keywords:
            raise SpecError.at(Pos("--args"), f"`{shorten(arg)}`: positional after keyword")
        else:
            positional.append(parse_scalar(arg, "--args"))
    return positional, keywords


@contextmanager
def _recording_init_args() -> Iterator[Recorded]:
    """Record the arguments every nn.Module's own `__init__` is called with (the outermost
    call per module: a subclass's, not its bases'), and the ints it computed by the time
    it returns (`width = planes * ...`), without changing any class."""
    import torch

    found = Recorded()
    frames: dict[int, Any] = {}  # id(module) -> its outermost __init__ frame
    alive: list = []  # every module met, held so no id is reused while recording
    module_type = torch.nn.Module

    def profile(frame, event, arg):
        if frame.f_code.co_name != "__init__" or event not in ("call", "return"):
            return
        self = frame.f_locals.get("self")
        if not isinstance(self, module_type):
            return
        if event == "return":
            if frames.get(id(self)) is frame:
                named = found[id(self)]
                found.locals[id(self)] = {
                    k: v
                    for k, v in frame.f_locals.items()
                    if type(v) is int and k not in named and k.isidentifier()
                }
            return
        if id(self) not in found:
            info = inspect.getargvalues(frame)
            values = {n: info.locals[n] for n in info.args[1:] if n in info.locals}
            if info.keywords:
                values.update(info.locals.get(info.keywords) or {})
            found[id(self)] = values
            frames[id(self)] = frame
            alive.append(self)

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield found
    finally:
        sys.setprofile(previous)


class Recorded(dict):
    """Constructor arguments by id(module); `locals`: the ints each `__init__` computed."""

    def __init__(self):
        super().__init__()
        self.locals: dict[int, dict[str, int]] = {}


def _located(exc: BaseException, message: str):
    """A diagnostic at the innermost line of user code in the exception's traceback (not
    torch's, not archspec's)."""
    from archspec.errors import Diagnostic

    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if not is_library(f.filename)]
    frame = own[-1] if own else (frames[-1] if frames else None)
    if frame is None:
        return Diagnostic(Pos("TARGET"), message)
    return Diagnostic(Pos(frame.filename, frame.lineno or 0, (frame.colno or 0) + 1), message)


def is_library(filename: str) -> bool:
    """torch's and archspec's own frames: an error is located in the code that called them."""
    import torch

    import archspec

    roots = (Path(torch.__file__).parent, Path(archspec.__file__).parent)
    path = Path(filename)
    return filename.startswith("<") or any(path.is_relative_to(root) for root in roots)
