"""2-D convolution (cross-correlation, like PyTorch) through im2col + gemm.

Forward  z^l = a^{l-1} * w^l + b^l: unroll every receptive field of a^{l-1} into a column (im2col), then
z[n] = w.reshape(F, C*KH*KW) @ cols[n]. (The layer puts a chunk of samples side by side in the columns, so
one GEMM serves the chunk: same products, fewer and wider calls; see Conv2d._chunks.)
Backward, the deck's three formulas in the same unrolled layout:
  dC/db = sum_{u,v} delta_{u,v}                 (sum of delta over batch and positions)
  dC/dw = delta * rot180(a^{l-1})               = sum_n delta[n] @ cols[n]^T
  delta^{l-1} = delta * rot180(w)  (full conv)  = col2im(w^T @ delta[n])
col2im is the adjoint of im2col: scattering w^T delta back onto the input positions, with overlapping windows
accumulating, is exactly the full convolution of delta with the 180-degree-rotated kernel.

Stride-1 one-group convolutions with few channels (Conv2d._direct) run all three directly instead
(src_c/conv_direct.c): the input copied into KW column-shifted, zero-padded planes, so that the taps of consecutive
outputs are contiguous vectors; the forward, dC/dw and delta^{l-1} (the forward's adjoint) sum the same products
in registers, with no column matrix and no GEMM packing.

3x3 stride-1 convolutions with at least _WINO_MIN_IN_CHANNELS / _WINO_MIN_OUT_CHANNELS input / output channels
(one group, no dilation) run all three by Winograd F(2x2, 3x3) instead (src_c/winograd.c: 16 GEMMs on transformed
4x4 tiles, 2.25x fewer multiplies): the forward pass; delta^{l-1}, itself a 3x3 stride-1 convolution of delta with
the flipped kernel, channels transposed, padding 2 - p; and
dC/dw = G^T [sum over tiles (A delta A^T) .* (B^T x B)] G, the adjoint of the forward transforms.
Passes whose output is at most _WINO4_MAX_SIZE per side use F(4x4, 3x3) instead (36 GEMMs on 6x6 tiles, 4x
fewer multiplies on whole tiles; a 7x7 plane takes 2x2 tiles, 3.06x, where F(2x2)'s 4x4 tiles of 2x2 give
1.72x); each pass picks its own (the input gradient's output is the input's size).
Winograd rounds differently from a direct sum: within gamma_k of the magnitude of the terms it adds
(tests/test_conv_winograd.py states k for each), a few ulps of that magnitude, as in oneDNN's Winograd
convolutions; F(4x4)'s larger transform coefficients cost about one more decimal digit in float32 (measured
relative error 3e-6 of the largest output at 64 channels, against F(2x2)'s 3e-7).
"""
from __future__ import annotations

import numpy as np

from cnn_core._random import get_rng
from cnn_core._validation import as_pair, check_bool, check_nbytes, check_nonempty, check_size, conv_output_size
from cnn_core._config import get_num_threads
from cnn_core.kernels import _conv, _conv_direct
from cnn_core.kernels.activations import _sigma, _sigma_backward
from cnn_core.nn.init import check_init, check_parameter_bytes, layer_weights
from cnn_core.nn.module import Module, Parameter, is_kept, register_module


# Bytes of im2col columns built at a time: a chunk of samples whose columns stay in the L2 cache between
# im2col and the GEMMs that read them. Fixed (never derived from the thread count), so the chunks, and with
# them the order in which dW sums the batch, are the same on any machine setting.
_COLS_CHUNK_BYTES = 512 << 10

# Winograd's scratch per chunk: the transformed tiles V and products M, 16*(C + F) values per 2x2 tile (one
# 28x28 sample of 32 -> 32 channels is 0.8 MB). Each of the 16 GEMMs reads a sixteenth of it, so the budget is
# larger than the im2col columns'; measured (one thread): 2 MB ran 32 -> 64 at 14x14 5-6% faster than 1 MB,
# 64 -> 128 at 7x7 alike, 28x28 and 16x16 shapes within noise.
_WINO_CHUNK_BYTES = 2 << 20
# Winograd needs at least this many input and output channels: its GEMMs are C deep (forward), F deep (input
# gradient). Measured (one thread, batch 64, forward+backward, im2col / Winograd ms): 8->16 at 28x28 7.6 / 9.6,
# 16->16 13.0 / 13.3, 16->64 at 14x14 9.8 / 11.4, but 64->16 14.3 / 11.1, 24->24 24.5 / 21.9, 32->32 at 14x14
# 11.0 / 8.7.
_WINO_MIN_IN_CHANNELS = 24
_WINO_MIN_OUT_CHANNELS = 16
# Winograd F(4x4, 3x3) (36 GEMMs on 6x6 tiles) instead of F(2x2, 3x3) for the passes whose output (the
# forward's and dC/dw's OH x OW, the input gradient's H x W) is at most this size per side: 4x fewer multiplies
# than a direct sum on whole tiles against F(2x2)'s 2.25x (at 7x7, 2x2 tiles of 4x4 cover the plane: 3.06x
# against 1.72x). Measured (one thread, CPU time, forward + dW + dX ms, F(2x2) / F(4x4) at the chunk
# _wino_chunk gives, machine loaded): batch 64, float32: 64 -> 128 at 7x7 16.9 / 11.3, 32 -> 64 at 14x14 14.5 /
# 12.1, 32 -> 32 at 28x28 31.1 / 28.1; batch 32 64 -> 128 at 16x16 27.5 / 24.0; float64 32 -> 64 at 14x14
# 23.8 / 23.0, 64 -> 128 at 16x16 51.9 / 48.6. Larger planes were not measured: they keep F(2x2).
_WINO4_MAX_SIZE = 32
# F(4x4)'s scratch per chunk: its transforms run over the chunk's samples (one vector op for 16 float32), so
# the chunk is this budget's worth of samples, rounded down to a multiple of 8, and at most _WINO4_MAX_CHUNK.
# Measured at 64 -> 128, 7x7 (2-vCPU EPYC Zen 4, one thread, forward + backward ms, chunks of 8 / 16 / 32):
# float32 13.2 / 11.6 / 18.1; float64 (8 / 16) 26.7 / 29.9. The budget was 2 MB; on the 2-vCPU Xeon (2 MiB L2
# per core; 2 threads, forward + backward ms, medians of 15 interleaved, 2 MB / 4 MB) 4 MB ran float32
# 32 -> 32 at 28x28 16.9 / 14.0 (chunks of 4 / 8 samples), 32 -> 64 at 14x14 7.9 / 7.4, batch 32 64 -> 128 at
# 16x16 15.2 / 14.3, 64 -> 128 at 7x7 6.5 / 6.6 (16 / 32 samples); float64 36.1 / 28.1, 15.6 / 13.9, 26.5 /
# 23.6, 64 -> 128 at 7x7 14.9 / 13.8. 8 MB was no better than 4 and 16 MB 1.2-2x slower. The cap keeps
# 64 -> 128 at 7x7 float32 at the 16 samples Zen 4 preferred.
_WINO4_CHUNK_BYTES = 4 << 20
_WINO4_MAX_CHUNK = 16

# Direct convolution (src_c/conv_direct.c: no columns, no packing) for stride-1 one-group convs with at most
# _DIRECT_MAX_IN_CHANNELS input channels and in_channels * out_channels at most _DIRECT_MAX_CHANNEL_PAIRS, where
# im2col's GEMMs are few rows (F) by a shallow C*KH*KW. Measured (one thread, CPU time, batch 64, forward +
# backward, direct / im2col ms; the machine loaded): LeNet 1->6 5x5 at 28x28 0.59 / 1.18, 6->16 5x5 at 14x14
# 1.69 / 1.96; 3x3: 1->32 at 28x28 2.49 / 3.84, 3->64 at 32x32 10.8 / 18.8, 16->32 at 14x14 5.26 / 5.81,
# 8->64 5.08 / 5.78, but 8->128 9.62 / 9.95, 16->64 9.50 / 9.23 and 16->128 at 7x7 5.74 / 5.02.
_DIRECT_MAX_IN_CHANNELS = 16
_DIRECT_MAX_CHANNEL_PAIRS = 512


@register_module
class Conv2d(Module):
    """2-D convolution (cross-correlation, as in PyTorch) of a batch of images with ``out_channels`` filters.

    ``z[n, f] = bias[f] + sum_c weight[f, c] * x_pad[n, c]``, where ``*`` slides the ``KH x KW`` kernel (its
    taps ``dilation`` apart) over the zero-padded input with the given stride. Computed as im2col + one GEMM per
    chunk of samples whose columns fit in cache, or, for 3x3 stride-1 kernels with 24 or more channels in and
    16 or more out, by Winograd F(2x2, 3x3), or, for stride-1 convs with few channels, directly (module
    docstring); F(4x4, 3x3) for the passes on planes of at most 32x32. A 1x1 stride-1 unpadded kernel with
    more channels is a GEMM on the input itself (its planes are their own columns): no im2col.

    Output size, per spatial axis (PyTorch's formula)::

        H_out = floor((H + 2 * padding[0] - dilation[0] * (kernel_size[0] - 1) - 1) / stride[0]) + 1
        W_out = floor((W + 2 * padding[1] - dilation[1] * (kernel_size[1] - 1) - 1) / stride[1]) + 1

    With ``groups = G`` the channels split into G groups: output channels ``g*F/G .. (g+1)*F/G - 1`` see only
    input channels ``g*C/G .. (g+1)*C/G - 1`` (``groups = in_channels``: a depthwise convolution). The G
    products run as one batched GEMM over the groups.

    Args:
        in_channels: C, the channels of the input.
        out_channels: F, the number of filters (channels of the output).
        kernel_size: KH x KW, an int (square) or a pair of ints.
        stride: step of the window, an int or a pair (default 1).
        padding: zeros added on both sides of each spatial axis, an int or a pair (default 0), or
            ``"valid"`` (no padding) or ``"same"`` (output as large as the input; stride 1 only, as PyTorch:
            a total of ``dilation * (kernel_size - 1)`` zeros per axis, the extra one, if odd, after).
        dilation: spacing between kernel taps, an int or a pair (default 1).
        groups: G, dividing both C and F (default 1).
        bias: whether to learn a bias per filter (default True).
        dtype: float32 (default) or float64, for the parameters and the accepted input.
        rng: seed or ``numpy.random.Generator`` for the initial weights (default: the global one,
            see ``cnn_core.manual_seed``).
        init: ``"default"``, PyTorch's: weight and bias ~ U(-1/sqrt(k), 1/sqrt(k)) with k = C/G * KH * KW, the
            inputs of one output (for the weight, the kaiming-uniform of ``nn.init.layer_weights``); or
            ``"normal"``, the deck's: weight ~ N(0, 1/k), bias ~ N(0, 1).

    Shape:
        - Input: ``(N, C, H, W)``
        - Output: ``(N, F, H_out, W_out)``
        - weight: ``(F, C / G, KH, KW)``, bias: ``(F,)``

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
        >>> dw = nn.Conv2d(16, 16, 3, padding="same", dilation=2, groups=16)   # depthwise, dilated
        >>> dw.weight.shape, dw(np.zeros((2, 16, 9, 9), np.float32)).shape
        ((16, 1, 3, 3), (2, 16, 9, 9))
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, dtype=None, rng=None, init: str = "default"):
        super().__init__(dtype)
        self.in_channels = check_size(in_channels, "in_channels")
        self.out_channels = check_size(out_channels, "out_channels")
        self.kernel_size = as_pair(kernel_size, "kernel_size")
        self.stride = as_pair(stride, "stride")
        self.padding = _check_padding(padding, self.stride)
        self.dilation = as_pair(dilation, "dilation")
        self.groups = _check_groups(groups, self.in_channels, self.out_channels)
        self.init = check_init(init)
        w_shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        check_parameter_bytes(w_shape, self._dtype, "in_channels, out_channels, kernel_size")
        w, b = layer_weights(w_shape, (self.out_channels,) if bias else None, init, get_rng(rng), self._dtype)
        self.weight = Parameter(w)
        self.bias = Parameter(b) if bias else None
        self._cache = None
        self._drop_buffers()   # the _reused scratch: none yet

    @classmethod
    def parameter_shapes(cls, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                         bias=True, **config) -> dict[str, tuple[int, ...]]:
        """The shapes __init__ gives the parameters, without allocating them (see Module)."""
        c, out = check_size(in_channels, "in_channels"), check_size(out_channels, "out_channels")
        shape = (out, c // _check_groups(groups, c, out), *as_pair(kernel_size, "kernel_size"))
        return {"weight": shape, "bias": (out,)} if check_bool(bias, "bias") else {"weight": shape}

    _fuses_relu = True
    # Scratch reused between steps (never handed out): the copy of the input backward reads, or in its place
    # the whole batch's im2col columns (1x1 kernels) or Winograd-transformed tiles; per thread, one chunk's
    # columns, GEMM output / delta in the GEMM's (F, m*OH*OW) layout and column gradient
    # (_conv.conv_forward / conv_backward); the partial sums of dW and db; dC/dz behind a fused ReLU.
    _reused = ("_xin", "_cols", "_work", "_partial", "_wino_u", "_wino_uflip", "_dz")

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self._forward(x, relu=False)

    def _forward_relu(self, x: np.ndarray) -> np.ndarray:
        return self._forward(x, relu=True)

    def _forward(self, x: np.ndarray, relu: bool) -> np.ndarray:
        """z = conv(x) + b, or a = max(z, 0) with `relu` (a fused ReLU: in the direct convolution's epilogue,
        in place on z on the other paths); the cache keeps a for backward's mask."""
        self._check_input(x, "x", 4, "(N, C, H, W)")
        n, c, h, w = x.shape
        if c != self.in_channels:
            raise ValueError(f"Conv2d: x: expected {self.in_channels} channels (in_channels), got shape {x.shape}")
        pads, (oh, ow) = self._geometry(h, w, check=True)
        f = self.out_channels
        check_nonempty(x, "Conv2d: x")
        check_nbytes((c * self.kernel_size[0] * self.kernel_size[1], oh * ow), x.dtype,
                     f"Conv2d: kernel_size {self.kernel_size}, stride {self.stride}, padding {self.padding}, "
                     f"dilation {self.dilation}", "the im2col buffer")
        direct, winograd = self._direct(pads), self._winograd(pads)
        pointwise = self._pointwise(pads)
        tile = _wino_tile(oh, ow) if winograd else 0
        # In training, forward keeps x as the weight gradient reads it, every chunk's, where that costs little
        # memory: im2col's columns where they are no larger than x (1x1 kernels with stride or padding), the
        # 1x1 GEMM's copy of x (each chunk's, made by the thread whose GEMM then reads it from cache; fit's
        # batch needs none), Winograd F(4x4)'s transformed input tiles (2.25x x); backward then reads neither
        # x nor a copy of it, and builds no columns or tiles. 32 -> 32 channels at 28x28, batch 64, float32:
        # 14.5 MB of tiles in place of the 6.4 MB copy of x, one input transform a step instead of two,
        # 8.9-9.2 -> 8.1-8.4 ms. F(2x2)'s tiles, 4x x, are not kept: 32 -> 32 at 56x56 49-51 ms against 53-54
        # for 77 MB more, 64 -> 64 at 40x40 no faster.
        keep_for_dw = self.training and (tile == 4 or (pointwise and not is_kept(x))
                                         or (not (direct or winograd or pointwise) and self._k * oh * ow <= c * h * w))
        if self.training and not keep_for_dw and not (is_kept(x) and x.flags.c_contiguous):
            # Backward rebuilds the columns from x: it keeps its own copy (a reused buffer, the input's size),
            # so a caller changing x in place after forward changes no gradient; fit's batch, which fit
            # promises to leave unchanged until backward (nn.module.batch_feed), is kept as it is (LeNet-5's
            # conv1, batch 64, forward + backward: 652 us against 705 us with the copy, 2-vCPU Xeon).
            x = self._copy_into("_xin", x)
        else:
            x = np.ascontiguousarray(x)
        if direct:
            z = self._handout("z", (n, f, oh, ow), self._dtype)
            packed, per_thread = _conv_direct.sizes(c, h, w, f, *self.kernel_size, *pads, oh, ow)
            _conv_direct.direct_forward(x, self.weight.data, None if self.bias is None else self.bias.data, z,
                                        np.empty(packed, self._dtype),
                                        self._scratch("_work", (get_num_threads(), per_thread), at_least=True), *pads,
                                        relu)
            return self._keep(x, pads, z, relu, applied=True)
        if winograd:
            z = self._handout("z", (n, f, oh, ow), self._dtype)
            u = self._scratch("_wino_u", ((tile + 2) ** 2, f, c))
            _conv.wino_weights(self.weight.data, u, False)
            chunk, per_thread = self._wino_chunk(n, c, f, oh, ow, tile)
            scratch = self._scratch("_work", (get_num_threads(), per_thread), at_least=True)
            tiles = self._scratch("_cols", (-(-n // chunk) * _conv.wino_kept_size(chunk, c, oh, ow, tile),),
                                  at_least=True) if keep_for_dw else None
            _conv.wino_conv3x3(x, u, None if self.bias is None else self.bias.data, z, scratch, chunk, *pads, tiles)
            return self._keep(x, pads, z, relu, kept=tiles)
        z = self._handout("z", (n, f, oh * ow), self._dtype)
        chunk = self._chunk(n, oh * ow)
        cols = self._scratch("_cols", (n * self._k * oh * ow,), at_least=True) if keep_for_dw else None
        if pointwise:
            _conv.pointwise_forward(x.reshape(n, c, h * w), self.weight.data.reshape(f, -1),
                                    None if self.bias is None else self.bias.data, z, self.groups, chunk, cols)
            return self._keep(x, pads, z.reshape(n, f, oh, ow), relu, kept=cols)
        # Sized for backward already in training, so that forward and backward share one buffer.
        per_thread = ((1 if keep_for_dw or not self.training else 2) * self._k + f) * chunk * oh * ow
        scratch = self._scratch("_work", (get_num_threads(), per_thread), at_least=True)
        _conv.conv_forward(x, self.weight.data.reshape(f, -1), None if self.bias is None else self.bias.data, z,
                           scratch, self.groups, chunk, *self.kernel_size, *self.stride, *pads, *self.dilation,
                           oh, ow, cols)
        return self._keep(x, pads, z.reshape(n, f, oh, ow), relu, kept=cols)

    def _keep(self, x: np.ndarray, pads: tuple[int, int], z: np.ndarray, relu: bool,
              applied: bool = False, kept: np.ndarray | None = None) -> np.ndarray:
        """The output, max(z, 0) with `relu` (done here unless the kernel `applied` it), and the cache of what
        backward reads: x, the padding, the ReLU's output (None without one) and what forward kept of x for
        the weight gradient, im2col's columns or Winograd's transformed tiles (None: backward builds them
        from x)."""
        if relu and not applied:
            _sigma("relu", z, z)
        self._cache = (x, pads, z if relu else None, kept) if self.training else None
        return z

    def backward(self, delta: np.ndarray) -> np.ndarray | None:
        """delta = dC/dz (N, F, OH, OW), or dC/da after a forward with a fused ReLU; returns dC/dx (None when
        not input_grad) and accumulates dC/dw, dC/db."""
        x, pads, a, kept = self._need_cache(self._cache)
        n, f = x.shape[0], self.out_channels
        _, (oh, ow) = self._geometry(*x.shape[2:])
        self._check_grad(delta, "delta", (n, f, oh, ow))
        delta = np.ascontiguousarray(delta)
        if a is not None and not self._direct(pads):      # the direct kernels mask delta as they read it
            delta = _sigma_backward("relu", delta, a, self._scratch("_dz", delta.shape))
            a = None
        delta = delta.reshape(n, f, oh * ow)
        dx = self._handout("dx", x.shape, self._dtype) if self.input_grad else None
        if self._direct(pads):
            packed, per_thread = _conv_direct.sizes(*x.shape[1:], f, *self.kernel_size, *pads, oh, ow)
            _conv_direct.direct_backward(x, self.weight.data, delta.reshape(n, f, oh, ow), self.weight.grad,
                                         None if self.bias is None else self.bias.grad, dx,
                                         np.empty(packed, self._dtype),
                                         self._scratch("_work", (get_num_threads(), per_thread), at_least=True),
                                         self._scratch("_partial", (_conv.NSLOTS, f * self._k + f)), *pads, a)
            return dx
        if self._winograd(pads):
            # dC/dw = G^T [sum over tiles (A delta A^T) .* (B^T x B)] G, the adjoint of the forward transforms;
            # delta_prev = delta * rot180(w) (full correlation), a 3x3 stride-1 convolution of delta with the
            # flipped kernel, channels transposed, padding 2 - p. Both by Winograd.
            c = self.in_channels
            delta = delta.reshape(n, f, oh, ow)
            tile = _wino_tile(oh, ow)
            chunk, per_thread = self._wino_chunk(n, c, f, oh, ow, tile)
            scratch = self._scratch("_work", (get_num_threads(), per_thread), at_least=True)
            # wino_dw3x3 uses min(NSLOTS, chunks) rows (F(4x4)'s 36*F*C sums: 1.2 MB a float32 row at 64 -> 128)
            partial = self._scratch("_partial", (min(_conv.NSLOTS, -(-n // chunk)), (tile + 2) ** 2 * f * c + f))
            _conv.wino_dw3x3(x, delta, self.weight.grad, None if self.bias is None else self.bias.grad, scratch,
                             partial, chunk, *pads, tile=tile, kept=kept)
            if dx is not None:
                tile = _wino_tile(*x.shape[2:])
                u = self._scratch("_wino_uflip", ((tile + 2) ** 2, c, f))
                _conv.wino_weights(self.weight.data, u, True)
                wchunk, per_thread = self._wino_chunk(n, f, c, *x.shape[2:], tile)
                scratch = self._scratch("_work", (get_num_threads(), per_thread), at_least=True)
                _conv.wino_conv3x3(delta, u, None, dx, scratch, wchunk, 2 - pads[0], 2 - pads[1])
            return dx
        chunk = self._chunk(n, oh * ow)
        if self._pointwise(pads):
            # dC/dw = sum_n delta_n @ x_n^T, delta_prev = w^T @ delta_n: the 1x1 kernel's columns are x itself
            # (or forward's copy of it, when it made one).
            xs = (x if kept is None else kept[:x.size]).reshape(n, x.shape[1], -1)
            _conv.pointwise_backward(xs, self.weight.data.reshape(f, -1), delta,
                                     self.weight.grad.reshape(f, -1), None if self.bias is None else self.bias.grad,
                                     None if dx is None else dx.reshape(n, x.shape[1], -1),
                                     self._scratch("_partial", (_conv.NSLOTS, f * (self._k // self.groups + 1))),
                                     self.groups, chunk)
            return dx
        scratch = self._scratch("_work", (get_num_threads(), ((2 if kept is None else 1) * self._k + f) * chunk
                                          * oh * ow), at_least=True)
        partial = self._scratch("_partial", (_conv.NSLOTS, f * (self._k // self.groups + 1)))
        # dC/db = sum of delta over the batch and positions; dC/dw = delta * rot180(a_prev) = delta @ cols^T;
        # delta_prev = delta * rot180(w) = col2im(w^T @ delta): all three per chunk in one compiled pass.
        _conv.conv_backward(x, self.weight.data.reshape(f, -1), delta, self.weight.grad.reshape(f, -1),
                            None if self.bias is None else self.bias.grad, dx, scratch, partial, self.groups,
                            chunk, *self.kernel_size, *self.stride, *pads, *self.dilation, oh, ow, kept)
        return dx

    def _direct(self, pads: tuple[int, int]) -> bool:
        """Whether this call runs the direct convolution (src_c/conv_direct.c) for forward and both gradients:
        stride 1, no dilation, one group, padding before at most kernel - 1 (the input gradient's padding is
        kernel - 1 - padding), and few channels (_DIRECT_MAX_IN_CHANNELS, _DIRECT_MAX_CHANNEL_PAIRS)."""
        return (self.stride == (1, 1) and self.dilation == (1, 1) and self.groups == 1
                and pads[0] < self.kernel_size[0] and pads[1] < self.kernel_size[1]
                and self.in_channels <= _DIRECT_MAX_IN_CHANNELS
                and self.in_channels * self.out_channels <= _DIRECT_MAX_CHANNEL_PAIRS)

    def _pointwise(self, pads: tuple[int, int]) -> bool:
        """Whether this call runs the 1x1 convolution as GEMMs on x and z themselves (_conv.pointwise_forward):
        a 1x1 kernel, stride 1, no padding (so the output is the input's size), any groups; when the direct
        convolution does not take it (few channels)."""
        return (self.kernel_size == (1, 1) and self.stride == (1, 1) and pads == (0, 0)
                and not self._direct(pads))

    def _winograd(self, pads: tuple[int, int]) -> bool:
        """Whether this call runs Winograd F(2x2, 3x3) (src_c/winograd.c) for forward and both gradients:
        3x3, stride 1, no dilation, one group, and enough channels that the 16 GEMMs of depth C (forward) and
        F (input gradient) keep the micro-kernels busy (thresholds measured, see _WINO_MIN_IN_CHANNELS)."""
        return (self.kernel_size == (3, 3) and self.stride == (1, 1) and self.dilation == (1, 1)
                and self.groups == 1 and self.in_channels >= _WINO_MIN_IN_CHANNELS
                and self.out_channels >= _WINO_MIN_OUT_CHANNELS)

    def _wino_chunk(self, n: int, c: int, f: int, oh: int, ow: int, tile: int = 2) -> tuple[int, int]:
        """Samples per Winograd chunk (scratch of about _WINO_CHUNK_BYTES, or _WINO4_CHUNK_BYTES for
        F(4x4, 3x3), at least one sample) and the scratch elements per thread; from the shapes alone, like
        _chunk."""
        per_sample = _conv.wino_scratch(1, c, f, oh, ow, tile) * self._dtype.itemsize
        if tile == 4:
            chunk = min(_WINO4_MAX_CHUNK, max(1, _WINO4_CHUNK_BYTES // per_sample))
            chunk = min(n, chunk - chunk % 8 if chunk >= 8 else chunk)
            return chunk, _conv.wino_scratch(chunk, c, f, oh, ow, 4)
        # A multiple of NSLOTS chunks of equal size where the batch allows, so that 2, 4 or 8 threads get
        # equal shares (64 samples in chunks of 5 would leave one of 2 threads 7 chunks against 6).
        slots = _conv.NSLOTS
        nchunks = slots * -(-(n * per_sample) // (slots * _WINO_CHUNK_BYTES))
        chunk = max(1, n // nchunks)
        return chunk, _conv.wino_scratch(chunk, c, f, oh, ow)

    @property
    def _k(self) -> int:
        """C*KH*KW: the rows of the im2col columns."""
        return self.in_channels * self.kernel_size[0] * self.kernel_size[1]

    def _chunk(self, n: int, per_sample: int) -> int:
        """Samples per chunk: columns of about _COLS_CHUNK_BYTES (they stay in cache between im2col and the
        GEMMs that read them), and at least NSLOTS chunks when the batch allows (work for every thread). From
        the shapes alone, never the thread count: the chunks fix the order in which dW sums the batch."""
        by_bytes = _COLS_CHUNK_BYTES // (self._k * per_sample * self._dtype.itemsize)
        return max(1, min(by_bytes, -(-n // _conv.NSLOTS)))

    def _geometry(self, h: int, w: int, check: bool = False) -> tuple[tuple[int, int], tuple[int, int]]:
        """(top, left) zero padding and (OH, OW) for an (h, w) input. 'same' pads dilation*(kernel-1) in all
        per axis, half before (rounded down) and the rest after, as PyTorch; im2col needs only the padding
        before, the output size bounds the rest."""
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1      # the dilated kernel's extent
        if self.padding == "same":
            return ((eh - 1) // 2, (ew - 1) // 2), (h, w)
        ph, pw = (0, 0) if self.padding == "valid" else self.padding
        if check:
            return (ph, pw), (conv_output_size(h, eh, sh, ph, "height"), conv_output_size(w, ew, sw, pw, "width"))
        return (ph, pw), ((h + 2 * ph - eh) // sh + 1, (w + 2 * pw - ew) // sw + 1)

    def _scratch(self, name: str, shape: tuple[int, ...], at_least: bool = False) -> np.ndarray:
        """The layer's reusable buffer `name` of this shape and dtype (or, with `at_least`, of at least this
        shape: the kernels use a prefix of each row), allocated again only when it does not fit: a fresh array
        per step would page-fault its memory in again every time. In eval mode, where several threads may
        run the layer at once (predict, evaluate), always a new array of the shape: a shared one let threads
        evaluating one model overwrite each other's scratch."""
        if not self.training:
            return np.empty(shape, dtype=self._dtype)
        buf = getattr(self, name)
        if (buf is None or buf.dtype != self._dtype
                or (buf.shape != shape if not at_least else any(b < s for b, s in zip(buf.shape, shape)))):
            buf = np.empty(shape, dtype=self._dtype)
            setattr(self, name, buf)
        return buf

    def _copy_into(self, name: str, x: np.ndarray) -> np.ndarray:
        buf = self._scratch(name, x.shape)
        np.copyto(buf, x)
        return buf

    def _clear_cache(self) -> None:
        self._cache = None

    def get_config(self) -> dict:
        # Files written before dilation and groups existed have neither key: the defaults (1) rebuild them.
        return {"in_channels": self.in_channels, "out_channels": self.out_channels,
                "kernel_size": list(self.kernel_size), "stride": list(self.stride),
                "padding": self.padding if isinstance(self.padding, str) else list(self.padding),
                "dilation": list(self.dilation), "groups": self.groups, "bias": self.bias is not None,
                "init": self.init, **super().get_config()}


def _wino_tile(oh: int, ow: int) -> int:
    """The Winograd tile, 2 (F(2x2, 3x3)) or 4 (F(4x4, 3x3)), for a pass whose output is oh x ow
    (_WINO4_MAX_SIZE)."""
    return 4 if max(oh, ow) <= _WINO4_MAX_SIZE else 2


def _check_padding(padding, stride: tuple[int, int]) -> str | tuple[int, int]:
    """An int, a pair, 'valid' or 'same' (refused with a stride, as PyTorch refuses it)."""
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(f"padding: expected an int, a pair of ints, 'same' or 'valid', got {padding!r}")
        if padding == "same" and stride != (1, 1):
            raise ValueError(f"padding: expected an int or a pair with stride {stride}: padding='same' is not "
                             "supported for strided convolutions (as in PyTorch), got 'same'")
        return padding
    return as_pair(padding, "padding", minimum=0)


def _check_groups(groups, in_channels: int, out_channels: int) -> int:
    g = check_size(groups, "groups")
    if in_channels % g or out_channels % g:
        raise ValueError(f"groups: expected a divisor of in_channels ({in_channels}) and out_channels "
                         f"({out_channels}), got {g}")
    return g
