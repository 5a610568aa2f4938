"""MindSpore runtime for `archspec check` and `archspec convert` (PyNative mode).

Runs inside an archspec worker process that imports no other framework (importing
paddle first breaks MindSpore). Tensors cross the process boundary as NumPy arrays under
MindSpore's own names.
"""

from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import nn

ms.set_context(mode=ms.PYNATIVE_MODE)


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
        if isinstance(cell, nn.Dropout):
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
    """A checkpoint saved with mindspore.save_checkpoint (.ckpt)."""
    return {name: p.asnumpy() for name, p in ms.load_checkpoint(path).items()}


def write_checkpoint(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Save a checkpoint with mindspore.save_checkpoint."""
    ms.save_checkpoint(
        [{"name": k, "data": ms.Tensor(np.array(v))} for k, v in arrays.items()], path
    )
