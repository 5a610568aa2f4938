"""Small PaddlePaddle layers that paddle.nn lacks; generated modules copy the ones they use."""

import paddle
from paddle import nn
from paddle.nn import functional as F


class StochasticDepth(nn.Layer):
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
        noise = paddle.bernoulli(paddle.full(size, survival, dtype=x.dtype))
        if survival > 0.0:
            noise = noise / survival
        return x * noise

    def extra_repr(self):
        """The arguments, as torchvision prints them."""
        return f"p={self.p}, mode={self.mode}"


class Permute(nn.Layer):
    """Reorder the axes of each sample (`dims` per sample, as in the spec); the batch stays
    first: `Permute((1, 2, 0))` turns N x C x H x W into N x H x W x C."""

    def __init__(self, dims):
        super().__init__()
        self.dims = [0, *(d + 1 for d in dims)]

    def forward(self, x):
        """Permute each sample of the batch."""
        return paddle.transpose(x, self.dims)


class Reshape(nn.Layer):
    """View each sample with a new shape (one size may be -1); the batch is kept."""

    def __init__(self, shape):
        super().__init__()
        self.shape = list(shape)

    def forward(self, x):
        """Reshape each sample of the batch."""
        return paddle.reshape(x, [x.shape[0], *self.shape])


def as_pair(value):
    """(v, v) for an int, else the pair as a tuple."""
    return (value, value) if isinstance(value, int) else tuple(value)


def slice_key(axes, start, stop, step):
    """The index of x[..., a:b:s, ...] for the per-sample `axes` (all >= 0 or all < 0)."""
    start = start or [0] * len(axes)
    stop = stop or [None] * len(axes)
    step = step or [1] * len(axes)
    cuts = {axis: slice(a, b, s) for axis, a, b, s in zip(axes, start, stop, step, strict=True)}
    if min(axes) >= 0:  # the batch, then the axes up to the last one cut
        return (slice(None), *(cuts.get(k, slice(None)) for k in range(max(axes) + 1)))
    return (Ellipsis, *(cuts.get(k, slice(None)) for k in range(min(axes), 0)))


class Roll(nn.Layer):
    """torch.roll of each sample: a cyclic shift by `shifts` along the per-sample `dims`."""

    def __init__(self, shifts, dims):
        super().__init__()
        self.shifts = list(shifts)
        self.dims = [d + 1 if d >= 0 else d for d in dims]

    def forward(self, x):
        """Roll each sample of the batch."""
        return paddle.roll(x, self.shifts, self.dims)


class Slice(nn.Layer):
    """x[..., start:stop:step, ...] on the per-sample `axes` (stop None: to the end)."""

    def __init__(self, axes, start=None, stop=None, step=None):
        super().__init__()
        self.key = slice_key(axes, start, stop, step)

    def forward(self, x):
        """The slice of each sample of the batch."""
        return x[self.key]


class Pad(nn.Layer):
    """Constant padding of the per-sample `axes`: `before` and `after` values on each."""

    def __init__(self, axes, before=None, after=None, value=0.0):
        super().__init__()
        self.axes = list(axes)
        self.before = before or [0] * len(axes)
        self.after = after or [0] * len(axes)
        self.value = value

    def forward(self, x):
        """F.pad with a pair for every axis, from the first (Paddle's order then)."""
        pads = [0] * (2 * x.ndim)
        for i in range(len(self.axes)):  # no zip(strict=): to_static compiles this loop
            axis = self.axes[i]
            k = axis + 1 if axis >= 0 else x.ndim + axis
            pads[2 * k], pads[2 * k + 1] = self.before[i], self.after[i]
        return F.pad(x, pads, mode="constant", value=self.value)


def relative_position_index(window):
    """For tokens p, q of a wh x ww window (row-major), the row of their offset in a table
    of (2 wh - 1)(2 ww - 1) offsets: (hp - hq + wh - 1)(2 ww - 1) + wp - wq + ww - 1."""
    wh, ww = as_pair(window)
    cells = [(i, j) for i in range(wh) for j in range(ww)]
    index = [
        (hp - hq + wh - 1) * (2 * ww - 1) + wp - wq + ww - 1 for hp, wp in cells for hq, wq in cells
    ]
    return paddle.to_tensor(index, dtype="int64")


def add_relative_position_bias(logits, table, index):
    """logits (... x heads x N x N) plus table[index] viewed as N x N x heads, heads first."""
    n = logits.shape[-1]
    bias = paddle.reshape(paddle.gather(table, index), [n, n, -1])
    return logits + paddle.transpose(bias, [2, 0, 1])


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


class WindowMask(nn.Layer):
    """Add the shifted-window mask to logits ... x windows x heads x N x N."""

    def __init__(self, grid, window, shift):
        super().__init__()
        mask = paddle.to_tensor(shifted_window_mask(grid, window, shift), dtype="float32")
        self.register_buffer("mask", mask, persistable=False)

    def forward(self, x):
        """The logits plus the mask of their window."""
        return x + self.mask


class LayerNorm2D(nn.Layer):
    """torchvision's LayerNorm2d: layer norm over the channels of each pixel of an
    N x C x H x W map, with a weight and a bias per channel."""

    def __init__(self, num_channels, epsilon=1e-5):
        super().__init__()
        self.epsilon = epsilon
        self.weight = self.create_parameter(
            [num_channels], default_initializer=nn.initializer.Constant(1.0)
        )
        self.bias = self.create_parameter([num_channels], is_bias=True)

    def forward(self, x):
        """Channels last, normalised over them, channels first again."""
        x = paddle.transpose(x, [0, 2, 3, 1])
        x = nn.functional.layer_norm(x, self.weight.shape, self.weight, self.bias, self.epsilon)
        return paddle.transpose(x, [0, 3, 1, 2])

    def extra_repr(self):
        """The arguments, as nn.LayerNorm prints them."""
        return f"{self.weight.shape[0]}, epsilon={self.epsilon}"


class Conv2DSame(nn.Conv2D):
    """nn.Conv2D with TensorFlow's "same" padding, dilation included (padding="SAME"
    leaves it out), for the input's own size. Its tensors are nn.Conv2D's."""

    def forward(self, x):
        """Pad by the input's size, then convolve without padding."""
        pads = []
        sizes = zip(x.shape[-2:], self._kernel_size, self._stride, self._dilation, strict=True)
        for size, k, s, d in sizes:
            total = max((-(-size // s) - 1) * s + d * (k - 1) + 1 - size, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        x = F.pad(x, [left, right, top, bottom])
        return F.conv2d(x, self.weight, self.bias, self._stride, 0, self._dilation, self._groups)


class MultiheadAttention(nn.Layer):
    """torch.nn.MultiheadAttention(embed_dim, num_heads, dropout, bias, batch_first=True)
    as self-attention of N x L x D tokens, with PyTorch's tensors: the query, key and value
    projections stacked in in_proj_weight (3D x D) and in_proj_bias, and out_proj, an
    nn.Linear (its weight stored (in, out), as Paddle's are)."""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True):
        super().__init__()
        self.num_heads = num_heads
        self.dropout = dropout
        self.in_proj_weight = self.create_parameter(
            [3 * embed_dim, embed_dim], default_initializer=nn.initializer.XavierUniform()
        )
        self.in_proj_bias = self.create_parameter([3 * embed_dim], is_bias=True) if bias else None
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias_attr=None if bias else False)

    def forward(self, x):
        """Scaled dot-product attention of each head, the heads joined and projected."""
        width = self.in_proj_weight.shape[1]
        head_dim = width // self.num_heads
        qkv = F.linear(x, self.in_proj_weight.T, self.in_proj_bias)
        # N x L x 3D -> 3 x N x heads x L x D/heads (a 0 in reshape keeps that axis)
        qkv = paddle.reshape(qkv, [0, 0, 3, self.num_heads, head_dim])
        q, k, v = paddle.unbind(paddle.transpose(qkv, [2, 0, 3, 1, 4]), axis=0)
        weights = F.softmax(paddle.matmul(q, k, transpose_y=True) / head_dim**0.5, axis=-1)
        weights = F.dropout(weights, self.dropout, training=self.training)
        out = paddle.transpose(paddle.matmul(weights, v), [0, 2, 1, 3])
        return self.out_proj(paddle.reshape(out, [0, 0, width]))

    def extra_repr(self):
        """The arguments, as torch.nn.MultiheadAttention's are given."""
        return f"{self.in_proj_weight.shape[1]}, {self.num_heads}, dropout={self.dropout}"
