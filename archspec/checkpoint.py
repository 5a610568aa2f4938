"""Reading checkpoints without trusting them.

A framework's runtime (in its worker) opens a checkpoint with `open_regular` (a FIFO or a
device cannot make it hang), reads it without running anything it carries (`load_pickle`:
a pickle of arrays and containers, nothing else), and turns it into a tree of dicts,
lists, tensors (`Leaf`: an array and the framework's dtype name), plain values and
`Opaque` things, which `pack` flattens into the arrays of the .npz that crosses the process
boundary. archspec `unpack`s the tree and `select_state` finds the state dict in it: under
a training script's wrapper (`state_dict`, `model`, ...), without DataParallel's `module.`
prefix, with training state (epochs, optimizer moments) set aside and said so.

A .safetensors file (a JSON header and raw little-endian bytes: nothing to unpickle) needs
no framework: archspec reads and writes it itself (`read_safetensors`, `write_safetensors`),
with any framework's names and layouts in it. Nothing here names a framework.
"""

from __future__ import annotations

import _compat_pickle
import json
import os
import pickle
import stat
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from archspec.errors import Pos, SpecError

try:
    from numpy._core import multiarray as _multiarray  # NumPy 2 (and 1.26's alias)
except ImportError:  # pragma: no cover - older NumPy
    from numpy.core import multiarray as _multiarray


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message is one line, for the user."""


# -- files -------------------------------------------------------------------------------


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words: `a folder`, `a FIFO`, ..."""
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISLNK, "a symbolic link"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def open_regular(path: str):
    """Open a regular file for reading; anything else is refused without blocking."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise CheckpointError(f"cannot open it: {exc.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise CheckpointError(f"not a regular file ({file_kind(mode)})")
    return os.fdopen(fd, "rb")


# -- a pickle of arrays, and nothing else --------------------------------------------------


class _ArrayType:
    """Stands for `numpy.ndarray` in a pickle: an argument of `_reconstruct`, never called."""

    __slots__ = ()


_ARRAY = _ArrayType()


class _Reconstruct:
    """`numpy.core.multiarray._reconstruct` as ndarray.__reduce__ uses it: an empty array
    that the pickle's BUILD fills (shape, dtype and bytes checked by NumPy)."""

    __slots__ = ()

    def __call__(self, subtype, shape, typecode):
        if subtype is not _ARRAY or not isinstance(shape, tuple) or 0 not in shape:
            raise CheckpointError("corrupt array in the pickle")
        return _multiarray._reconstruct(np.ndarray, (0,), b"b")


class _EvalData:
    """`builtins.eval` exactly as paddle.save pickles a DenseTensor: eval('data', {'data': a})
    is `a`; nothing is evaluated, and any other use is refused."""

    __slots__ = ("kind",)

    def __init__(self, kind: str):
        self.kind = kind

    def __call__(self, source=None, scope=None, *rest):
        if source == "data" and not rest and isinstance(scope, dict) and list(scope) == ["data"]:
            value = scope["data"]
            if isinstance(value, np.ndarray):
                return value
        raise CheckpointError(_refused("builtins.eval", self.kind))


class _Latin1:
    """`_codecs.encode(text, 'latin1')`: how protocol-2 pickles store bytes."""

    __slots__ = ("kind",)

    def __init__(self, kind: str):
        self.kind = kind

    def __call__(self, text=None, encoding=None, *rest):
        if isinstance(text, str) and encoding in ("latin1", "latin-1") and not rest:
            return text.encode("latin-1")
        raise CheckpointError(_refused("_codecs.encode", self.kind))


_SAFE = {
    "builtins.tuple": tuple,
    "builtins.list": list,
    "builtins.dict": dict,
    "builtins.set": set,
    "builtins.frozenset": frozenset,
    "collections.OrderedDict": OrderedDict,
    "numpy.dtype": np.dtype,
    "numpy.ndarray": _ARRAY,
    "numpy.core.multiarray.scalar": _multiarray.scalar,
    "numpy._core.multiarray.scalar": _multiarray.scalar,  # written by NumPy 2
    "numpy.core.multiarray._reconstruct": _Reconstruct(),
    "numpy._core.multiarray._reconstruct": _Reconstruct(),
}
_GUARDED = {"builtins.eval": _EvalData, "_codecs.encode": _Latin1}


def _refused(name: str, kind: str) -> str:
    return f"refused to load `{name}`: a {kind} holds only arrays"


class _Unpickler(pickle.Unpickler):
    """Resolves only the globals a pickle of NumPy arrays and containers needs."""

    def __init__(self, file, kind: str):
        super().__init__(file, encoding="latin1")
        self.kind = kind

    def find_class(self, module: str, name: str) -> Any:
        """Only NumPy's array reconstruction and builtin containers; anything else refused."""
        # Python 2 names, as protocols 0-2 write them (`__builtin__.tuple`); still checked below
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        else:
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        key = f"{module}.{name}"
        if key in _SAFE:
            return _SAFE[key]
        if key in _GUARDED:
            return _GUARDED[key](self.kind)
        raise CheckpointError(_refused(key, self.kind))

    def persistent_load(self, pid: Any) -> Any:
        """Persistent ids point outside the file: never followed."""
        raise CheckpointError(f"refused a persistent reference: a {self.kind} holds only arrays")


def load_pickle(file, kind: str) -> Any:
    """Unpickle NumPy arrays, numbers, strings and containers; refuse every other global.

    No code the pickle names is ever called (`os.system`, `builtins.exec`, a class's
    `__reduce__`): the refusal happens when the name is looked up, before any call, so a
    truncated or otherwise broken pickle is refused the same way.
    """
    try:
        return _Unpickler(file, kind).load()
    except CheckpointError:
        raise
    except RecursionError:
        raise CheckpointError(f"not a {kind}: the pickle is nested too deeply") from None
    except Exception as exc:
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        message = f"not a readable {kind}: truncated or corrupt pickle ({detail})"
        raise CheckpointError(message) from None


# -- the tree a runtime hands over ---------------------------------------------------------


@dataclass(frozen=True)
class Leaf:
    """A tensor read from a checkpoint: its values and the framework's dtype name."""

    array: np.ndarray
    dtype: str


@dataclass(frozen=True)
class Opaque:
    """Something in a checkpoint that is neither a container, a tensor nor a plain value."""

    what: str


class Key(str):
    """A mapping key that was not a string in the checkpoint (an optimizer's 0, 1, ...)."""


def leaf(array, dtype: str | None = None) -> Leaf | Opaque:
    """A tensor, or an Opaque for arrays of objects, strings or records."""
    array = np.asarray(array)
    if array.dtype.kind not in "biufc":
        return Opaque(f"an array of {array.dtype}")
    return Leaf(array, dtype or array.dtype.name)


MANIFEST = "archspec.manifest"
MAX_DEPTH = 64


def pack(tree: Any) -> dict[str, np.ndarray]:
    """A tree of containers, Leafs and values -> flat arrays (plus a JSON manifest)."""
    arrays: dict[str, np.ndarray] = {}
    manifest = _encode(tree, arrays, 0)
    arrays[MANIFEST] = np.array(json.dumps(manifest))
    return arrays


def _encode(node: Any, arrays: dict, depth: int) -> dict:
    if depth > MAX_DEPTH:
        return {"other": "a structure nested too deeply"}
    if isinstance(node, Leaf):
        key = f"archspec.t{len(arrays)}"
        arrays[key] = node.array
        return {"tensor": key, "dtype": node.dtype}
    if isinstance(node, dict):
        return {
            "dict": [
                [
                    k if isinstance(k, str) else repr(k),
                    isinstance(k, str),
                    _encode(v, arrays, depth + 1),
                ]
                for k, v in node.items()
            ]
        }
    if isinstance(node, (list, tuple)):
        return {"list": [_encode(v, arrays, depth + 1) for v in node]}
    if isinstance(node, np.generic) and node.dtype.kind in "biuf":
        node = node.item()
    if node is None or isinstance(node, (bool, int, float, str)):
        return {"value": node}
    return {"other": node.what if isinstance(node, Opaque) else f"a {type(node).__name__}"}


def unpack(arrays: dict[str, np.ndarray]) -> Any:
    """The tree `pack` flattened, with Leafs for tensors and Opaques for the rest."""
    return _decode(json.loads(str(arrays[MANIFEST])), arrays)


def _decode(node: dict, arrays: dict) -> Any:
    if "tensor" in node:
        return Leaf(arrays[node["tensor"]], node["dtype"])
    if "dict" in node:
        return {k if is_str else Key(k): _decode(v, arrays) for k, is_str, v in node["dict"]}
    if "list" in node:
        return [_decode(v, arrays) for v in node["list"]]
    if "value" in node:
        return node["value"]
    return Opaque(node["other"])


def describe(node: Any) -> str:
    """What a tree node is, in words (`a tensor`, `an integer`, `None`, ...)."""
    if isinstance(node, Opaque):
        return node.what
    names = (
        (Leaf, "a tensor"),
        (dict, "a mapping"),
        (list, "a list"),
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a number"),
        (str, "a string"),
    )
    return next((name for kind, name in names if isinstance(node, kind)), "None")


# -- finding the state dict -------------------------------------------------------------------

# keys under which training scripts keep the model's state dict
WRAPPERS = ("state_dict", "model_state_dict", "model_state", "model", "net", "network", "weights")


@dataclass
class State:
    """A checkpoint's state dict: arrays by native name, their dtype names, and what was
    done to find them (for the user)."""

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    dtypes: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def select_state(tree: Any, expected: set[str], source: str) -> State:
    """Find the state dict in a checkpoint's tree.

    `expected` holds the names the spec's tensors have in this framework. The candidates
    are the top level and what sits under a wrapper key (`WRAPPERS`, nested too); each may
    carry one common prefix (`module.`, `_orig_mod.`) that is removed when that makes more
    names fit. The candidate where most names fit wins. Entries that cannot be the spec's
    (not tensors, None, counters without a dot, optimizer slots mirroring the weights) are
    set aside and reported; an expected name that holds something else is an error.
    """
    if not isinstance(tree, dict):
        raise SpecError.at(
            Pos(source),
            f"expected a state dict (names mapped to tensors), found {describe(tree)}",
        )
    views = [_View(path, *_strip(entries, expected)) for path, entries in _candidates(tree, ())]
    best = max(views, key=lambda v: (v.fit(expected), v.tensors(), -len(v.path)))
    state = State()
    if best.path:
        state.notes.append(_unwrapped(tree, best.path))
    if best.prefix:
        state.notes.append(f"removed prefix `{best.prefix}`")
    _take(best.entries, expected, state, source)
    return state


@dataclass
class _View:
    """A candidate state dict: where it sits, its entries (prefix removed), the prefix."""

    path: tuple[str, ...]
    entries: dict
    prefix: str

    def fit(self, expected: set[str]) -> int:
        return _fit(self.entries, expected)

    def tensors(self) -> int:
        return sum(isinstance(v, Leaf) for v in self.entries.values())


def _candidates(node: dict, path: tuple[str, ...]):
    yield path, node
    if len(path) >= 3:
        return
    for key in WRAPPERS:
        if isinstance(node.get(key), dict):
            yield from _candidates(node[key], (*path, key))


def _fit(entries: dict, expected: set[str]) -> int:
    return sum(isinstance(v, Leaf) and k in expected for k, v in entries.items())


def _strip(entries: dict, expected: set[str]) -> tuple[dict, str]:
    """Remove the common leading components of the tensors' names that make most names fit
    (`module.`, `_orig_mod.module.`); none if removing them does not help."""
    best, best_fit, removed = entries, _fit(entries, expected), ""
    current, prefix = entries, ""
    for _ in range(8):
        names = [k for k, v in current.items() if isinstance(v, Leaf) and isinstance(k, str)]
        heads = {k.partition(".")[0] for k in names}
        if len(heads) != 1 or not all("." in k for k in names):
            break
        head = heads.pop() + "."
        renamed = {(k[len(head) :] if k.startswith(head) else k): v for k, v in current.items()}
        if len(renamed) != len(current):
            break
        current, prefix = renamed, prefix + head
        if _fit(current, expected) > best_fit:
            best, best_fit, removed = current, _fit(current, expected), prefix
    return best, removed


def _unwrapped(tree: dict, path: tuple[str, ...]) -> str:
    ignored, node = [], tree
    for depth, key in enumerate(path):
        ignored += ["/".join((*path[:depth], str(k))) for k in node if k != key]
        node = node[key]
    note = f"unwrapped `{'/'.join(path)}`"
    return note + (f" (ignored {_names(ignored)})" if ignored else "")


def _names(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(f"`{n}`" for n in names[:limit])
    return shown + (f", ... ({len(names)} in all)" if len(names) > limit else "")


def _take(entries: dict, expected: set[str], state: State, source: str) -> None:
    """Fill `state` with the tensors; set aside what cannot be the spec's, or refuse."""
    wrong = [
        f"`{k}` is {describe(v)}"
        for k, v in entries.items()
        if k in expected and not isinstance(v, Leaf)
    ]
    if wrong:
        raise SpecError.at(
            Pos(source), f"checkpoint entries that must be tensors are not: {', '.join(wrong)}"
        )
    slots = _optimizer_slots(entries, expected)
    set_aside = []
    for key, value in entries.items():
        weight = key in expected or (_is_weight_name(key) and key.partition(".")[0] not in slots)
        if weight and isinstance(value, Leaf):
            state.arrays[key], state.dtypes[key] = value.array, value.dtype
            continue
        set_aside.append(str(key))
    groups = [f"{slot}.*" for slot in sorted(slots)]
    kept = [k for k in set_aside if k.partition(".")[0] not in slots]
    if kept or groups:
        state.notes.append(f"ignored what is not the network's weights: {_names(kept + groups)}")


def _is_weight_name(key) -> bool:
    """Every tensor of a spec is `module.path.tensor`: a name without a dot is training state."""
    return isinstance(key, str) and not isinstance(key, Key) and "." in key


def _optimizer_slots(entries: dict, expected: set[str]) -> set[str]:
    """Leading components under which every entry mirrors a weight (`moments.conv.weight`)."""
    heads: dict[str, bool] = {}
    modules = {name.partition(".")[0] for name in expected}
    for key, value in entries.items():
        if not _is_weight_name(key) or key in expected:
            continue
        head, _, rest = key.partition(".")
        mirrors = isinstance(value, Leaf) and rest in expected and head not in modules
        heads[head] = heads.get(head, True) and mirrors
    return {head for head, mirrors in heads.items() if mirrors}


# -- safetensors: a JSON header and raw bytes, read and written without a framework ---------

SAFETENSORS = ".safetensors"
MAX_HEADER = 100_000_000  # bytes of JSON header; safetensors' own limit too

# safetensors dtypes NumPy holds as they are (little-endian, as the format stores them)
_ST_NUMPY = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U64": "<u8",
    "U32": "<u4",
    "U16": "<u2",
    "U8": "u1",
    "BOOL": "?",
    "C64": "<c8",
}


def is_safetensors(path: str | os.PathLike) -> bool:
    """Whether a checkpoint's name says safetensors (`.safetensors`, any case)."""
    return Path(path).suffix.lower() == SAFETENSORS


def read_safetensors(path: str) -> tuple[dict[str, Leaf | Opaque], dict[str, str]]:
    """A .safetensors file: its tensors by name (Leafs, or Opaques for dtypes NumPy cannot
    hold) and its metadata (`__metadata__`, text only).

    Nothing is unpickled or run. The header is at most `MAX_HEADER` bytes; safetensors
    checks that it is JSON, that every tensor's offsets lie inside the file, cover it
    without gaps or overlaps and fit its shape and dtype. A name given twice is refused
    (JSON readers disagree on which one wins). bfloat16 and float8 become float32, exactly,
    keeping their dtype's name.
    """
    from safetensors import SafetensorError, deserialize

    with open_regular(path) as file:
        data = file.read()
    _check_header_length(data)
    try:
        views = deserialize(data)
    except SafetensorError as exc:
        _refuse(data, str(exc).strip().removeprefix("Error while deserializing: "))
    header = json.loads(data[8 : 8 + int.from_bytes(data[:8], "little")], object_pairs_hook=_once)
    del data
    metadata = header.get("__metadata__") or {}
    return {name: _st_leaf(view) for name, view in views}, metadata


def _check_header_length(data: bytes) -> None:
    """The first 8 bytes give the header's length: refuse what cannot be one."""
    if len(data) < 8:
        _refuse(data, f"{len(data)} bytes, too short for a header length")
    size = int.from_bytes(data[:8], "little")
    if size > MAX_HEADER:
        _refuse(data, f"its header length ({size} bytes) is over the {MAX_HEADER}-byte limit")
    if 8 + size > len(data):
        _refuse(
            data,
            f"its header length ({size} bytes) runs past the end of the file ({len(data)} bytes)",
        )


def _refuse(data: bytes, detail: str) -> NoReturn:
    """Refuse a file that is not safetensors, saying what it is where that is plain."""
    if data[:4] == b"PK\x03\x04":
        detail = "it is a zip archive"
    elif data[:1] == b"\x80" and data[-1:] == b".":
        detail = "it is a pickle"
    raise CheckpointError(f"not a safetensors file: {detail}")


def _once(pairs: list[tuple[str, Any]]) -> dict:
    """A JSON object whose names are all different."""
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen:
            raise CheckpointError(f"not a safetensors file: `{name}` appears twice in its header")
        seen.add(name)
    return dict(pairs)


def _st_leaf(view: dict) -> Leaf | Opaque:
    kind, shape, data = view["dtype"], tuple(view["shape"]), view["data"]
    if kind in _ST_NUMPY:
        return leaf(np.frombuffer(data, _ST_NUMPY[kind]).reshape(shape))
    if kind == "BF16":
        bits = np.frombuffer(data, "<u2").astype(np.uint32)
        return Leaf((bits << 16).view(np.float32).reshape(shape), "bfloat16")
    bits = np.frombuffer(data, np.uint8)
    if kind == "F8_E5M2":  # the top byte of a float16
        halves = (bits.astype(np.uint16) << 8).view(np.float16)
        return Leaf(halves.astype(np.float32).reshape(shape), "float8_e5m2")
    if kind == "F8_E4M3":  # no infinities; 0x7f and 0xff are NaN
        return Leaf(_e4m3fn()[bits].reshape(shape), "float8_e4m3fn")
    return Opaque(f"a tensor of {kind}")


def _e4m3fn() -> np.ndarray:
    """The 256 values of float8 e4m3fn, as float32."""
    bits = np.arange(256, dtype=np.uint8)
    exp = ((bits >> 3) & 0xF).astype(np.int32)
    man = (bits & 7).astype(np.float64)
    value = np.where(exp == 0, man / 8 * 2.0**-6, (1 + man / 8) * np.exp2(exp - 7))
    value = np.where(bits & 0x80, -value, value)
    return np.where((bits & 0x7F) == 0x7F, np.nan, value).astype(np.float32)


def write_safetensors(path: str, arrays: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Write arrays (each framework's names and layouts, as given) to a .safetensors file."""
    from safetensors.numpy import save_file

    # not np.ascontiguousarray: NumPy 1 makes a scalar (num_batches_tracked) one-dimensional
    dense = {k: np.require(v, requirements="C") for k, v in arrays.items()}
    save_file(dense, path, metadata=metadata)
