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
