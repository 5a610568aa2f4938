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


class Roll(nn.Module):
    """torch.roll of each sample: a cyclic shift by `shifts` along the per-sample `dims`."""

    def __init__(self, shifts, dims):
        super().__init__()
        self.shifts = tuple(shifts)
        self.dims = tuple(d + 1 if d >= 0 else d for d in dims)

    def forward(self, x):
        """Roll each sample of the batch."""
        return torch.roll(x, self.shifts, self.dims)


def slice_key(axes, start, stop, step):
    """The index of x[..., a:b:s, ...] for the per-sample `axes` (all >= 0 or all < 0)."""
    start = start or [0] * len(axes)
    stop = stop or [None] * len(axes)
    step = step or [1] * len(axes)
    cuts = {axis: slice(a, b, s) for axis, a, b, s in zip(axes, start, stop, step, strict=True)}
    if min(axes) >= 0:  # the batch, then the axes up to the last one cut
        return (slice(None), *(cuts.get(k, slice(None)) for k in range(max(axes) + 1)))
    return (Ellipsis, *(cuts.get(k, slice(None)) for k in range(min(axes), 0)))


class Slice(nn.Module):
    """x[..., start:stop:step, ...] on the per-sample `axes` (stop None: to the end)."""

    def __init__(self, axes, start=None, stop=None, step=None):
        super().__init__()
        self.key = slice_key(axes, start, stop, step)

    def forward(self, x):
        """The slice of each sample of the batch."""
        return x[self.key]


class Pad(nn.Module):
    """Constant padding of the per-sample `axes`: `before` and `after` values on each."""

    def __init__(self, axes, before=None, after=None, value=0.0):
        super().__init__()
        self.axes = tuple(axes)
        self.before = before or [0] * len(axes)
        self.after = after or [0] * len(axes)
        self.value = value

    def forward(self, x):
        """F.pad, whose list starts at the last axis."""
        pads = [0] * (2 * x.ndim)
        for axis, b, e in zip(self.axes, self.before, self.after, strict=True):
            k = x.ndim - 1 - (axis + 1 if axis >= 0 else x.ndim + axis)
            pads[2 * k], pads[2 * k + 1] = b, e
        return F.pad(x, pads, value=self.value)


def relative_position_index(window):
    """For tokens p, q of a wh x ww window (row-major), the row of their offset in a table
    of (2 wh - 1)(2 ww - 1) offsets: (hp - hq + wh - 1)(2 ww - 1) + wp - wq + ww - 1."""
    wh, ww = as_pair(window)
    cells = [(i, j) for i in range(wh) for j in range(ww)]
    index = [
        (hp - hq + wh - 1) * (2 * ww - 1) + wp - wq + ww - 1 for hp, wp in cells for hq, wq in cells
    ]
    return torch.tensor(index, dtype=torch.int64)


def add_relative_position_bias(logits, table, index):
    """logits (... x heads x N x N) plus table[index] viewed as N x N x heads, heads first."""
    n = logits.shape[-1]
    return logits + table[index].reshape(n, n, -1).permute(2, 0, 1)


def shifted_window_mask(grid, window, shift):
    """windows x 1 x N x N: 0 between tokens of one window from one region of the shifted
    grid, -100 between regions; the regions split at -window and -shift on each axis."""

    def regions(size, w, s):
        label = [0] * size
        for k, (a, b) in enumerate(((0, -w), (-w, -s), (-s, None))):
            for i in range(size)[a:b]:
                label[i] = k
        return label

    (gh, gw), (wh, ww), (sh, sw) = as_pair(grid), as_pair(window), as_pair(shift)
    rows, cols = regions(gh, wh, sh), regions(gw, ww, sw)
    masks = []
    for r in range(0, gh, wh):
        for c in range(0, gw, ww):
            cell = [3 * rows[r + i] + cols[c + j] for i in range(wh) for j in range(ww)]
            masks.append([[[0.0 if p == q else -100.0 for q in cell] for p in cell]])
    return masks


class WindowMask(nn.Module):
    """Add the shifted-window mask to logits ... x windows x heads x N x N."""

    def __init__(self, grid, window, shift):
        super().__init__()
        mask = torch.tensor(shifted_window_mask(grid, window, shift))
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x):
        """The logits plus the mask of their window."""
        return x + self.mask


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
