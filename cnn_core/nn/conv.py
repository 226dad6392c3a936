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
from cnn_core.kernels import _conv, _gemm
from cnn_core.kernels.conv import _col2im_batch, _im2col_batch
from cnn_core.nn.init import check_init, check_parameter_bytes, layer_weights
from cnn_core.nn.module import Module, Parameter, register_module


# Bytes of the column-gradient chunk backward folds back at a time (a few MiB: it stays in L2/L3 between the
# GEMM that writes it and col2im that reads it).
_DCOLS_CHUNK_BYTES = 4 << 20


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
        # Scratch reused between steps (never handed out): the columns (kept from forward for dW), the
        # (F, N*OH*OW) GEMM output / delta in the GEMM's layout, and a chunk of the column gradient.
        self._cols = self._rows = self._dcols = None

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
        check_nbytes((c * kh * kw, n * oh * ow), x.dtype, f"Conv2d: kernel_size {self.kernel_size}, stride "
                     f"{self.stride}, padding {self.padding}", "the im2col buffer")
        # The whole batch in one GEMM: cols (C*KH*KW, N*L) with the batch in the columns, so the product's
        # N dimension is N*OH*OW even for 7x7 images (per-sample products of 49 columns waste the
        # micro-kernel's width and repack the weight N times). For a 1x1 stride-1 unpadded kernel this
        # im2col is only the (N, C, L) -> (C, N*L) transpose, one contiguous row copy per plane.
        cols = self._scratch("_cols", (c * kh * kw, n * oh * ow))
        _im2col_batch(np.ascontiguousarray(x), cols, self.kernel_size, self.stride, self.padding, (1, 1),
                      (oh, ow))
        zt = self._scratch("_rows", (f, n * oh * ow))
        _gemm.gemm_into(self.weight.data.reshape(f, -1), cols, zt, 1.0, 0.0)
        z = np.empty((n, f, oh * ow), dtype=self._dtype)
        _conv.batch_from_rows(zt, z, None if self.bias is None else self.bias.data)
        self._cache = x.shape if self.training else None
        return z.reshape(n, f, oh, ow)

    def backward(self, delta: np.ndarray) -> np.ndarray | None:
        x_shape = self._need_cache(self._cache)
        n, f = x_shape[0], self.out_channels
        oh, ow = self._out_hw(x_shape)
        self._check_grad(delta, "delta", (n, f, oh, ow))
        cols = self._cols
        # delta (N, F, L) -> dt (F, N*L), the layout of the forward GEMM's output.
        dt = self._scratch("_rows", (f, n * oh * ow))
        _conv.rows_from_batch(np.ascontiguousarray(delta).reshape(n, f, -1), dt)
        # dC/db = sum over the batch and positions u, v of delta: one row sum of dt per filter.
        if self.bias is not None:
            _conv.add_row_sums(dt, self.bias.grad)
        # dC/dw = delta * rot180(a_prev) = dt @ cols^T, accumulated (beta=1). One GEMM whose depth is the
        # whole batch: its sum order does not depend on the thread count (threads split rows/columns of dW).
        gw = self.weight.grad.reshape(f, -1)
        _gemm.gemm_into(dt, cols.T, gw, 1.0, 1.0)
        if not self.input_grad:
            return None
        # delta_prev = delta * rot180(w) = col2im(w^T @ dt), in chunks of samples so the column gradient
        # (reused scratch) stays a few MiB and is folded back while it is still in cache.
        dx = np.empty(x_shape, dtype=self._dtype)
        w2t = self.weight.data.reshape(f, -1).T
        rows, per_sample = w2t.shape[0], oh * ow
        chunk = max(1, min(n, _DCOLS_CHUNK_BYTES // (rows * per_sample * self._dtype.itemsize)))
        dcols = self._scratch("_dcols", (rows * chunk * per_sample,))
        for n0 in range(0, n, chunk):
            m = min(chunk, n - n0)
            dc = dcols[:rows * m * per_sample].reshape(rows, m * per_sample)
            _gemm.gemm_into(w2t, dt[:, n0 * per_sample:(n0 + m) * per_sample], dc, 1.0, 0.0)
            _col2im_batch(dc, dx[n0:n0 + m], self.kernel_size, self.stride, self.padding, (1, 1), (oh, ow))
        return dx

    def _scratch(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """The layer's reusable buffer `name` of this shape and dtype (allocated again only when they change):
        a fresh array per step would page-fault its memory in again every time."""
        buf = getattr(self, name)
        if buf is None or buf.shape != shape or buf.dtype != self._dtype:
            buf = np.empty(shape, dtype=self._dtype)
            setattr(self, name, buf)
        return buf

    def _out_hw(self, x_shape) -> tuple[int, int]:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return (x_shape[2] + 2 * ph - kh) // sh + 1, (x_shape[3] + 2 * pw - kw) // sw + 1

    def _clear_cache(self) -> None:
        self._cache = None
        self._cols = self._rows = self._dcols = None

    def get_config(self) -> dict:
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": list(self.padding), "bias": self.bias is not None, "init": self.init,
                **super().get_config()}
