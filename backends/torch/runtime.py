"""PyTorch runtime for `archspec check` and `archspec convert`.

Runs inside an archspec worker process that imports no other framework. Tensors cross
the process boundary as NumPy arrays under PyTorch's own names.
"""

from __future__ import annotations

import pickle

import numpy as np
import torch
from torch import nn

from archspec.checkpoint import CheckpointError, Opaque, leaf, open_regular, pack

# what a .safetensors file of PyTorch names records as `format` (Hugging Face writes "pt");
# archspec reads and writes .safetensors itself and parses this line, never imports it
SAFETENSORS_FORMAT = "pt"

# layers of layers.py (copied into generated modules) that are random in training:
# off in the train pass of `archspec check`, as dropout is
RANDOM_LAYERS = ("StochasticDepth",)


def seed(value: int) -> None:
    """Seed the framework's random generator."""
    torch.manual_seed(value)


def tensors(net: nn.Module) -> dict[str, np.ndarray]:
    """Every parameter and buffer under its state-dict name."""
    return {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}


def trainable(net: nn.Module) -> int:
    """The number of trainable values, as the framework counts them."""
    return sum(p.numel() for p in net.parameters() if p.requires_grad)


def load(net: nn.Module, arrays: dict[str, np.ndarray]) -> None:
    """Load arrays with strict name matching."""
    net.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}, strict=True)


def run(net: nn.Module, x: np.ndarray, probe: np.ndarray) -> dict[str, np.ndarray]:
    """Outputs and gradients of sum(output * probe) in eval and train mode.

    Keys: `eval`, `layer:<path>` (every leaf module's eval output), `grad:<name>` (eval),
    `train`, `train_grad:<name>`. Train mode uses batch statistics; dropout and stochastic
    depth stay off (their randomness differs across frameworks).
    """
    out: dict[str, np.ndarray] = {}
    hooks = [
        module.register_forward_hook(_recorder(out, name))
        for name, module in net.named_modules()
        if name and not list(module.children())
    ]
    net.eval()
    _forward_backward(net, x, probe, out, "eval", "grad")
    for hook in hooks:
        hook.remove()
    net.train()
    for module in net.modules():
        if isinstance(module, nn.Dropout) or type(module).__name__ in RANDOM_LAYERS:
            module.eval()
    _forward_backward(net, x, probe, out, "train", "train_grad")
    return out


def run_float64(net: nn.Module, x: np.ndarray, probe: np.ndarray) -> dict[str, np.ndarray]:
    """`run` on a float64 copy: what float32 rounding costs, measured."""
    import copy

    result = run(copy.deepcopy(net).double(), x.astype(np.float64), probe.astype(np.float64))
    return {k: v.astype(np.float64) for k, v in result.items()}


def _forward_backward(net, x, probe, out, name: str, grad: str) -> None:
    net.zero_grad(set_to_none=True)
    inputs = torch.from_numpy(x).requires_grad_(True)
    result = net(inputs)
    (result * torch.from_numpy(probe)).sum().backward()
    out[name] = result.detach().numpy()
    out[f"{grad}:input"] = inputs.grad.numpy()
    for key, param in net.named_parameters():
        # a weight off the path to the output (after a block's `output:`) gets no gradient
        g = param.grad if param.grad is not None else torch.zeros_like(param)
        out[f"{grad}:{key}"] = g.detach().numpy()


def _recorder(out: dict, name: str):
    def hook(module, args, result):
        out[f"layer:{name}"] = result.detach().numpy().copy()

    return hook


def read_checkpoint(path: str) -> dict[str, np.ndarray]:
    """A checkpoint saved with torch.save, read by torch's weights-only unpickler.

    Returns the whole tree (wrappers, optimizer state, epochs) packed for archspec, which
    finds the state dict in it. Tensors are detached; bfloat16 and float8 become float32
    (exactly), keeping their dtype's name.
    """
    with open_regular(path) as file:
        try:
            state = torch.load(file, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise CheckpointError(_refusal(exc)) from None
    return pack(_tree(state, 0))


def _refusal(exc: Exception) -> str:
    """The reason inside torch's long weights-only message, on one line."""
    text = str(exc)
    if "Weights only load failed" not in text:
        return f"corrupt or truncated pickle ({(text.splitlines() or ['?'])[0]})"
    lines = [line.strip() for line in text.splitlines()[1:]]
    kept = [
        line.split("WeightsUnpickler error:", 1)[-1].strip()
        for line in lines
        if line and not line.startswith("Check the documentation")
    ]
    return "refused by PyTorch's weights-only unpickler: " + " ".join(k for k in kept if k)


def _tree(obj, depth: int):
    if isinstance(obj, torch.Tensor):
        return _leaf(obj)
    if depth > 64:
        return Opaque("a structure nested too deeply")
    if isinstance(obj, dict):
        return {k: _tree(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_tree(v, depth + 1) for v in obj]
    return obj


def _leaf(tensor: torch.Tensor):
    name = str(tensor.dtype).removeprefix("torch.")
    if tensor.layout != torch.strided or tensor.is_quantized:
        return Opaque(f"a {str(tensor.layout).removeprefix('torch.')} tensor of {name}")
    tensor = tensor.detach().cpu().resolve_conj().resolve_neg()
    if tensor.is_floating_point() and tensor.dtype not in _NUMPY_FLOATS:
        return leaf(tensor.float().numpy(), name)  # bfloat16, float8: exact in float32
    try:
        return leaf(tensor.numpy(), name)
    except (TypeError, RuntimeError):
        return Opaque(f"a tensor of {name}, which NumPy cannot hold")


_NUMPY_FLOATS = (torch.float16, torch.float32, torch.float64)


def write_checkpoint(path: str, arrays: dict[str, np.ndarray]) -> None:
    """Save a state dict with torch.save."""
    torch.save({k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}, path)
