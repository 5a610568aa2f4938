"""MindSpore runtime for `archspec check` and `archspec convert` (PyNative mode).

Runs inside an archspec worker process that imports no other framework (importing
paddle first breaks MindSpore). Tensors cross the process boundary as NumPy arrays under
MindSpore's own names.
"""

from __future__ import annotations

import itertools
import math
import os
import shutil
import tempfile

import mindspore as ms
import numpy as np
from mindspore import nn

from archspec.checkpoint import CheckpointError, Opaque, leaf, open_regular, pack

# what a .safetensors file of MindSpore names records as `format`; archspec reads and
# writes .safetensors itself and parses this line, never imports it
SAFETENSORS_FORMAT = "mindspore"

ms.set_context(mode=ms.PYNATIVE_MODE)

# layers of layers.py (copied into generated modules) that are random in training:
# off in the train pass of `archspec check`, as dropout is
RANDOM_LAYERS = ("StochasticDepth",)


def seed(value: int) -> None:
    """Seed the framework's random generator."""
    ms.set_seed(value)


def tensors(net: nn.Cell) -> dict[str, np.ndarray]:
    """Every parameter (statistics included) under its parameter name."""
    return {name: p.asnumpy() for name, p in net.parameters_dict().items()}


def trainable(net: nn.Cell) -> int:
    """The number of trainable values, as the framework counts them."""
    return sum(int(np.prod(p.shape)) for p in net.trainable_params())


def load(net: nn.Cell, arrays: dict[str, np.ndarray]) -> None:
    """Load arrays; MindSpore returns what it skipped instead of raising."""
    params = {k: ms.Parameter(ms.Tensor(np.array(v)), name=k) for k, v in arrays.items()}
    skipped, unused = ms.load_param_into_net(net, params, strict_load=True)
    if skipped or unused:
        raise ValueError(f"not loaded {skipped}, not used {unused}")


def run(net: nn.Cell, x: np.ndarray, probe: np.ndarray) -> dict[str, np.ndarray]:
    """Eval output and every leaf cell's output; train output and gradients."""
    out: dict[str, np.ndarray] = {}
    hooks = [
        cell.register_forward_hook(_recorder(out, name))
        for name, cell in net.cells_and_names()
        if name and not cell.cells()
    ]
    net.set_train(False)
    out["eval"] = net(ms.Tensor(x)).asnumpy()
    for hook in hooks:
        hook.remove()
    _gradients(net, x, probe, out, "grad")
    net.set_train(True)
    for _, cell in net.cells_and_names():
        if isinstance(cell, nn.Dropout) or type(cell).__name__ in RANDOM_LAYERS:
            cell.set_train(False)
    out["train"] = net(ms.Tensor(x)).asnumpy()  # batch statistics: the same at every step
    _gradients(net, x, probe, out, "train_grad")
    net.set_train(False)
    return out


def _gradients(net, x, probe, out, grad: str) -> None:
    weights = net.trainable_params()
    probe_t = ms.Tensor(probe)

    def loss(inputs):
        return (net(inputs) * probe_t).sum()

    _, (grad_input, grad_weights) = ms.value_and_grad(loss, 0, weights)(ms.Tensor(x))
    out[f"{grad}:input"] = grad_input.asnumpy()
    for param, value in zip(weights, grad_weights, strict=True):
        out[f"{grad}:{param.name}"] = value.asnumpy()


def _recorder(out: dict, name: str):
    def hook(cell, args, result):
        out[f"layer:{name}"] = result.asnumpy().copy()

    return hook


def read_checkpoint(path: str) -> dict[str, np.ndarray]:
    """A checkpoint saved with mindspore.save_checkpoint (.ckpt): a protobuf, read here.

    Nothing is unpickled. Unlike ms.load_checkpoint, which zero-pads a tensor whose bytes
    are fewer than its shape needs, every tensor's byte count must match its shape. Tensors
    split over several records (large ones) are joined; bfloat16 becomes float32, exactly.
    """
    from google.protobuf.message import DecodeError
    from mindspore.train.checkpoint_pb2 import Checkpoint

    with open_regular(path) as file:
        data = file.read()
    if data[-17:-10] == b"crc_num":  # save_checkpoint(crc_check=True) appends a checksum
        data = data[:-17]
    proto = Checkpoint()
    try:
        proto.ParseFromString(data)
    except (DecodeError, ValueError) as exc:
        raise CheckpointError(f"not a MindSpore checkpoint: cannot parse it ({exc})") from None
    if not proto.value:
        raise CheckpointError("not a MindSpore checkpoint: it holds no tensors")
    tree = {}
    for tag, records in itertools.groupby(proto.value, key=lambda record: record.tag):
        if tag in tree:
            raise CheckpointError(f"`{tag}` appears twice")
        tree[tag] = _tensor(tag, list(records))
    return pack(tree)


# MindSpore's tensor types; bfloat16 is read as its bits
_TYPES = {
    "Int8": np.int8,
    "UInt8": np.uint8,
    "Int16": np.int16,
    "UInt16": np.uint16,
    "Int32": np.int32,
    "UInt32": np.uint32,
    "Int64": np.int64,
    "UInt64": np.uint64,
    "Float16": np.float16,
    "Float32": np.float32,
    "Float64": np.float64,
    "Bool": np.bool_,
    "BFloat16": np.uint16,
}


def _tensor(tag: str, records: list):
    if not all(record.HasField("tensor") for record in records):
        return Opaque("a map parameter")
    first = records[0].tensor
    kind, dims = first.tensor_type, list(first.dims)
    if any(r.tensor.tensor_type != kind or list(r.tensor.dims) != dims for r in records):
        raise CheckpointError(f"`{tag}`: its records disagree on type or shape")
    if kind == "str":
        return Opaque("a string")
    if kind not in _TYPES:
        return Opaque(f"a tensor of {kind}")
    data = b"".join(record.tensor.tensor_content for record in records)
    dtype = np.dtype(_TYPES[kind])
    shape = () if dims == [0] and len(data) == dtype.itemsize else tuple(dims)
    if any(d < 0 for d in shape):
        raise CheckpointError(f"`{tag}`: negative size in its shape {dims}")
    need = math.prod(shape) * dtype.itemsize
    if len(data) != need:
        declared = "x".join(map(str, shape)) or "scalar"
        raise CheckpointError(
            f"`{tag}` declares {declared} {kind} ({need} bytes) but holds {len(data)} bytes"
        )
    array = np.frombuffer(data, dtype).reshape(shape)
    if kind == "BFloat16":
        return leaf((array.astype(np.uint32) << 16).view(np.float32), "bfloat16")
    return leaf(array)


def write_checkpoint(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Save a checkpoint with mindspore.save_checkpoint, to exactly `path`.

    MindSpore appends `.ckpt` to a name without it and writes through names of its own
    beside it (`NAME.tmp`), so it writes into a private folder and the file is moved.
    """
    folder = tempfile.mkdtemp(prefix=".archspec-", dir=os.path.dirname(os.path.abspath(path)))
    try:
        staged = os.path.join(folder, "checkpoint.ckpt")
        ms.save_checkpoint(
            [{"name": k, "data": ms.Tensor(np.array(v))} for k, v in arrays.items()], staged
        )
        os.replace(staged, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
