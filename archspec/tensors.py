"""Tensor names and layouts across frameworks, from the IR and each backend's table.

The canonical form of a network's weights is a mapping from spec names (`layer1.0.bn1.
running_var`: module path plus PyTorch's tensor name) to arrays in PyTorch's layout. A
backend's table says how its framework names and lays out the same tensors (MindSpore's
`gamma`, Paddle's (in, out) linear weight); nothing here names a framework.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from archspec.backend import Backend
from archspec.errors import Pos, SpecError
from archspec.ir import Graph
from archspec.ops import OPS


@dataclass(frozen=True)
class TensorMap:
    """One tensor: its spec name, its framework name, its layout and shape (spec layout)."""

    canonical: str
    native: str
    transposed: bool
    shape: tuple[int, ...]
    trainable: bool
    constant: bool = False  # a constant buffer of its own (an index): kept as it is, integer


def tensor_maps(graph: Graph, backend: Backend) -> list[TensorMap]:
    """Every weight and statistic of a bound network, in state-dict order.

    That is graph order, except that a learnable tensor of its own (`parameter`, named by
    its node's path) comes before the layers of the module holding it, as a module's own
    parameters come before its children's in every framework.
    """
    maps: list[TensorMap] = []
    own: dict[str, int] = {}  # module path -> its own tensors placed so far
    for node in graph.nodes:
        if OPS[node.op].source:
            (shape,) = (node.buffers if OPS[node.op].buffer else node.params).values()
            parent = node.path.rpartition(".")[0]
            prefix = f"{parent}." if parent else ""
            first = next((k for k, m in enumerate(maps) if m.canonical.startswith(prefix)), None)
            at = len(maps) if first is None else first + own.get(parent, 0)
            const = OPS[node.op].buffer
            maps.insert(at, TensorMap(node.path, node.path, False, shape, not const, const))
            own[parent] = own.get(parent, 0) + 1
            continue
        table = backend.spec.ops.get(node.op)
        names = table.tensors if table else {}
        transposed = set(table.transposed) if table else set()
        for tensors, trainable in ((node.params, True), (node.buffers, False)):
            for tensor, shape in tensors.items():
                maps.append(
                    TensorMap(
                        f"{node.path}.{tensor}",
                        f"{node.path}.{names.get(tensor, tensor)}",
                        tensor in transposed,
                        shape,
                        trainable,
                    )
                )
    return maps


def extras(graph: Graph, backend: Backend) -> dict[str, int]:
    """Framework-only state a checkpoint carries (PyTorch's num_batches_tracked)."""
    out = {}
    for node in graph.nodes:
        table = backend.spec.ops.get(node.op)
        for name, value in (table.extra if table else {}).items():
            out[f"{node.path}.{name}"] = value
    return out


def to_native(arrays: dict, graph: Graph, backend: Backend) -> dict:
    """Canonical arrays -> this framework's names and layouts (plus its extra state)."""
    import numpy as np

    out = {}
    for m in tensor_maps(graph, backend):
        value = arrays[m.canonical]
        out[m.native] = np.ascontiguousarray(value.T) if m.transposed else value
    for name, value in extras(graph, backend).items():
        out[name] = np.asarray(value, dtype=np.int64)
    return out


def from_native(
    arrays: dict,
    graph: Graph,
    backend: Backend,
    source: str,
    dtypes: dict[str, str] | None = None,
    notes: list[str] | None = None,
) -> dict:
    """A framework's arrays -> canonical float32, refusing anything that does not fit the spec.

    Floating-point tensors of another precision (float64, float16, bfloat16: `dtypes` names
    the framework's dtype where the array holds another) become float32, and `notes` says
    how many; integer, boolean and complex weights are refused, as are missing, unexpected
    and wrongly shaped tensors. Framework-only state (`extras`) is accepted and dropped.
    """
    import numpy as np

    maps = tensor_maps(graph, backend)
    known = {m.native for m in maps} | set(extras(graph, backend))
    missing = [m.native for m in maps if m.native not in arrays]
    unexpected = sorted(k for k in arrays if k not in known)
    wrong, bad_dtype, converted = [], [], Counter()
    out = {}
    for m in maps:
        if m.native not in arrays:
            continue
        value = np.asarray(arrays[m.native])
        want = tuple(reversed(m.shape)) if m.transposed else m.shape
        if tuple(value.shape) != want:
            wrong.append(f"{m.native}: expected {_fmt(want)}, got {_fmt(value.shape)}")
            continue
        origin = (dtypes or {}).get(m.native, value.dtype.name)
        if m.constant:  # an index: integers, kept as int64
            if value.dtype.kind not in "iu":
                bad_dtype.append(f"{m.native}: expected integers, got {origin}")
            else:
                out[m.canonical] = value.astype(np.int64)
            continue
        value, problem = _as_float32(value, origin)
        if problem:
            bad_dtype.append(f"{m.native}: {problem}")
            continue
        if origin != "float32":
            converted[origin] += 1
        out[m.canonical] = np.ascontiguousarray(value.T) if m.transposed else value
    problems = {"missing": missing, "unexpected": unexpected, "wrong shape": wrong}
    _refuse(source, {**problems, "wrong dtype": bad_dtype})
    if notes is not None:
        for origin, count in sorted(converted.items()):
            plural = "s" if count != 1 else ""
            notes.append(f"converted {count} tensor{plural} from {origin} to float32")
    return out


def _as_float32(value, origin: str):
    """(float32 array, None), or (None, why not) for integer, boolean, complex weights."""
    import numpy as np

    if value.dtype.kind != "f":
        return None, f"expected floating point, got {origin}"
    if value.dtype == np.float32:
        return value, None
    with np.errstate(over="ignore"):
        out = value.astype(np.float32)
    if not np.isfinite(out).all() and np.isfinite(value).all():
        return None, f"{origin} values beyond float32's range"
    return out, None


def _refuse(source: str, problems: dict[str, list[str]]) -> None:
    found = []
    for title, items in problems.items():
        if items:
            shown = ", ".join(items[:20]) + (
                f", ... ({len(items)} in all)" if len(items) > 20 else ""
            )
            found.append(f"{title}: {shown}")
    if found:
        raise SpecError.at(Pos(source), "checkpoint does not fit the spec: " + "; ".join(found))


def _fmt(shape) -> str:
    return "x".join(map(str, shape)) or "scalar"
