"""Inference plans: a trained network compiled into one compiled call per forward pass.

``compile(model, input_shape)`` walks the model once and produces a ``Plan``: the list of kernel calls of
its forward pass in eval mode (src_c/plan.h's ops), with every intermediate buffer laid out once in an arena,
the weights copied and laid out for the kernels (Linear's transposed and padded for the small-batch
kernel, a batch norm folded into the convolution or Linear layer before it, dropout removed), and the
whole pass run by one call into C with the GIL released. What fuses is fused: the bias and the activation
in the epilogue of the convolution's and Linear's GEMM, a monotone activation moved behind a max pooling
(``max(act(x)) = act(max(x))``: computed on a quarter of the values).

Supported layers: Sequential, Residual, Concat (along any axis but the batch), Linear, Conv2d (stride,
padding, dilation, groups), MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Flatten, BatchNorm1d/2d (eval mode with
running statistics), Dropout, Dropout2d, Identity, ReLU, Sigmoid, Tanh, ELU, LeakyReLU, SiLU, GELU (both
forms), Softmax, LogSoftmax (along the last axis), RNN, LSTM and GRU (batch_first=True, any num_layers,
zero initial states: each layer's input projection is one product over all steps, then the time loop with
the layers' own gate math), followed by LastStep, RNNClassifier, and Embedding where the model's input
enters (the plan then takes integer indices of any integer dtype). Anything else (a module with its own
forward, a recurrent layer that is time-first or whose (out, state) pair is the model's output, a softmax
along another axis, a batch norm without running statistics) raises TypeError: ``cnn_core.predict`` then
runs the model itself.
"""
from __future__ import annotations

import operator
import statistics
import threading
import time
import weakref
from typing import Sequence

import numpy as np

from cnn_core._config import get_num_threads
from cnn_core._validation import FLOAT_DTYPES, check_output
from cnn_core.kernels import _conv, _plan
from cnn_core.kernels.pooling import _adaptive_windows, _avg_windows, pool_output_size
from cnn_core import nn
from cnn_core.models.rnn import RNNClassifier

__all__ = ["compile", "Plan"]

# Bytes of intermediates one thread keeps per chunk: a chunk's activations, columns and GEMM outputs stay
# in the L2 cache (1 MiB per core on the Zen 4 this was tuned on) from one op to the next, with room left for
# the weights (LeNet-5, 10,000 images on 2 threads: 104 ms with 256 KiB, 110 with 768, 118 with 2 MiB).
_ARENA_BYTES = 256 << 10
# The most samples in one chunk (a Linear op's GEMM gets this many rows).
_MAX_CHUNK = 256
# The fewest columns a chunk gives a convolution's GEMM (whatever the arena budget says), so that packing
# the weights, once per GEMM call, is spread over enough columns.
_MIN_GEMM_COLS = 256
# Per-sample buffer sizes are rounded to this many elements, so every buffer of any chunk starts on a
# 64-byte boundary.
_ALIGN = 16

_KIND = {"linear": 0, "conv": 1, "maxpool2": 2, "pool": 3, "act": 4, "affine": 5, "softmax": 6, "add": 7,
         "copy": 8, "recurrent": 9, "gather": 10, "place": 11}
_ACT = {"none": 0, "relu": 1, "sigmoid": 2, "tanh": 3, "elu": 4, "leaky": 5, "silu": 6, "gelu": 7,
        "gelu_tanh": 8}
# plan.h's cell codes of a recurrent op
_CELL = {"tanh": 0, "relu": 1, "lstm": 2, "gru": 3}


class _Buffer:
    """One array of the arena (per-sample size in elements), or the plan's input or output."""

    def __init__(self, size: int, slot: int | None = None):
        self.size = size
        self.slot = slot          # _plan.IN / _plan.OUT, else assigned by the layout
        self.first = self.last = -1


class _Value:
    """A tensor of the forward pass: per-sample shape, the buffer holding it, the op that wrote it last
    (None for the input) and whether more than one consumer reads it (then nothing may fuse into it)."""

    def __init__(self, shape: tuple[int, ...], buf: _Buffer, op: dict | None, pair: bool = False):
        self.shape = shape
        self.buf = buf
        self.op = op
        self.shared = False
        # a recurrent layer's (out, state) pair, held as out (T, H): only LastStep reads it
        self.pair = pair

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


_MONOTONE = ("relu", "sigmoid", "tanh", "elu")
_SUPPORTED = (nn.Sequential, nn.Residual, nn.Concat, nn.Dropout, nn.Dropout2d, nn.Identity, nn.Flatten, nn.Linear,
              nn.Conv2d, nn.BatchNorm1d, nn.BatchNorm2d, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d,
              nn.Softmax, nn.LogSoftmax, nn.ReLU, nn.Sigmoid, nn.Tanh, nn.ELU, nn.LeakyReLU, nn.SiLU, nn.GELU,
              nn.RNN, nn.LSTM, nn.GRU, nn.LastStep, nn.Embedding, RNNClassifier)


class _Builder:
    def __init__(self, dtype: np.dtype):
        self.dtype = dtype
        self.ops: list[dict] = []
        self.buffers: list[_Buffer] = []
        self.work = 0.0       # multiply-adds per sample
        self.min_cols = 0     # the fewest GEMM columns (output positions) of one sample in any im2col convolution
        self.num_embeddings = 0   # > 0: the input is integer indices into embeddings of this many rows (at most)

    # ---- buffers and ops ----
    def buffer(self, size: int) -> _Buffer:
        b = _Buffer(size)
        self.buffers.append(b)
        return b

    def op(self, kind: str, src: _Value, out_shape, params, *, w=None, b=None, w2=None, b2=None, tab=None,
           act="none", alpha=0.0, inplace=False, scratch=(), src2: _Value | None = None,
           dst: _Buffer | None = None) -> _Value:
        out_size = int(np.prod(out_shape))
        if dst is not None:
            pass
        elif inplace and src.buf.slot is None and not src.shared and src.size == out_size:
            dst = src.buf
        else:
            dst = self.buffer(out_size)
        o = {"kind": kind, "src": src.buf, "src2": None if src2 is None else src2.buf, "dst": dst,
             "params": [int(p) for p in params], "w": w, "b": b, "w2": w2, "b2": b2, "tab": tab, "act": act,
             "alpha": float(alpha), "tmp": [self.buffer(s) for s in scratch]}
        self.ops.append(o)
        return _Value(tuple(out_shape), dst, o)

    def fusable(self, v: _Value, kinds: Sequence[str]) -> bool:
        """v was written by an op of one of `kinds`, with no activation yet, and only the next layer reads it."""
        return v.op is not None and v.op["kind"] in kinds and v.op["act"] == "none" and not v.shared \
            and v.op is self.ops[-1]

    def weights(self, a) -> np.ndarray:
        """A C-contiguous copy in the plan's dtype: never a view of the model's arrays."""
        return np.array(a, dtype=self.dtype, order="C", copy=True)

    # ---- layers ----
    def emit(self, m, v: _Value) -> _Value:
        base = next((cls for cls in _SUPPORTED if isinstance(m, cls)), None)
        if base is None or type(m).forward is not base.forward:
            # a subclass with its own forward is not the layer the plan knows (nor is any other module)
            raise TypeError(f"compile: model: {type(m).__name__} layers are not supported by a plan "
                            "(supported: see cnn_core.plan's docstring)")
        if v.pair and not isinstance(m, nn.LastStep):
            raise TypeError(f"compile: model: {type(m).__name__} reads a recurrent layer's (out, state) pair: a "
                            "plan supports a recurrent layer followed by LastStep")
        if isinstance(m, nn.Sequential):
            for layer in m:
                v = self.emit(layer, v)
            return v
        if isinstance(m, nn.Residual):
            v.shared = True
            y = self.emit(m.block, v)
            s = v if m.shortcut is None else self.emit(m.shortcut, v)
            if y.shape != s.shape:
                raise ValueError(f"compile: Residual: expected the block's and the shortcut's outputs of one "
                                 f"shape, got {y.shape} and {s.shape}")
            return self.op("add", y, y.shape, [y.size], src2=s, inplace=True)
        if isinstance(m, nn.Concat):
            return self.concat(m, v)
        if isinstance(m, (nn.RNN, nn.LSTM, nn.GRU)):
            return self.recurrent(m, v)
        if isinstance(m, nn.LastStep):
            return self.last_step(m.batch_first, v)
        if isinstance(m, nn.Embedding):
            return self.embedding(m, v)
        if isinstance(m, RNNClassifier):
            if len(v.shape) == 3 and v.shape[0] == 1:     # images (1, H, W) read row by row: H steps of W
                v = _Value(v.shape[1:], v.buf, v.op)
            h = self.last_step(True, self.recurrent(m.rnn, v))
            return self.linear(m.fc, h)
        if isinstance(m, (nn.Dropout, nn.Dropout2d, nn.Identity)):
            return v
        if isinstance(m, nn.Flatten):
            flat = _Value((v.size,), v.buf, v.op)
            flat.shared = v.shared          # a residual's input stays one nothing fuses into
            return flat
        if isinstance(m, nn.Linear):
            return self.linear(m, v)
        if isinstance(m, nn.Conv2d):
            return self.conv(m, v)
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            return self.batchnorm(m, v)
        if isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d)):
            return self.pool(m, v)
        if isinstance(m, (nn.Softmax, nn.LogSoftmax)):
            return self.softmax(m, v)
        act = _activation(m)
        if act is not None:
            name, alpha = act
            if self.fusable(v, ("linear", "conv", "affine", "add", "pool", "maxpool2")):
                v.op["act"], v.op["alpha"] = name, alpha
                return _Value(v.shape, v.buf, v.op)
            return self.op("act", v, v.shape, [v.size], act=name, alpha=alpha, inplace=True)
        raise TypeError(f"compile: model: {type(m).__name__} layers are not supported by a plan "
                        "(supported: see cnn_core.plan's docstring)")

    def concat(self, m, v: _Value) -> _Value:
        v.shared = True                     # every branch reads it: none may write into it
        outs = [self.emit(branch, v) for branch in m._branches]
        ndim = len(outs[0].shape) + 1
        if not -ndim <= m.dim < ndim:
            raise ValueError(f"compile: Concat: dim: expected an int in [{-ndim}, {ndim}) for outputs of "
                             f"{ndim} dimensions, got {m.dim}")
        d = m.dim % ndim
        if d == 0:
            raise TypeError("compile: model: Concat along the batch dimension: a plan runs samples "
                            "independently")
        a = d - 1                           # the per-sample axis
        first = outs[0].shape
        if any(o.pair for o in outs) or any(len(o.shape) != len(first) or o.shape[:a] + o.shape[a + 1:]
                                            != first[:a] + first[a + 1:] for o in outs):
            raise ValueError(f"compile: Concat: branches: expected outputs that agree on every dimension but "
                             f"dim={m.dim}, got per-sample shapes {[o.shape for o in outs]}")
        shape = first[:a] + (sum(o.shape[a] for o in outs),) + first[a + 1:]
        outer, total = int(np.prod(first[:a])), int(np.prod(shape[a:]))
        dst = self.buffer(int(np.prod(shape)))
        offset = 0
        for o in outs:
            inner = int(np.prod(o.shape[a:]))
            y = self.op("place", o, shape, [outer, inner, inner, 0, o.size, total, offset, int(np.prod(shape))],
                        dst=dst)
            offset += inner
        return _Value(shape, dst, y.op)

    def recurrent(self, m, v: _Value) -> _Value:
        name = type(m).__name__
        if not m.batch_first:
            raise TypeError(f"compile: model: {name} with batch_first=False reads (time, batch, features): a plan "
                            "takes the batch first (build the layer with batch_first=True)")
        if len(v.shape) != 2 or v.shape[1] != m.input_size:
            raise ValueError(f"compile: {name}: expected inputs of shape (N, T, {m.input_size}), got "
                             f"(N, {', '.join(map(str, v.shape))})")
        t_len, h = v.shape[0], m.hidden_size
        cell = _CELL["lstm" if isinstance(m, nn.LSTM) else "gru" if isinstance(m, nn.GRU) else m.nonlinearity]
        gh = m.GATES * h
        block = _plan.linear_block(self.dtype == np.float64)
        ld = -(-gh // block) * block
        for layer in range(m.num_layers):
            w_ih, w_hh, b_ih, b_hh = m._weights(layer)
            d = w_ih.data.shape[1]
            wih = np.zeros((d, ld), self.dtype)
            wih[:, :gh] = w_ih.data.T
            whh = np.zeros((h, ld), self.dtype)
            whh[:, :gh] = w_hh.data.T
            b = b2 = None
            if b_ih is not None:
                if cell == _CELL["gru"]:        # b_hh stays inside r * (W_hn h + b_hn)
                    b, b2 = self.weights(b_ih.data), self.weights(b_hh.data)
                else:                           # the layer's own sum b_ih + b_hh, in its dtype
                    b = self.weights(b_ih.data + b_hh.data)
            self.work += t_len * gh * (d + h)
            v = self.op("recurrent", v, (t_len, h), [t_len, d, h, cell, ld, ld], w=wih, b=b, w2=whh, b2=b2,
                        scratch=(t_len * gh, gh + h))
        return _Value(v.shape, v.buf, v.op, pair=True)

    def last_step(self, batch_first: bool, v: _Value) -> _Value:
        if not batch_first:
            raise TypeError("compile: model: LastStep with batch_first=False reads (time, batch, hidden): a plan "
                            "takes the batch first")
        if len(v.shape) != 2:
            raise ValueError(f"compile: LastStep: expected inputs of shape (N, T, H), got "
                             f"(N, {', '.join(map(str, v.shape))})")
        t_len, h = v.shape
        return self.op("place", v, (h,), [1, h, 0, (t_len - 1) * h, t_len * h, 0, 0, h])

    def embedding(self, m, v: _Value) -> _Value:
        if v.buf.slot != _plan.IN:
            raise TypeError("compile: model: Embedding reads integer indices: a plan supports it only where "
                            "the model's input enters")
        n_idx = v.size
        self.num_embeddings = m.num_embeddings if not self.num_embeddings else min(self.num_embeddings,
                                                                                    m.num_embeddings)
        return self.op("gather", v, v.shape + (m.embedding_dim,), [n_idx, m.embedding_dim],
                       w=self.weights(m.weight.data))

    def linear(self, m, v: _Value) -> _Value:
        if len(v.shape) != 1 or v.shape[0] != m.in_features:
            raise ValueError(f"compile: Linear: expected inputs of shape (N, {m.in_features}), got "
                             f"(N, {', '.join(map(str, v.shape))})")
        k, n = m.in_features, m.out_features
        block = _plan.linear_block(self.dtype == np.float64)
        ldw = -(-n // block) * block
        wt = np.zeros((k, ldw), self.dtype)
        wt[:, :n] = m.weight.data.T
        b = None if m.bias is None else self.weights(m.bias.data)
        self.work += k * n
        return self.op("linear", v, (n,), [k, n, ldw], w=wt, b=b)

    def conv(self, m, v: _Value) -> _Value:
        if len(v.shape) != 3 or v.shape[0] != m.in_channels:
            raise ValueError(f"compile: Conv2d: expected inputs of shape (N, {m.in_channels}, H, W), got "
                             f"(N, {', '.join(map(str, v.shape))})")
        c, h, w = v.shape
        (ph, pw), (oh, ow) = m._geometry(h, w, check=True)
        f, g = m.out_channels, m.groups
        kh, kw = m.kernel_size
        weight = self.weights(m.weight.data.reshape(f, -1))
        b = None if m.bias is None else self.weights(m.bias.data)
        k = c * kh * kw
        self.work += f * (k // g) * oh * ow
        # a few filters per group (16 or 32 in float32, 8..32 in float64: whole columns of the unpacked
        # kernel's 16- or 8-wide tile) run transposed, positions as the GEMM's rows (plan_template.h)
        fg, vec = f // g, 16 if self.dtype == np.float32 else 8
        transposed = fg % vec == 0 and fg <= 32 and not (m.stride == (1, 1) and g == 1)
        if transposed:
            weight = self.weights(weight.reshape(g, fg, k // g).transpose(0, 2, 1))
        params = [c, h, w, f, kh, kw, *m.stride, ph, pw, *m.dilation, oh, ow, g, int(transposed)]
        if (kh, kw) == (3, 3) and m.stride == (1, 1) and m.dilation == (1, 1) and g == 1 \
                and _winograd_pays(c, f, oh, ow, self.dtype):
            # Winograd F(2x2, 3x3) (plan_template.h's wconv): u (16, F, C) = G g G^T, winograd.c's transform,
            # packed (16, F8/8, C, 8), filters past F zero
            u = np.empty((16, f, c), self.dtype)
            _conv.wino_weights(self.weights(m.weight.data), u, False)
            f8 = -(-f // 8) * 8
            packed = np.zeros((16, f8, c), self.dtype)
            packed[:, :f] = u
            packed = self.weights(packed.reshape(16, f8 // 8, 8, c).transpose(0, 1, 3, 2))
            params[15] = 4
            ts = ((oh + 1) // 2) * ((ow + 1) // 2)
            # V (16, C, ldt) and M (16, F8, ldt) per chunk, ldt = the chunk's tiles rounded up to whole vectors
            # (at most 16 elements more per row) and 64 elements between the 16 matrices
            scratch = (16 * (c * ts + c * 16 + 64), 16 * (f8 * ts + f8 * 16 + 64))
            return self.op("conv", v, (f, oh, ow), params, w=packed, b=b, scratch=scratch)
        if m.stride == (1, 1) and g == 1:
            # direct (plan_template.h's dconv and cconv): taps read straight from the padded input, tab =
            # each tap's offset in it
            (dh, dw) = m.dilation
            hp, wp = oh + dh * (kh - 1), ow + dw * (kw - 1)
            vl = 64 // self.dtype.itemsize
            tab = np.array([ci * hp * wp + i * dh * wp + j * dw for ci in range(c) for i in range(kh)
                            for j in range(kw)], np.intp)
            if f % vl == 0:
                # whole vectors of filters: cconv, weights packed (F/fbw, K, fbw), 1 or 2 vectors per block
                fbw = 2 * vl if f % (2 * vl) == 0 else vl
                packed = self.weights(weight.reshape(f // fbw, fbw, k).transpose(0, 2, 1))
                params[15] = 3
                return self.op("conv", v, (f, oh, ow), params, w=packed, b=b, tab=tab, scratch=(c * hp * wp,))
            # dconv: positions vectorized on the wide grid, weights packed (F8/8, K, 8)
            tile = 2 * vl
            pw_ = -(-oh * wp // tile) * tile
            f8 = -(-f // 8) * 8          # zero filters up to whole tiles: computed, never stored
            packed = np.zeros((f8, k), self.dtype)
            packed[:f] = weight
            packed = self.weights(packed.reshape(f8 // 8, 8, k).transpose(0, 2, 1))
            params[15] = 2
            npad = c * hp * wp + (kh - 1) * dh * wp + (kw - 1) * dw + pw_
            return self.op("conv", v, (f, oh, ow), params, w=packed, b=b, tab=tab, scratch=(npad, f8 * pw_))
        if m.stride == (1, 1):
            # the "wide" columns (plan_template.h): output rows as wide as the padded input, and its copy
            (dh, dw) = m.dilation
            hp, wp = oh + dh * (kh - 1), ow + dw * (kw - 1)
            scratch = (k * oh * wp, f * oh * wp, c * hp * wp)
        else:
            wp = ow
            scratch = (k * oh * ow, f * oh * ow)
        self.min_cols = oh * wp if not self.min_cols else min(self.min_cols, oh * wp)
        return self.op("conv", v, (f, oh, ow), params, w=weight, b=b, scratch=scratch)

    def batchnorm(self, m, v: _Value) -> _Value:
        if not m.track_running_stats:
            raise TypeError(f"compile: model: {type(m).__name__} without running statistics normalizes with "
                            "each batch's statistics in eval mode too: not supported by a plan")
        if len(v.shape) < 1 or v.shape[0] != m.num_features:
            raise ValueError(f"compile: {type(m).__name__}: expected {m.num_features} channels, got per-sample "
                             f"shape {v.shape}")
        gamma, beta = m._gamma_beta()
        scale = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(m.running_var, np.float64) + m.eps)
        shift = np.asarray(beta, np.float64) - np.asarray(m.running_mean, np.float64) * scale
        if self.fusable(v, ("linear", "conv")) and (v.op["kind"] == "conv" or len(v.shape) == 1):
            # fold: (W x + b) * scale + shift = (scale W) x + (scale b + shift), per output channel
            o = v.op
            if o["kind"] == "conv" and o["params"][15] == 4:   # Winograd: (16, F8/8, C, 8), zero filters past F
                f8 = o["w"].shape[1] * 8
                s8 = np.zeros(f8)
                s8[:len(scale)] = scale
                o["w"] = self.weights(o["w"] * s8.reshape(1, -1, 1, 8))
            elif o["kind"] == "conv" and o["params"][15] == 3:   # direct: (F/fbw, K, fbw)
                o["w"] = self.weights(o["w"] * scale.reshape(o["w"].shape[0], 1, -1))
            elif o["kind"] == "conv" and o["params"][15] == 2:   # direct: (F8/8, K, 8), zero filters past F
                f8 = o["w"].shape[0] * 8
                s8 = np.zeros(f8)
                s8[:len(scale)] = scale
                o["w"] = self.weights(o["w"] * s8.reshape(-1, 1, 8))
            elif o["kind"] == "conv" and o["params"][15]:      # transposed: (G, Kg, Fg), filters last
                g = o["params"][14]
                o["w"] = self.weights(o["w"] * scale.reshape(g, 1, -1))
            elif o["kind"] == "conv":
                o["w"] = self.weights(o["w"] * scale[:, None])
            else:
                n = o["params"][1]
                w = o["w"].astype(np.float64)
                w[:, :n] *= scale
                o["w"] = self.weights(w)
            b0 = 0.0 if o["b"] is None else o["b"].astype(np.float64)
            o["b"] = self.weights(b0 * scale + shift)
            return v
        spatial = int(np.prod(v.shape[1:])) if len(v.shape) > 1 else 1
        return self.op("affine", v, v.shape, [m.num_features, spatial], w=self.weights(scale),
                       b=self.weights(shift), inplace=True)

    def pool(self, m, v: _Value) -> _Value:
        if len(v.shape) != 3:
            raise ValueError(f"compile: {type(m).__name__}: expected inputs of shape (N, C, H, W), got "
                             f"(N, {', '.join(map(str, v.shape))})")
        c, h, w = v.shape
        moved = None
        if isinstance(m, nn.AdaptiveAvgPool2d):
            oh, ow = m._out_hw((1, c, h, w))
            rows, cols, dil, is_max = _adaptive_windows(h, oh), _adaptive_windows(w, ow), (1, 1), False
            rows, cols = ((st, en - st, dv) for st, en, dv in (rows, cols))
        else:
            (kh, kw), (sh, sw), (ph, pw) = m.kernel_size, m.stride, m.padding
            dil = m.dilation
            oh, ow = (pool_output_size((h, w)[a], m.kernel_size[a], m.stride[a], m.padding[a], dil[a],
                                       m.ceil_mode, ("height", "width")[a]) for a in (0, 1))
            is_max = isinstance(m, nn.MaxPool2d)
            if is_max:
                rows, cols = _max_windows(h, kh, sh, ph, dil[0], oh), _max_windows(w, kw, sw, pw, dil[1], ow)
                # a monotone activation before a max pooling moves behind it: the same values, a quarter of
                # the activations computed
                if (v.op is not None and v.op["act"] in _MONOTONE + ("leaky",) and not v.shared
                        and v.op is self.ops[-1] and (v.op["act"] != "leaky" or v.op["alpha"] >= 0)):
                    moved = (v.op["act"], v.op["alpha"])
                    v.op["act"], v.op["alpha"] = "none", 0.0
                if (kh, kw) == (2, 2) and (sh, sw) == (2, 2) and (ph, pw) == (0, 0) and dil == (1, 1):
                    out = self.op("maxpool2", v, (c, oh, ow), [c, h, w, oh, ow])
                    if moved:
                        out.op["act"], out.op["alpha"] = moved
                    return out
            else:
                rows, cols = ((st, en - st, dv) for st, en, dv in
                              (_avg_windows(h, kh, sh, ph, oh, m.count_include_pad),
                               _avg_windows(w, kw, sw, pw, ow, m.count_include_pad)))
        tab = np.concatenate([_table(*rows), _table(*cols)]).astype(np.intp)
        out = self.op("pool", v, (c, oh, ow), [c, h, w, oh, ow, *dil, int(is_max)], tab=tab)
        if moved:
            out.op["act"], out.op["alpha"] = moved
        return out

    def softmax(self, m, v: _Value) -> _Value:
        from cnn_core.nn.activation import _softmax_dim
        ndim = len(v.shape) + 1
        d = _softmax_dim(m.dim, ndim, type(m).__name__)
        if d != ndim - 1 or ndim < 2:
            raise TypeError(f"compile: model: {type(m).__name__} along dim {d} of a {ndim}-D input: a plan "
                            "supports the last dimension only")
        n = v.shape[-1]
        return self.op("softmax", v, v.shape, [n, int(isinstance(m, nn.LogSoftmax)), v.size // n],
                       inplace=False)


def _max_windows(size: int, k: int, s: int, p: int, d: int, out: int):
    """(first input index, taps inside the input, 1) of each max-pooling window along one axis: of the taps
    u*s - p + i*d, i < k, those outside the input are skipped (padding is never the maximum)."""
    first, count = [], []
    for u in range(out):
        start = u * s - p
        taps = [start + i * d for i in range(k) if 0 <= start + i * d < size]
        first.append(taps[0] if taps else 0)
        count.append(len(taps))
    return np.array(first), np.array(count), np.ones(out, np.intp)


def _winograd_pays(c: int, f: int, oh: int, ow: int, dtype) -> bool:
    """Whether a 3x3 stride-1 one-group convolution of c -> f channels to oh x ow runs as Winograd F(2x2, 3x3):
    the measured rule of src_c/thresholds.h (enough channels and filters to pay for the transforms, and one
    image's products at least WINO_MIN_GAIN / 1000 times fewer than direct, the tiles rounded up to half
    vectors as the kernel computes them). The transforms' line buffers live on the stack: at most 32 x 32
    outputs."""
    half = 32 // np.dtype(dtype).itemsize
    tiles = -(-((oh + 1) // 2) * ((ow + 1) // 2) // half) * half
    return (c >= _plan.WINO_MIN_CHANNELS and f >= _plan.WINO_MIN_FILTERS and oh <= 32 and ow <= 32
            and 9 * oh * ow * 1000 >= _plan.WINO_MIN_GAIN * 16 * tiles)


def _table(first, count, div) -> np.ndarray:
    """Triples (first input index, taps, divisor factor), one per output along an axis."""
    return np.stack([np.asarray(first, np.intp), np.asarray(count, np.intp), np.asarray(div, np.intp)],
                    axis=1).reshape(-1)


def _activation(m) -> tuple[str, float] | None:
    if isinstance(m, nn.ReLU):
        return "relu", 0.0
    if isinstance(m, nn.Sigmoid):
        return "sigmoid", 0.0
    if isinstance(m, nn.Tanh):
        return "tanh", 0.0
    if isinstance(m, nn.ELU):
        return "elu", m.alpha
    if isinstance(m, nn.LeakyReLU):
        return "leaky", m.negative_slope
    if isinstance(m, nn.SiLU):
        return "silu", 0.0
    if isinstance(m, nn.GELU):
        return ("gelu_tanh" if m.approximate == "tanh" else "gelu"), 0.0
    return None


def _layout(builder: _Builder) -> int:
    """Arena offsets (per-sample elements, multiples of _ALIGN) for every buffer that is neither the input
    nor the output: a buffer lives from the first to the last op that touches it, and buffers alive at
    once never overlap (first fit). Returns the arena's per-sample size."""
    for i, o in enumerate(builder.ops):
        for b in (o["src"], o["src2"], o["dst"], *o["tmp"]):
            if b is not None:
                b.first = i if b.first < 0 else b.first
                b.last = max(b.last, i)
    live: list[tuple[int, int, _Buffer]] = []     # (offset, size, buffer)
    total = 0
    for b in sorted((b for b in builder.buffers if b.slot is None and b.first >= 0), key=lambda b: b.first):
        live = [e for e in live if e[2].last >= b.first]
        size = -(-b.size // _ALIGN) * _ALIGN
        offset = 0
        for off, sz, _ in sorted(live, key=lambda e: e[0]):
            if offset + size <= off:
                break
            offset = max(offset, off + sz)
        b.slot = offset
        live.append((offset, size, b))
        total = max(total, offset + size)
    return total


def _program(builder: _Builder, chunk: int):
    """The op array for chunks of `chunk` samples (arena offsets scale with the chunk)."""
    def slot(b):
        return -3 if b is None else (b.slot if b.slot < 0 else b.slot * chunk)
    ops = []
    for o in builder.ops:
        # scratch: tmp, tmp2, then (a convolution's padded input) src2
        tmp = [slot(t) for t in o["tmp"]] + [-3, -3, -3]
        src2 = slot(o["src2"]) if o["src2"] is not None else tmp[2]
        ops.append((_KIND[o["kind"]], _ACT[o["act"]], o["alpha"], slot(o["src"]), src2, slot(o["dst"]),
                    tmp[0], tmp[1], o["params"], o["w"], o["b"], o["w2"], o["b2"], o["tab"]))
    return _plan.Program(ops, builder.dtype, builder.work)


# The run-time check of a plan whose chunks run one at a time on a team (one image, say): every
# _PROBE_EVERY calls, _PROBE_CALLS calls on the team and as many on one thread, alternating, then the faster
# way (median) runs until the next look.
_PROBE_EVERY = 256
_PROBE_CALLS = 3


class _TeamChoice:
    """Whether the chunks of a plan that would run each one on a team (every op split among its threads,
    plan.c) run faster on one thread, decided by timing calls, and looked at again every _PROBE_EVERY calls.

    A team runs at the pace its threads get: when another process, or the hypervisor, takes part of one
    core, the team may be slower than one thread, and that comes and goes (small_cnn at one image, 2
    threads: 218-226 us a call in most processes, 447-454 us in a few in a row, one thread 358-363). Which
    way runs changes no value: teams of any size give one thread's results bit for bit (tests/test_plan.py).
    """

    __slots__ = ("team", "use_team", "calls", "samples")

    def __init__(self, team: int):
        self.team = team
        self.use_team = True
        self.calls = 0
        self.samples: tuple[list[float], list[float]] = ([], [])    # seconds per call: one thread, team

    def next_team(self) -> tuple[int, bool]:
        """The team size for the next call (1: one thread) and whether its time is to be recorded."""
        phase = self.calls % _PROBE_EVERY
        self.calls += 1
        if 1 <= phase <= 2 * _PROBE_CALLS:
            return (self.team if phase % 2 else 1), True
        return (self.team if self.use_team else 1), False

    def record(self, team: int, seconds: float) -> None:
        """The time of a probing call; after the last of a look, the faster way is chosen."""
        one, on_team = self.samples
        (on_team if team > 1 else one).append(seconds)
        if len(one) >= _PROBE_CALLS and len(on_team) >= _PROBE_CALLS:
            self.use_team = statistics.median(on_team) <= statistics.median(one)
            self.samples = ([], [])


class _Sized:
    """What a plan keeps per batch size and thread count: the chunk, the program, a pool of arenas
    (one per concurrent call: a call takes one and gives it back, so calls from several threads never
    share scratch) and, when the chunks run one at a time on a team, the check of that team against one
    thread."""

    __slots__ = ("chunk", "threads", "max_threads", "program", "arena_shape", "arenas", "choice")

    def __init__(self, chunk, threads, max_threads, program, arena_shape, team):
        self.chunk, self.threads, self.program, self.arena_shape = chunk, threads, program, arena_shape
        self.max_threads = max_threads      # a team that runs each chunk together may take up to this many
        self.arenas: list[np.ndarray] = []
        self.choice = _TeamChoice(max_threads) if threads == 1 and team > 1 else None


class Plan:
    """A compiled forward pass of one model (see ``compile``). ``plan(x)`` returns the model's output for
    ``x``, computed as ``model.eval()(x)`` would be; ``plan(x, out=y)`` writes it into y.

    The plan copies the weights it needs when it is compiled: training or changing the model afterwards
    does not change the plan (compile again). It is safe to call from several threads at once (each call
    takes its own scratch). Batches of any size are accepted: ``batch_size`` is the one it was compiled for,
    the layout of other sizes is made on their first call and kept. When the batch is too small to give
    each thread its own images (one image, say) and the plan runs it on a team of threads, it times a few
    calls on the team and on one thread every 256 calls and uses the faster way (the results are the same).

    Attributes:
        batch_size: the batch of ``input_shape``.
        input_shape, output_shape: full shapes, batch first, for ``batch_size``.
        dtype: float32 or float64.
    """

    def __init__(self, builder: _Builder, input_shape: tuple[int, ...], output_shape: tuple[int, ...],
                 arena_per_sample: int, description: list[str]):
        self._builder = builder
        self.input_shape = input_shape
        self.output_shape = output_shape
        self.dtype = builder.dtype
        self._sample_in = input_shape[1:]
        self._sample_out = output_shape[1:]
        # > 0: x holds indices into embeddings of at least this many rows (any integer dtype)
        self._num_embeddings = builder.num_embeddings
        self._arena_per_sample = arena_per_sample
        self._programs: dict[int, object] = {}
        self._sized: dict[tuple[int, int], _Sized] = {}
        self._lock = threading.Lock()
        self.ops = description
        self._sized_for(input_shape[0], get_num_threads())

    @property
    def batch_size(self) -> int:
        return self.input_shape[0]

    def __repr__(self) -> str:
        return (f"Plan(input_shape={self.input_shape}, output_shape={self.output_shape}, "
                f"dtype={self.dtype.name}, ops={len(self.ops)})")

    def _sized_for(self, n: int, max_threads: int) -> _Sized:
        key = (n, max_threads)
        s = self._sized.get(key)
        if s is not None:
            return s
        with self._lock:
            s = self._sized.get(key)
            if s is None:
                per_sample = max(1, self._arena_per_sample * self.dtype.itemsize)
                # at least _MIN_GEMM_COLS columns in every convolution's GEMM: a chunk of one 7x7 image
                # would repack the layer's weights for 63 columns
                cmin = -(-_MIN_GEMM_COLS // self._builder.min_cols) if self._builder.min_cols else 1
                cmax = max(1, min(_MAX_CHUNK, max(_ARENA_BYTES // per_sample, cmin), n))
                work = self._builder.work
                want = min(max_threads, max(1, int(n * work // (1 << 20))))
                chunk = max(1, min(cmax, -(-n // want)))
                threads = _plan.threads(n, chunk, max_threads, work)
                program = self._programs.get(chunk)
                if program is None:
                    program = self._programs[chunk] = _program(self._builder, chunk)
                s = _Sized(chunk, threads, max_threads, program, (threads, max(1, self._arena_per_sample * chunk)),
                           program.team(min(n, chunk), max_threads))
                self._sized[key] = s
        return s

    def __call__(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if type(x) is not np.ndarray:
            raise TypeError(f"x: expected a numpy.ndarray, got {type(x).__name__}")
        if self._num_embeddings:
            if x.dtype.kind not in "iu":
                raise TypeError(f"x: expected integer indices (the plan's model starts with an Embedding), got "
                                f"dtype {x.dtype}")
        elif x.dtype != self.dtype:
            raise TypeError(f"x: expected dtype {self.dtype.name} (the plan's), got {x.dtype}")
        if x.shape[1:] != self._sample_in or x.ndim != len(self.input_shape):
            raise ValueError(f"x: expected shape (N, {', '.join(map(str, self._sample_in))}), got {x.shape}")
        n = x.shape[0]
        if self._num_embeddings:
            if x.size:
                lo, hi = int(x.min()), int(x.max())
                if lo < 0 or hi >= self._num_embeddings:
                    raise ValueError(f"x: expected indices in [0, {self._num_embeddings}) (num_embeddings), got "
                                     f"values in [{lo}, {hi}]")
            if x.dtype != np.intp or not x.flags.c_contiguous:
                x = np.ascontiguousarray(x, np.intp)
        elif not x.flags.c_contiguous:
            x = np.ascontiguousarray(x)
        if out is None:
            out = np.empty((n,) + self._sample_out, self.dtype)
        else:
            _check_out(out, (n,) + self._sample_out, self.dtype, x)
        if n == 0:
            return out
        s = self._sized_for(n, get_num_threads())
        try:
            arena = s.arenas.pop()
        except IndexError:
            arena = np.empty(s.arena_shape, self.dtype)
        try:
            if s.choice is None:
                s.program.run(x, out, arena, s.chunk, s.max_threads)
            else:
                team, timed = s.choice.next_team()
                t0 = time.perf_counter()
                s.program.run(x, out, arena, s.chunk, s.max_threads, team)
                if timed:
                    s.choice.record(team, time.perf_counter() - t0)
        finally:
            s.arenas.append(arena)
        return out


def _check_out(out, shape, dtype, x) -> None:
    check_output(out, "out", shape, dtype, "the plan's")
    if np.may_share_memory(out, x):
        raise ValueError("out: expected an array that does not overlap x, got one that does")


def compile(model, input_shape: Sequence[int], dtype=None) -> Plan:
    """Compile ``model``'s forward pass in eval mode for inputs of ``input_shape`` (batch first) into a Plan.

    The weights are copied (a batch norm folded into the layer before it, Linear's transposed for the
    small-batch kernel), so the plan does not follow later changes of the model. Other batch sizes than
    ``input_shape[0]`` work too.

    Args:
        model: a ``cnn_core.nn.Module`` built from the layers the module docstring lists.
        input_shape: ``(N, ...)``, the input of one batch.
        dtype: float32 or float64 (default: the model's).

    Raises:
        TypeError: a layer the plan does not support (the message names it), or a wrong argument type.
        ValueError: an input shape the model does not accept.

    Example:
        >>> import numpy as np, cnn_core
        >>> model = cnn_core.models.lenet5(rng=0).eval()
        >>> plan = cnn_core.compile(model, (1, 1, 28, 28))
        >>> x = np.random.default_rng(0).random((3, 1, 28, 28), np.float32)
        >>> bool(np.allclose(plan(x), model(x), rtol=1e-5, atol=1e-6)), plan.batch_size
        (True, 1)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a cnn_core.nn.Module, got {type(model).__name__}")
    if isinstance(input_shape, (str, bytes)) or not isinstance(input_shape, Sequence):
        raise TypeError(f"input_shape: expected a sequence of ints like (1, 1, 28, 28), got {input_shape!r}")
    shape = []
    for i, d in enumerate(input_shape):
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)):
            raise TypeError(f"input_shape[{i}]: expected an int, got {d!r}")
        if d < 1:
            raise ValueError(f"input_shape[{i}]: expected a positive int, got {d}")
        shape.append(int(d))
    if len(shape) < 2:
        raise ValueError(f"input_shape: expected (batch, ...) with at least 2 dimensions, got {tuple(shape)}")
    dt = model.dtype if dtype is None else np.dtype(dtype)
    if dt not in FLOAT_DTYPES:
        raise ValueError(f"dtype: expected float32 or float64, got {dt}")
    b = _Builder(np.dtype(dt))
    x = _Value(tuple(shape[1:]), _Buffer(int(np.prod(shape[1:])), _plan.IN), None)
    y = b.emit(model, x)
    if y.pair:
        raise TypeError(f"compile: model: {type(model).__name__} returns a recurrent layer's (out, state) pair, "
                        "not one array: a plan supports a recurrent layer followed by LastStep")
    if b.num_embeddings and (y.buf.slot == _plan.IN or any(
            o["kind"] != "gather" and x.buf in (o["src"], o["src2"]) for o in b.ops)):
        raise TypeError("compile: model: reads its integer input other than through Embedding layers: not "
                        "supported by a plan")
    if y.buf.slot == _plan.IN or y.shared:
        y = b.op("copy", y, y.shape, [y.size])
    y.buf.slot = _plan.OUT
    arena = _layout(b)
    description = [_describe(o) for o in b.ops]
    return Plan(b, tuple(shape), (shape[0],) + tuple(y.shape), arena, description)


def _describe(o: dict) -> str:
    act = "" if o["act"] == "none" else f" + {o['act']}"
    return f"{o['kind']}{tuple(o['params'])}{act}"


# predict's plans, per model: (per-sample input shape, dtype, the model's submodules, copies of its parameters
# and buffers when it was compiled, the plan or None when the model has layers a plan does not support)
_PREDICT_PLANS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_PREDICT_LOCK = threading.Lock()


def _walk(m, modules: list, arrays: list) -> None:
    """m and its descendants (state_dict's order), and every parameter's and buffer's array."""
    modules.append(m)
    for p in m._parameters.values():
        if p is not None:
            arrays.append(p.data)
    for b in m._buffers.values():
        if b is not None:
            arrays.append(b)
    for c in m._modules.values():
        _walk(c, modules, arrays)


def _predict_plan(model, sample_shape: tuple[int, ...], dtype) -> Plan | None:
    """A plan of `model` for inputs of `sample_shape` (per sample), or None when the model has layers a plan
    does not support. Kept on the side for the next call and reused while the model is made of the same
    module objects and every parameter and buffer holds the bytes it held at compile time (training,
    load_state_dict or replacing a layer compiles a new plan; a layer's settings changed in place, such as
    a LeakyReLU's slope, are not seen). The check walks the model once and compares its weights with one
    memcmp each: a few microseconds for LeNet-5."""
    if not isinstance(model, nn.Module):
        return None
    modules: list = []
    arrays: list = []
    _walk(model, modules, arrays)
    with _PREDICT_LOCK:
        entry = _PREDICT_PLANS.get(model)
    del modules[0]          # the model is the key: a strong reference in the value would keep it alive
    if (entry is not None and entry[0] == sample_shape and entry[1] == dtype and len(entry[2]) == len(modules)
            and all(map(operator.is_, modules, entry[2])) and _plan.same_bytes(arrays, entry[3])):
        return entry[4]
    # copies first: weights changed while compiling show as a change at the next call
    saved = [np.array(a, order="C", copy=True) for a in arrays]
    try:
        plan = compile(model, (1,) + tuple(sample_shape), dtype)
    except (TypeError, ValueError):
        plan = None
    with _PREDICT_LOCK:
        _PREDICT_PLANS[model] = (tuple(sample_shape), np.dtype(dtype), modules, saved, plan)
    return plan
