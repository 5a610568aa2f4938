"""Small MindSpore cells that mindspore.nn lacks; generated modules copy the ones they use.

Each works in GRAPH_MODE and PyNative: branches test attributes fixed when the graph is
compiled, and shapes are tuples.
"""

import mindspore as ms
from mindspore import nn, ops
from mindspore.common import initializer as init


class StochasticDepth(nn.Cell):
    """torchvision.ops.StochasticDepth: in training, zero each sample ("row") or the whole
    batch ("batch") with probability p and scale the rest by 1 / (1 - p)."""

    def __init__(self, p, mode="row"):
        super().__init__()
        self.p = p
        self.mode = mode

    def construct(self, x):
        """x itself in eval or at p = 0, else x times the scaled mask."""
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        size = (x.shape[0],) + (1,) * (x.ndim - 1) if self.mode == "row" else (1,) * x.ndim
        noise = ops.bernoulli(ops.full(size, survival, dtype=x.dtype), p=survival)
        if survival > 0.0:
            noise = noise / survival
        return x * noise

    def extend_repr(self):
        """The arguments, as torchvision prints them."""
        return f"p={self.p}, mode={self.mode}"


class Permute(nn.Cell):
    """Reorder the axes of each sample (`dims` per sample, as in the spec); the batch stays
    first: `Permute((1, 2, 0))` turns N x C x H x W into N x H x W x C."""

    def __init__(self, dims):
        super().__init__()
        self.dims = (0, *(d + 1 for d in dims))

    def construct(self, x):
        """Permute each sample of the batch."""
        return ops.permute(x, self.dims)


class Reshape(nn.Cell):
    """View each sample with a new shape (one size may be -1); the batch is kept."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def construct(self, x):
        """Reshape each sample of the batch."""
        return ops.reshape(x, (x.shape[0], *self.shape))


def as_pair(value):
    """(v, v) for an int, else the pair as a tuple."""
    return (value, value) if isinstance(value, int) else tuple(value)


class Roll(nn.Cell):
    """torch.roll of each sample: a cyclic shift by `shifts` along the per-sample `dims`,
    as two slices concatenated (ops.roll is not on every device)."""

    def __init__(self, shifts, dims):
        super().__init__()
        self.shifts = tuple(shifts)
        self.dims = tuple(d + 1 if d >= 0 else d for d in dims)

    def construct(self, x):
        """The last `shift` values of each axis moved to its front."""
        for k in range(len(self.dims)):  # no zip: GRAPH_MODE compiles this loop
            dim = self.dims[k]
            size = x.shape[dim]
            s = self.shifts[k] % size
            if s:
                x = ops.cat((ops.narrow(x, dim, size - s, s), ops.narrow(x, dim, 0, size - s)), dim)
        return x


class Slice(nn.Cell):
    """x[..., start:stop:step, ...] on the per-sample `axes` (stop None: to the end); a
    step above 1 gathers its indices (StridedSliceGrad fails on CPU for some steps)."""

    def __init__(self, axes, start=None, stop=None, step=None):
        super().__init__()
        self.axes = tuple(axes)
        self.start = tuple(start or [0] * len(axes))
        self.stop = tuple(stop or [None] * len(axes))
        self.step = tuple(step or [1] * len(axes))

    def construct(self, x):
        """The slice of each sample of the batch, one axis after another."""
        for k in range(len(self.axes)):
            axis, a, b, s = self.axes[k], self.start[k], self.stop[k], self.step[k]
            dim = axis + 1 if axis >= 0 else x.ndim + axis
            end = x.shape[dim] if b is None else b
            if s == 1:
                x = ops.narrow(x, dim, a, end - a)
            else:
                x = ops.gather(x, ops.arange(a, end, s), dim)
        return x


class Pad(nn.Cell):
    """Constant padding of the per-sample `axes`: `before` and `after` values on each."""

    def __init__(self, axes, before=None, after=None, value=0.0):
        super().__init__()
        self.axes = tuple(axes)
        self.before = tuple(before or [0] * len(axes))
        self.after = tuple(after or [0] * len(axes))
        self.value = value

    def construct(self, x):
        """ops.pad, whose pairs start at the last axis."""
        pads = [0] * (2 * x.ndim)
        for i in range(len(self.axes)):
            axis = self.axes[i]
            k = x.ndim - 1 - (axis + 1 if axis >= 0 else x.ndim + axis)
            pads[2 * k] = self.before[i]
            pads[2 * k + 1] = self.after[i]
        return ops.pad(x, tuple(pads), value=self.value)


def relative_position_index(window):
    """For tokens p, q of a wh x ww window (row-major), the row of their offset in a table
    of (2 wh - 1)(2 ww - 1) offsets: (hp - hq + wh - 1)(2 ww - 1) + wp - wq + ww - 1."""
    wh, ww = as_pair(window)
    cells = [(i, j) for i in range(wh) for j in range(ww)]
    index = [
        (hp - hq + wh - 1) * (2 * ww - 1) + wp - wq + ww - 1 for hp, wp in cells for hq, wq in cells
    ]
    return ms.Tensor(index, ms.int64)


def add_relative_position_bias(logits, table, index):
    """logits (... x heads x N x N) plus table[index] viewed as N x N x heads, heads first."""
    n = logits.shape[-1]
    bias = ops.reshape(ops.gather(table, index, 0), (n, n, -1))
    return logits + ops.transpose(bias, (2, 0, 1))


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


class WindowMask(nn.Cell):
    """Add the shifted-window mask to logits ... x windows x heads x N x N."""

    def __init__(self, grid, window, shift):
        super().__init__()
        self.mask = ms.Tensor(shifted_window_mask(grid, window, shift), ms.float32)

    def construct(self, x):
        """The logits plus the mask of their window."""
        return x + self.mask


class LayerNorm2d(nn.Cell):
    """torchvision's LayerNorm2d: layer norm over the channels of each pixel of an
    N x C x H x W map, with a scale (gamma) and a shift (beta) per channel."""

    def __init__(self, num_channels, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.gamma = ms.Parameter(ops.ones((num_channels,)))
        self.beta = ms.Parameter(ops.zeros((num_channels,)))
        self.layer_norm = ops.LayerNorm(begin_norm_axis=-1, begin_params_axis=-1, epsilon=eps)

    def construct(self, x):
        """Channels last, normalised over them, channels first again."""
        y, _, _ = self.layer_norm(ops.transpose(x, (0, 2, 3, 1)), self.gamma, self.beta)
        return ops.transpose(y, (0, 3, 1, 2))

    def extend_repr(self):
        """The arguments, as they are given."""
        return f"{self.gamma.shape[0]}, eps={self.eps}"


class MultiheadAttention(nn.Cell):
    """torch.nn.MultiheadAttention(embed_dim, num_heads, dropout, bias, batch_first=True)
    as self-attention of N x L x D tokens, with PyTorch's tensors: the query, key and value
    projections stacked in in_proj_weight (3D x D) and in_proj_bias, and out_proj, an
    nn.Dense; Xavier and zeros, as PyTorch starts them."""

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True):
        super().__init__()
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.p = dropout
        shape = (3 * embed_dim, embed_dim)
        self.in_proj_weight = ms.Parameter(init.initializer(init.XavierUniform(), shape))
        self.in_proj_bias = ms.Parameter(ops.zeros((3 * embed_dim,))) if bias else None
        self.out_proj = nn.Dense(embed_dim, embed_dim, has_bias=bias)
        if bias:
            self.out_proj.bias.set_data(ops.zeros((embed_dim,)))
        self.dropout = nn.Dropout(p=dropout)

    def construct(self, x):
        """Scaled dot-product attention of each head, the heads joined and projected."""
        n, length = x.shape[0], x.shape[1]
        qkv = ops.matmul(x, self.in_proj_weight.T)
        if self.in_proj_bias is not None:
            qkv = qkv + self.in_proj_bias
        # N x L x 3D -> 3 x N x heads x L x D/heads
        qkv = ops.reshape(qkv, (n, length, 3, self.num_heads, self.head_dim))
        qkv = ops.transpose(qkv, (2, 0, 3, 1, 4))
        q, k, v = qkv[0], qkv[1], qkv[2]
        scores = ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))) / self.head_dim**0.5
        weights = self.dropout(ops.softmax(scores, axis=-1))
        out = ops.transpose(ops.matmul(weights, v), (0, 2, 1, 3))
        return self.out_proj(ops.reshape(out, (n, length, self.embed_dim)))

    def extend_repr(self):
        """The arguments, as torch.nn.MultiheadAttention's are given."""
        return f"{self.embed_dim}, {self.num_heads}, dropout={self.p}"


class Im2colConv2d(nn.Conv2d):
    """nn.Conv2d computed as unfold + matmul (im2col). MindSpore's CPU kernel for 3x3 and
    grouped convolutions is oneDNN's reference one, tens of times slower than a matrix
    product; 1x1 convolutions keep nn.Conv2d's own (fast) kernel. Same parameters
    (`weight`, `bias`) and initialisation as nn.Conv2d."""

    def construct(self, x):
        """Pad, gather every window as a column, multiply by the flattened weight."""
        kh, kw = self.kernel_size
        if kh == 1 and kw == 1 and self.group == 1:  # oneDNN's fast kernel: keep it
            return super().construct(x)
        n, c, h, w = x.shape
        sh, sw = self.stride
        dh, dw = self.dilation[2:] if len(self.dilation) == 4 else self.dilation
        top, bottom, left, right = self.pads(h, w, kh, kw, sh, sw, dh, dw)
        if top or bottom or left or right:
            x = ops.pad(x, (left, right, top, bottom))
        h, w = h + top + bottom, w + left + right
        oh, ow = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
        g = self.group
        cols = ops.unfold(x, (kh, kw), (dh, dw), 0, (sh, sw))
        cols = cols.reshape(n, g, c // g * kh * kw, oh * ow)
        weight = self.weight.reshape(g, self.out_channels // g, -1)
        out = ops.matmul(weight, cols).reshape(n, self.out_channels, oh, ow)
        if self.has_bias:
            out = out + self.bias.reshape(1, -1, 1, 1)
        return out

    def pads(self, h, w, kh, kw, sh, sw, dh, dw):
        """(top, bottom, left, right) for this cell's pad_mode (TensorFlow's rule for same)."""
        if self.pad_mode == "same":
            ph = max((-(-h // sh) - 1) * sh + dh * (kh - 1) + 1 - h, 0)
            pw = max((-(-w // sw) - 1) * sw + dw * (kw - 1) + 1 - w, 0)
            return ph // 2, ph - ph // 2, pw // 2, pw - pw // 2
        if self.pad_mode == "valid":
            return 0, 0, 0, 0
        p = self.padding
        return (p, p, p, p) if isinstance(p, int) else tuple(p)


class PaddedMaxPool2d(nn.MaxPool2d):
    """nn.MaxPool2d whose explicit padding is a -inf pad before an unpadded pool: the same
    windows and values. With pad_mode="pad", nn.MaxPool2d runs a 3-D max pool that also
    computes the argmax, several times slower on CPU; ceil mode and dilation keep it."""

    def __init__(self, kernel_size=1, stride=1, pad_mode="valid", padding=0, dilation=1,
                 ceil_mode=False):
        super().__init__(kernel_size=kernel_size, stride=stride, pad_mode=pad_mode,
                         padding=padding, dilation=dilation, ceil_mode=ceil_mode)
        self.fast = pad_mode == "pad" and not ceil_mode and dilation in (1, (1, 1), [1, 1])
        if self.fast:
            ph, pw = (padding, padding) if isinstance(padding, int) else tuple(padding)
            self.pads = (pw, pw, ph, ph)
            self.unpadded = ops.MaxPool(kernel_size=kernel_size, strides=stride)

    def construct(self, x):
        """Pad with -inf, pool without padding (or nn.MaxPool2d's own where it must)."""
        if self.fast:
            return self.unpadded(ops.pad(x, self.pads, value=float("-inf")))
        return super().construct(x)
