"""PaddlePaddle runtime for `archspec check` and `archspec convert`.

Runs inside an archspec worker process that imports no other framework. Tensors cross
the process boundary as NumPy arrays under Paddle's own names and layouts.
"""

from __future__ import annotations

import numpy as np
import paddle
from paddle import nn

from archspec.checkpoint import CheckpointError, Opaque, leaf, load_pickle, open_regular, pack

# what a .safetensors file of Paddle names and layouts records as `format`; archspec reads
# and writes .safetensors itself and parses this line, never imports it
SAFETENSORS_FORMAT = "paddle"

# layers of layers.py (copied into generated modules) that are random in training:
# off in the train pass of `archspec check`, as dropout is
RANDOM_LAYERS = ("StochasticDepth",)


def seed(value: int) -> None:
    """Seed the framework's random generator."""
    paddle.seed(value)


def tensors(net: nn.Layer) -> dict[str, np.ndarray]:
    """Every parameter and statistic under its state-dict name."""
    return {k: v.numpy() for k, v in net.state_dict().items()}


def trainable(net: nn.Layer) -> int:
    """The number of trainable values, as the framework counts them."""
    return sum(int(np.prod(p.shape)) for p in net.parameters() if not p.stop_gradient)


def load(net: nn.Layer, arrays: dict[str, np.ndarray]) -> None:
    """Load arrays; Paddle only warns about mismatches, so check them here."""
    missing, unexpected = net.set_state_dict({k: np.array(v) for k, v in arrays.items()})
    if missing or unexpected:
        raise ValueError(f"missing {missing}, unexpected {unexpected}")
    for name, value in net.state_dict().items():
        if not np.array_equal(value.numpy(), arrays[name]):
            raise ValueError(f"{name} was not loaded")


def run(net: nn.Layer, x: np.ndarray, probe: np.ndarray) -> dict[str, np.ndarray]:
    """Eval output and every leaf layer's output; train output and gradients."""
    out: dict[str, np.ndarray] = {}
    hooks = [
        layer.register_forward_post_hook(_recorder(out, name))
        for name, layer in net.named_sublayers()
        if not layer.sublayers()
    ]
    net.eval()
    _forward_backward(net, x, probe, out, "eval", "grad")
    for hook in hooks:
        hook.remove()
    net.train()
    for layer in net.sublayers():
        if isinstance(layer, nn.Dropout) or type(layer).__name__ in RANDOM_LAYERS:
            layer.eval()
    _forward_backward(net, x, probe, out, "train", "train_grad")
    return out


def _forward_backward(net, x, probe, out, name: str, grad: str) -> None:
    net.clear_gradients()
    inputs = paddle.to_tensor(x, stop_gradient=False)
    result = net(inputs)
    (result * paddle.to_tensor(probe)).sum().backward()
    out[name] = result.numpy()
    out[f"{grad}:input"] = inputs.grad.numpy()
    for key, param in net.named_parameters():
        if not param.stop_gradient:  # BN statistics are parameters too, without gradients
            # a weight off the path to the output gets no gradient
            g = param.grad if param.grad is not None else paddle.zeros_like(param)
            out[f"{grad}:{key}"] = g.numpy()


def _recorder(out: dict, name: str):
    def hook(layer, args, result):
        out[f"layer:{name}"] = result.numpy().copy()

    return hook


def read_checkpoint(path: str) -> dict[str, np.ndarray]:
    """A checkpoint saved with paddle.save (.pdparams): a pickle of NumPy arrays.

    Read by archspec's restricted unpickler, never by paddle.load (plain pickle: it runs
    whatever code the file names). Returns the whole tree packed for archspec, which finds
    the state dict in it. Paddle keeps bfloat16 tensors as their uint16 bits (it has no
    uint16 dtype): they become float32, exactly.
    """
    with open_regular(path) as file:
        state = load_pickle(file, ".pdparams")
    return pack(_tree(state, 0))


def _tree(obj, depth: int):
    if isinstance(obj, np.ndarray):
        return _leaf(obj)
    if _is_tensor_tuple(obj):
        return _leaf(obj[1])
    if depth > 64:
        return Opaque("a structure nested too deeply")
    if isinstance(obj, dict):
        obj = dict(obj)
        obj.pop("StructuredToParameterName@@", None)  # paddle.save's table of internal names
        _join_slices(obj)
        return {k: _tree(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_tree(v, depth + 1) for v in obj]
    return obj


def _is_tensor_tuple(obj) -> bool:
    """paddle.save keeps a tensor outside a state dict as (name, array)."""
    return (
        isinstance(obj, tuple)
        and len(obj) == 2
        and isinstance(obj[0], str)
        and isinstance(obj[1], np.ndarray)
    )


def _join_slices(state: dict) -> None:
    """paddle.save (protocols 2 and 3) splits arrays over 1 GB into slices: join them."""
    info = state.pop("UnpackBigParamInfor@@", None)  # typos: disable-line
    if info is None:
        return
    try:
        for key, value in info.items():
            parts = [state.pop(part) for part in value["slices"]]
            state[key] = np.concatenate(parts).reshape(value["OriginShape"])
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"slices of a large tensor do not fit together ({exc})") from None


def _leaf(array: np.ndarray):
    if array.dtype == np.uint16:
        return leaf((array.astype(np.uint32) << 16).view(np.float32), "bfloat16")
    return leaf(array)


def write_checkpoint(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Save a state dict with paddle.save."""
    paddle.save({k: paddle.to_tensor(np.array(v)) for k, v in arrays.items()}, path)
