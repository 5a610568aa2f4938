"""Small MindSpore cells that mindspore.nn lacks; generated modules copy the ones they use.

Each works in GRAPH_MODE and PyNative: branches test attributes fixed when the graph is
compiled, and shapes are tuples.
"""

import mindspore as ms
from mindspore import nn, ops


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
