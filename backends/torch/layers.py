"""Small PyTorch layers that torch.nn lacks; generated modules copy the ones they use."""

import math

import torch
from torch import nn
from torch.nn import functional as F


class StochasticDepth(nn.Module):
    """torchvision.ops.StochasticDepth: in training, zero each sample ("row") or the whole
    batch ("batch") with probability p and scale the rest by 1 / (1 - p)."""

    def __init__(self, p, mode="row"):
        super().__init__()
        self.p = p
        self.mode = mode

    def forward(self, x):
        """x itself in eval or at p = 0, else x times the scaled mask."""
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        size = [x.shape[0]] + [1] * (x.ndim - 1) if self.mode == "row" else [1] * x.ndim
        noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(survival)
        if survival > 0.0:
            noise.div_(survival)
        return x * noise

    def extra_repr(self):
        """The arguments, as torchvision prints them."""
        return f"p={self.p}, mode={self.mode}"


def pad_input(x, padding, kernel, stride, dilation, value=0.0):
    """Pad `x` explicitly, ((top, bottom), (left, right)), or by TensorFlow's "same" rule
    for its own height and width: out = ceil(size / stride), the extra unit at the end."""
    if padding == "same":
        padding = []
        for size, k, s, d in zip(x.shape[-2:], kernel, stride, dilation, strict=True):
            total = max((-(-size // s) - 1) * s + d * (k - 1) + 1 - size, 0)
            padding.append((total // 2, total - total // 2))
    (top, bottom), (left, right) = padding
    return F.pad(x, (left, right, top, bottom), value=value)


def as_pair(value):
    """(v, v) for an int, else the pair as a tuple."""
    return (value, value) if isinstance(value, int) else tuple(value)


class PaddedConv2d(nn.Conv2d):
    """nn.Conv2d padded in forward: "same" (TensorFlow's rule, for any input size and
    stride) or ((top, bottom), (left, right)). Its tensors are nn.Conv2d's."""

    def __init__(self, *args, padding, **kwargs):
        super().__init__(*args, **kwargs)
        self.pads = padding

    def forward(self, x):
        """Pad, then convolve without padding."""
        x = pad_input(x, self.pads, self.kernel_size, self.stride, self.dilation)
        return self._conv_forward(x, self.weight, self.bias)


class PaddedMaxPool2d(nn.MaxPool2d):
    """nn.MaxPool2d padded with -inf in forward: "same" or ((top, bottom), (left, right))."""

    def __init__(self, kernel_size, stride=None, *, padding, dilation=1):
        super().__init__(kernel_size, stride, dilation=dilation)
        self.pads = padding

    def forward(self, x):
        """Pad with -inf, then pool without padding."""
        k, s, d = as_pair(self.kernel_size), as_pair(self.stride), as_pair(self.dilation)
        x = pad_input(x, self.pads, k, s, d, value=-math.inf)
        return F.max_pool2d(x, k, s, dilation=d)


class PaddedAvgPool2d(nn.AvgPool2d):
    """nn.AvgPool2d padded with zeros in forward. "same" leaves its padding out of the
    average (TensorFlow's rule); explicit ((top, bottom), (left, right)) padding counts
    unless count_include_pad=False."""

    def __init__(self, kernel_size, stride=None, *, padding, count_include_pad=True):
        super().__init__(kernel_size, stride, count_include_pad=count_include_pad)
        self.pads = padding

    def forward(self, x):
        """Pad with zeros and pool; divide by the unpadded count unless padding counts."""
        k, s = as_pair(self.kernel_size), as_pair(self.stride)
        out = F.avg_pool2d(pad_input(x, self.pads, k, s, (1, 1)), k, s)
        if self.count_include_pad and self.pads != "same":
            return out
        ones = torch.ones_like(x[:1, :1])
        return out / F.avg_pool2d(pad_input(ones, self.pads, k, s, (1, 1)), k, s)


class Permute(nn.Module):
    """Reorder the axes of each sample (`dims` per sample, as in the spec); the batch stays
    first: `Permute((1, 2, 0))` turns N x C x H x W into N x H x W x C."""

    def __init__(self, dims):
        super().__init__()
        self.dims = [0, *(d + 1 for d in dims)]

    def forward(self, x):
        """Permute each sample of the batch."""
        return x.permute(self.dims)


class Reshape(nn.Module):
    """View each sample with a new shape (one size may be -1); the batch is kept."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        """Reshape each sample of the batch."""
        return x.reshape(x.shape[0], *self.shape)


class LayerNorm2d(nn.Module):
    """torchvision's LayerNorm2d: layer norm over the channels of each pixel of an
    N x C x H x W map, with a weight and a bias per channel."""

    def __init__(self, num_channels, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x):
        """Channels last, normalised over them, channels first again."""
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)

    def extra_repr(self):
        """The arguments, as nn.LayerNorm prints them."""
        return f"{self.weight.shape[0]}, eps={self.eps}"
