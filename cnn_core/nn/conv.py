"""2-D convolution (cross-correlation, like PyTorch) through im2col + gemm.

Forward  z^l = a^{l-1} * w^l + b^l: unroll every receptive field of a^{l-1} into a column (im2col), then
z[n] = w.reshape(F, C*KH*KW) @ cols[n].
Backward, the deck's three formulas in the same unrolled layout:
  dC/db = sum_{u,v} delta_{u,v}                 (sum of delta over batch and positions)
  dC/dw = delta * rot180(a^{l-1})               = sum_n delta[n] @ cols[n]^T
  delta^{l-1} = delta * rot180(w)  (full conv)  = col2im(w^T @ delta[n])
col2im is the adjoint of im2col: scattering w^T delta back onto the input positions, with overlapping windows
accumulating, is exactly the full convolution of delta with the 180-degree-rotated kernel.
"""
from __future__ import annotations

import numpy as np

from cnn_core._random import get_rng
from cnn_core._validation import as_pair, check_bool, check_nbytes, check_nonempty, check_size, conv_output_size
from cnn_core.kernels.batched_gemm import _gemm_batched, _gemm_batched_sum
from cnn_core.kernels.conv import _col2im, _im2col
from cnn_core.nn.init import check_init, check_parameter_bytes, layer_weights
from cnn_core.nn.module import Module, Parameter, register_module


@register_module
class Conv2d(Module):
    """2-D convolution (cross-correlation, as in PyTorch) of a batch of images with ``out_channels`` filters.

    ``z[n, f] = bias[f] + sum_c weight[f, c] * x_pad[n, c]``, where ``*`` slides the ``KH x KW`` kernel over
    the zero-padded input with the given stride. Computed as im2col + one GEMM per batch (module docstring).

    Output size, per spatial axis (no dilation: PyTorch's formula with d = 1)::

        H_out = floor((H + 2 * padding[0] - kernel_size[0]) / stride[0]) + 1
        W_out = floor((W + 2 * padding[1] - kernel_size[1]) / stride[1]) + 1

    Args:
        in_channels: C, the channels of the input.
        out_channels: F, the number of filters (channels of the output).
        kernel_size: KH x KW, an int (square) or a pair of ints.
        stride: step of the window, an int or a pair (default 1).
        padding: zeros added on both sides of each spatial axis, an int or a pair (default 0).
        bias: whether to learn a bias per filter (default True).
        dtype: float32 (default) or float64, for the parameters and the accepted input.
        rng: seed or ``numpy.random.Generator`` for the initial weights (default: the global one,
            see ``cnn_core.manual_seed``).
        init: ``"default"``, PyTorch's: weight and bias ~ U(-1/sqrt(k), 1/sqrt(k)) with k = C * KH * KW, the
            inputs of one output (for the weight, the kaiming-uniform of ``nn.init.layer_weights``); or
            ``"normal"``, the deck's: weight ~ N(0, 1/k), bias ~ N(0, 1).

    Shape:
        - Input: ``(N, C, H, W)``
        - Output: ``(N, F, H_out, W_out)``
        - weight: ``(F, C, KH, KW)``, bias: ``(F,)``

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> conv = nn.Conv2d(1, 6, 5, padding=2, rng=0)    # LeNet-5's first layer
        >>> conv.weight.shape
        (6, 1, 5, 5)
        >>> z = conv(np.zeros((8, 1, 28, 28), np.float32))
        >>> z.shape                                        # floor((28 + 4 - 5) / 1) + 1 = 28
        (8, 6, 28, 28)
        >>> nn.Conv2d(6, 16, 5, stride=2)(np.zeros((8, 6, 14, 14), np.float32)).shape
        (8, 16, 5, 5)
        >>> conv.backward(np.ones_like(z)).shape           # dC/dx; dC/dw, dC/db accumulate in .grad
        (8, 1, 28, 28)
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, bias: bool = True,
                 dtype=None, rng=None, init: str = "default"):
        super().__init__(dtype)
        self.in_channels = check_size(in_channels, "in_channels")
        self.out_channels = check_size(out_channels, "out_channels")
        self.kernel_size = as_pair(kernel_size, "kernel_size")
        self.stride = as_pair(stride, "stride")
        self.padding = as_pair(padding, "padding", minimum=0)
        self.init = check_init(init)
        w_shape = (self.out_channels, self.in_channels, *self.kernel_size)
        check_parameter_bytes(w_shape, self._dtype, "in_channels, out_channels, kernel_size")
        w, b = layer_weights(w_shape, (self.out_channels,) if bias else None, init, get_rng(rng), self._dtype)
        self.weight = Parameter(w)
        self.bias = Parameter(b) if bias else None
        self._cache = None
        self._dcols = None  # backward scratch, reused between steps (never handed out)
        self._ones = None   # (N, 1, OH*OW) ones: the bias gradient's row sums as a batched product

    @classmethod
    def parameter_shapes(cls, in_channels, out_channels, kernel_size, bias=True,
                         **config) -> dict[str, tuple[int, ...]]:
        """The shapes __init__ gives the parameters, without allocating them (see Module)."""
        out = check_size(out_channels, "out_channels")
        shape = (out, check_size(in_channels, "in_channels"), *as_pair(kernel_size, "kernel_size"))
        return {"weight": shape, "bias": (out,)} if check_bool(bias, "bias") else {"weight": shape}

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._check_input(x, "x", 4, "(N, C, H, W)")
        n, c, h, w = x.shape
        if c != self.in_channels:
            raise ValueError(f"Conv2d: x: expected {self.in_channels} channels (in_channels), got shape {x.shape}")
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        oh = conv_output_size(h, kh, sh, ph, "height")
        ow = conv_output_size(w, kw, sw, pw, "width")
        f = self.out_channels
        check_nonempty(x, "Conv2d: x")
        check_nbytes((n, c * kh * kw, oh * ow), x.dtype, f"Conv2d: kernel_size {self.kernel_size}, stride "
                     f"{self.stride}, padding {self.padding}", "the im2col buffer")
        cols = _im2col(np.ascontiguousarray(x), self.kernel_size, self.stride, self.padding,
                       (oh, ow))                                           # (N, C*KH*KW, OH*OW)
        w2 = self.weight.data.reshape(f, -1)
        z = np.empty((n, f, oh * ow), dtype=self._dtype)
        beta = 0.0
        if self.bias is not None:
            z[...] = self.bias.data[None, :, None]
            beta = 1.0
        _gemm_batched(w2, cols, c=z, beta=beta)
        self._cache = (x.shape, cols) if self.training else None
        return z.reshape(n, f, oh, ow)

    def backward(self, delta: np.ndarray) -> np.ndarray | None:
        x_shape, cols = self._need_cache(self._cache)
        n, f = x_shape[0], self.out_channels
        self._check_grad(delta, "delta", (n, f, *self._out_hw(x_shape)))
        delta = np.ascontiguousarray(delta).reshape(n, f, -1)
        # dC/db = sum over u, v (and the batch) of delta: delta[n] @ 1 summed over n, through the batched NT
        # kernel (parallel, vectorized; numpy's sum over axes (0, 2) runs serially over short rows).
        if self.bias is not None:
            if self._ones is None or self._ones.shape != (n, 1, delta.shape[2]) or self._ones.dtype != delta.dtype:
                self._ones = np.ones((n, 1, delta.shape[2]), dtype=delta.dtype)
            _gemm_batched_sum(delta, self._ones, c=self.bias.grad.reshape(f, 1), beta=1.0, trans_b=True)
        # dC/dw = delta * rot180(a_prev): in the unrolled layout, delta[n] @ cols[n]^T, accumulated (beta=1).
        gw = self.weight.grad.reshape(f, -1)
        _gemm_batched_sum(delta, cols, c=gw, beta=1.0, trans_b=True)
        if not self.input_grad:
            return None
        # delta_prev = delta * rot180(w): w^T @ delta[n] per receptive field, then col2im scatters it back.
        if self._dcols is None or self._dcols.shape != cols.shape or self._dcols.dtype != cols.dtype:
            self._dcols = np.empty_like(cols)
        dcols = self._dcols
        w2 = self.weight.data.reshape(f, -1)
        _gemm_batched(w2, delta, c=dcols, trans_a=True)
        return _col2im(dcols, x_shape, self.kernel_size, self.stride, self.padding)

    def _out_hw(self, x_shape) -> tuple[int, int]:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return (x_shape[2] + 2 * ph - kh) // sh + 1, (x_shape[3] + 2 * pw - kw) // sw + 1

    def _clear_cache(self) -> None:
        self._cache = None
        self._dcols = None
        self._ones = None

    def get_config(self) -> dict:
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding), "bias": self.bias is not None, "init": self.init,
                **super().get_config()}
