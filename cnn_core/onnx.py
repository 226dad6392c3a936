"""ONNX export of networks built from ``cnn_core.nn``: ``export(model, path, input_shape)``.

The exported graph computes the model's eval-mode forward (what ``cnn_core.predict`` computes): Dropout and
Dropout2d are the identity, BatchNorm normalizes with its running statistics (with the batch's when
``track_running_stats=False``, as cnn_core does in eval mode). The batch dimension is dynamic (``"N"``);
every other dimension is fixed by ``input_shape``.

How each layer is written (ONNX operators, opset 17 or newer):

- ``Linear``: Gemm (transB=1). ``Conv2d``: Conv with its stride, dilation, groups and padding (``"same"``
  as the explicit pads PyTorch uses: ``dilation * (kernel_size - 1)`` in all per axis, the odd one after).
- ``MaxPool2d``: Pad with -inf (padding is never the maximum) up to the last window cnn_core takes, so that
  ceil_mode needs no help from the runtime's own rounding rule, then MaxPool (dilations, no pads).
- ``AvgPool2d``: Pad with zeros as far as the last window reaches, AveragePool over full windows, then, where
  cnn_core's divisor D (count_include_pad, the ceil-mode overhang) differs from KH*KW, a Mul by KH*KW / D.
- ``AdaptiveAvgPool2d``: GlobalAveragePool (output 1), AveragePool (output dividing the input), else the two
  averaging matrices of its windows, ``y = A_h x A_w^T`` (MatMul).
- Activations: Sigmoid, Tanh, Relu, Elu, LeakyRelu, Identity; GELU as ``x (1 + erf(x / sqrt 2)) / 2`` (or
  its tanh form) and SiLU as ``x sigmoid(x)`` from basic operators; Softmax/LogSoftmax along their dim. ONNX
  keeps float attributes in float32, so a float64 graph writes ELU and LeakyReLU with basic operators and
  float64 constants; BatchNormalization's epsilon stays an attribute (rounded to float32: 1e-5 moves by 2.5e-13).
- ``Flatten``: Flatten(axis=1). ``BatchNorm1d``/``2d``: BatchNormalization. ``Embedding``: Gather (the
  graph's input is then int64 indices).
- ``RNN``/``LSTM``/``GRU``: one ONNX RNN/LSTM/GRU node per layer. ONNX orders the gate blocks of W, R and B
  differently from PyTorch (LSTM: i, o, f, c against PyTorch's i, f, g, o; GRU: z, r, h against r, z, n), so
  the blocks are permuted; the GRU uses linear_before_reset=1, PyTorch's ``r * (W_hn h + b_hn)``.
  batch_first becomes a Transpose on each side. A recurrent layer's output is ``(out, h_n)`` (the LSTM's
  ``(out, (h_n, c_n))``): a graph ending in one has the outputs ``output``, ``h_n`` (and ``c_n``).
  ``LastStep`` is a Gather of the last time step.
- Containers: ``Sequential`` chains, ``Residual`` adds (Add), ``Concat`` joins (Concat); ``RNNClassifier``
  (cnn_core.models) reshapes images to rows, runs its recurrent layer and scores ``h_n[-1]`` with its Linear.

onnx is optional (the ``onnx`` extra: ``pip install "cnn_core[onnx]"``) and imported inside ``export``.
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable, Union

import numpy as np

from cnn_core import nn
from cnn_core._validation import check_int, check_path
from cnn_core._version import __version__
from cnn_core.kernels.pooling import _adaptive_windows, _avg_windows
from cnn_core.models.rnn import RNNClassifier
from cnn_core.nn.module import Module, resolve_dtype, takes_integer_input, temporary_mode
from cnn_core.serialization import _write_atomic

__all__ = ["export", "require_onnx", "MIN_OPSET", "INSTALL_HINT"]

MIN_OPSET = 17
INSTALL_HINT = 'pip install "cnn_core[onnx]"'
BATCH_DIM = "N"          # the symbolic name of the dynamic batch dimension
_OUTPUT_NAMES = ("output", "h_n", "c_n")   # a tensor; a recurrent layer's (output, h_n) or (output, (h_n, c_n))
_PROTOBUF_LIMIT = (1 << 31) - 1


def require_onnx():
    """The onnx module, or an ImportError naming the ``onnx`` extra that installs it."""
    try:
        import onnx
    except ImportError:
        raise ImportError(f"cnn_core.onnx.export needs the onnx package, which is not installed; install it with: "
                          f"{INSTALL_HINT}", name="onnx") from None
    return onnx


class _T:
    """A tensor of the graph being built: its ONNX name and what cnn_core computes there for the example input
    (its shape and dtype drive the conversion of the layers that read it). Not a tuple: tuples are the
    (out, state) pairs of recurrent layers."""
    __slots__ = ("name", "ex")

    def __init__(self, name: str, ex: np.ndarray):
        self.name, self.ex = name, ex


_Value = Union[_T, tuple]   # a tensor, or a recurrent layer's (out, state) with state a tensor or (h_n, c_n)


class _Graph:
    """Nodes and initializers of the graph being built; `dtype` is the float dtype of the exported weights."""

    def __init__(self, onnx, dtype: np.dtype, opset: int):
        self.onnx, self.dtype, self.opset = onnx, dtype, opset
        self.nodes: list = []
        self.initializers: list = []
        self._used: set[str] = {"input", *_OUTPUT_NAMES}

    def fresh(self, base: str) -> str:
        name, i = base, 1
        while name in self._used:
            name, i = f"{base}_{i}", i + 1
        self._used.add(name)
        return name

    def const(self, array: np.ndarray, base: str) -> str:
        name = self.fresh(base)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.array(array, order="C"), name))
        return name

    def weight(self, array, base: str) -> str:
        """A float initializer in the exported dtype."""
        return self.const(np.asarray(array, dtype=self.dtype), base)

    def ints(self, values, base: str) -> str:
        return self.const(np.asarray(values, dtype=np.int64), base)

    def op(self, op_type: str, inputs: list[str], base: str, n_out: int = 1, **attrs) -> Any:
        """Add one node; returns its output name (a list of names when n_out > 1)."""
        outs = [self.fresh(f"{base}{op_type}" if n_out == 1 else f"{base}{op_type}_{i}") for i in range(n_out)]
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, outs, name=self.fresh(f"node:{base}{op_type}"),
                                                     **attrs))
        return outs[0] if n_out == 1 else outs


def _run(m: Module, x: _Value) -> Any:
    """cnn_core's own eval-mode output of `m` on the example arrays of `x`."""
    return m(_examples(x))


def _examples(x: _Value):
    return x.ex if isinstance(x, _T) else tuple(_examples(v) for v in x)


def _tensor(x: _Value, m: Module, path: str) -> _T:
    if not isinstance(x, _T):
        raise TypeError(f"export: {_where(path, m)} reads the (output, state) pair of a recurrent layer; only "
                        f"LastStep takes that pair in a Sequential")
    return x


def _where(path: str, m: Module) -> str:
    return f"layer {path.rstrip('.') or '(the model)'} ({type(m).__name__})"


# ---- layers ------------------------------------------------------------------------------------------------

def _linear(g: _Graph, m: nn.Linear, x: _Value, path: str) -> _T:
    x = _tensor(x, m, path)
    y = _run(m, x)
    inputs = [x.name, g.weight(m.weight.data, path + "weight")]
    if m.bias is not None:
        inputs.append(g.weight(m.bias.data, path + "bias"))
    return _T(g.op("Gemm", inputs, path, transB=1), y)


def _conv2d(g: _Graph, m: nn.Conv2d, x: _Value, path: str) -> _T:
    x = _tensor(x, m, path)
    y = _run(m, x)
    (kh, kw), (dh, dw) = m.kernel_size, m.dilation
    if m.padding == "same":  # dilation*(k-1) zeros per axis, the odd one after (cnn_core's and PyTorch's rule)
        th, tw = dh * (kh - 1), dw * (kw - 1)
        pads = [th // 2, tw // 2, th - th // 2, tw - tw // 2]
    elif m.padding == "valid":
        pads = [0, 0, 0, 0]
    else:
        pads = [*m.padding, *m.padding]
    inputs = [x.name, g.weight(m.weight.data, path + "weight")]
    if m.bias is not None:
        inputs.append(g.weight(m.bias.data, path + "bias"))
    return _T(g.op("Conv", inputs, path, kernel_shape=list(m.kernel_size), strides=list(m.stride), pads=pads,
                   dilations=list(m.dilation), group=m.groups), y)


def _pad_to_windows(x: _T, out_hw, kernel, stride, padding, dilation) -> tuple[list[int], list[int]]:
    """(begin, end) padding of H and W so that a floor-mode pooling without pads takes exactly cnn_core's
    windows: `padding` before, and after as far as the last window reaches (the ceil-mode overhang included;
    nothing when the last window ends inside the input)."""
    end = []
    for a in (0, 1):
        span = dilation[a] * (kernel[a] - 1) + 1
        end.append(max((out_hw[a] - 1) * stride[a] + span - x.ex.shape[2 + a] - padding[a], 0))
    return list(padding), end


def _pad(g: _Graph, x: _T, begin, end, value: float, path: str) -> str:
    if not any(begin) and not any(end):
        return x.name
    pads = g.ints([0, 0, *begin, 0, 0, *end], path + "pads")
    fill = g.const(np.asarray(value, dtype=g.dtype), path + "pad_value")
    return g.op("Pad", [x.name, pads, fill], path, mode="constant")


def _max_pool2d(g: _Graph, m: nn.MaxPool2d, x: _Value, path: str) -> _T:
    x = _tensor(x, m, path)
    y = _run(m, x)
    begin, end = _pad_to_windows(x, y.shape[2:], m.kernel_size, m.stride, m.padding, m.dilation)
    src = _pad(g, x, begin, end, -np.inf, path)   # padding is never the maximum
    return _T(g.op("MaxPool", [src], path, kernel_shape=list(m.kernel_size), strides=list(m.stride),
                   dilations=list(m.dilation)), y)


def _avg_pool2d(g: _Graph, m: nn.AvgPool2d, x: _Value, path: str) -> _T:
    x = _tensor(x, m, path)
    y = _run(m, x)
    (kh, kw), (sh, sw), (ph, pw) = m.kernel_size, m.stride, m.padding
    oh, ow = y.shape[2:]
    begin, end = _pad_to_windows(x, (oh, ow), m.kernel_size, m.stride, m.padding, (1, 1))
    src = _pad(g, x, begin, end, 0.0, path)
    # Every window is now KH x KW elements of the zero-padded input: AveragePool divides its sum by KH*KW.
    mean = g.op("AveragePool", [src], path, kernel_shape=[kh, kw], strides=[sh, sw])
    h, w = x.ex.shape[2:]
    divisor = np.outer(_avg_windows(h, kh, sh, ph, oh, m.count_include_pad)[2],
                       _avg_windows(w, kw, sw, pw, ow, m.count_include_pad)[2])
    if np.all(divisor == kh * kw):
        return _T(mean, y)
    scale = g.weight((kh * kw) / divisor.astype(np.float64), path + "divisor_scale")
    return _T(g.op("Mul", [mean, scale], path), y)


def _averaging_matrix(size: int, out: int) -> np.ndarray:
    """(out, size): row u averages adaptive pooling's window u of the axis."""
    start, end, count = _adaptive_windows(size, out)
    a = np.zeros((out, size))
    for u in range(out):
        a[u, start[u]:end[u]] = 1.0 / count[u]
    return a


def _adaptive_avg_pool2d(g: _Graph, m: nn.AdaptiveAvgPool2d, x: _Value, path: str) -> _T:
    x = _tensor(x, m, path)
    y = _run(m, x)
    (h, w), (oh, ow) = x.ex.shape[2:], y.shape[2:]
    if (oh, ow) == (1, 1):
        return _T(g.op("GlobalAveragePool", [x.name], path), y)
    if h % oh == 0 and w % ow == 0:  # the windows tile the input: floor(u*H/OH) = u*H/OH
        k = [h // oh, w // ow]
        return _T(g.op("AveragePool", [x.name], path, kernel_shape=k, strides=k), y)
    rows = g.weight(_averaging_matrix(h, oh), path + "rows")
    cols = g.weight(_averaging_matrix(w, ow).T, path + "cols")
    return _T(g.op("MatMul", [rows, g.op("MatMul", [x.name, cols], path)], path), y)


_UNARY = {nn.Sigmoid: "Sigmoid", nn.Tanh: "Tanh", nn.ReLU: "Relu", nn.Identity: "Identity",
          nn.Dropout: "Identity", nn.Dropout2d: "Identity"}


def _unary(g: _Graph, m: Module, x: _Value, path: str) -> _T:
    x = _tensor(x, m, path)
    return _T(g.op(_UNARY[type(m)], [x.name], path), _run(m, x))


# ONNX keeps float attributes in float32: a float64 graph gets ELU's alpha and LeakyReLU's slope as float64
# constants of the same formula written with basic operators instead (Elu's and LeakyRelu's alpha would be
# rounded to float32, a relative error of ~1e-8 in the negative part).

def _positive_or(g: _Graph, x: _T, negative: str, path: str) -> str:
    """``x`` where x > 0, else `negative`."""
    zero = _scalar(g, 0.0, path)
    return g.op("Where", [g.op("Greater", [x.name, zero], path), x.name, negative], path)


def _elu(g: _Graph, m: nn.ELU, x: _Value, path: str) -> _T:
    x = _tensor(x, m, path)
    y = _run(m, x)
    if g.dtype != np.float64:
        return _T(g.op("Elu", [x.name], path, alpha=float(m.alpha)), y)
    expm1 = g.op("Sub", [g.op("Exp", [x.name], path), _scalar(g, 1.0, path)], path)
    return _T(_positive_or(g, x, g.op("Mul", [expm1, _scalar(g, m.alpha, path)], path), path), y)


def _leaky_relu(g: _Graph, m: nn.LeakyReLU, x: _Value, path: str) -> _T:
    x = _tensor(x, m, path)
    y = _run(m, x)
    if g.dtype != np.float64:
        return _T(g.op("LeakyRelu", [x.name], path, alpha=float(m.negative_slope)), y)
    return _T(_positive_or(g, x, g.op("Mul", [x.name, _scalar(g, m.negative_slope, path)], path), path), y)


def _scalar(g: _Graph, value: float, path: str) -> str:
    return g.weight(np.asarray(value), path + "c")


def _gelu(g: _Graph, m: nn.GELU, x: _Value, path: str) -> _T:
    x = _tensor(x, m, path)
    y = _run(m, x)
    if m.approximate == "tanh":  # x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) / 2
        x3 = g.op("Mul", [g.op("Mul", [x.name, x.name], path), x.name], path)
        inner = g.op("Add", [x.name, g.op("Mul", [x3, _scalar(g, 0.044715, path)], path)], path)
        t = g.op("Tanh", [g.op("Mul", [inner, _scalar(g, math.sqrt(2.0 / math.pi), path)], path)], path)
    else:                        # x (1 + erf(x / sqrt 2)) / 2
        t = g.op("Erf", [g.op("Mul", [x.name, _scalar(g, 1.0 / math.sqrt(2.0), path)], path)], path)
    one_plus = g.op("Add", [t, _scalar(g, 1.0, path)], path)
    half_x = g.op("Mul", [x.name, _scalar(g, 0.5, path)], path)
    return _T(g.op("Mul", [half_x, one_plus], path), y)


def _silu(g: _Graph, m: nn.SiLU, x: _Value, path: str) -> _T:
    x = _tensor(x, m, path)
    return _T(g.op("Mul", [x.name, g.op("Sigmoid", [x.name], path)], path), _run(m, x))


def _softmax(g: _Graph, m: Module, x: _Value, path: str) -> _T:
    x = _tensor(x, m, path)
    y = _run(m, x)
    axis = nn.activation._softmax_dim(m.dim, x.ex.ndim, type(m).__name__)
    return _T(g.op(type(m).__name__, [x.name], path, axis=axis), y)


def _flatten(g: _Graph, m: nn.Flatten, x: _Value, path: str) -> _T:
    x = _tensor(x, m, path)
    return _T(g.op("Flatten", [x.name], path, axis=1), _run(m, x))


def _reduce_mean(g: _Graph, x: str, axes: list[int], path: str) -> str:
    if g.opset >= 18:  # axes became an input in opset 18
        return g.op("ReduceMean", [x, g.ints(axes, path + "axes")], path, keepdims=1)
    return g.op("ReduceMean", [x], path, axes=axes, keepdims=1)


def _batch_norm(g: _Graph, m: Module, x: _Value, path: str) -> _T:
    x = _tensor(x, m, path)
    y = _run(m, x)
    c = m.num_features
    gamma = m.weight.data if m.affine else np.ones(c)
    beta = m.bias.data if m.affine else np.zeros(c)
    if m.track_running_stats:
        inputs = [x.name, g.weight(gamma, path + ("weight" if m.affine else "scale")),
                  g.weight(beta, path + ("bias" if m.affine else "shift")),
                  g.weight(m.running_mean, path + "running_mean"), g.weight(m.running_var, path + "running_var")]
        return _T(g.op("BatchNormalization", inputs, path, epsilon=float(m.eps)), y)
    # no running statistics: eval mode normalizes with the batch's mean and biased variance, as in training
    axes = [0] + list(range(2, x.ex.ndim))
    bshape = (c,) + (1,) * (x.ex.ndim - 2)
    centered = g.op("Sub", [x.name, _reduce_mean(g, x.name, axes, path)], path)
    var = _reduce_mean(g, g.op("Mul", [centered, centered], path), axes, path)
    std = g.op("Sqrt", [g.op("Add", [var, _scalar(g, m.eps, path)], path)], path)
    normed = g.op("Div", [centered, std], path)
    scaled = g.op("Mul", [normed, g.weight(np.reshape(gamma, bshape), path + "weight")], path)
    return _T(g.op("Add", [scaled, g.weight(np.reshape(beta, bshape), path + "bias")], path), y)


def _embedding(g: _Graph, m: nn.Embedding, x: _Value, path: str) -> _T:
    x = _tensor(x, m, path)
    return _T(g.op("Gather", [g.weight(m.weight.data, path + "weight"), x.name], path, axis=0), _run(m, x))


# ONNX's gate blocks, as indices of PyTorch's: LSTM i, o, f, c from i, f, g, o; GRU z, r, h from r, z, n.
_GATE_ORDER = {nn.RNN: [0], nn.LSTM: [0, 3, 1, 2], nn.GRU: [1, 0, 2]}


def _gates(a: np.ndarray, order: list[int], h: int) -> np.ndarray:
    return np.concatenate([a[k * h:(k + 1) * h] for k in order], axis=0)


def _recurrent(g: _Graph, m: Module, x: _Value, path: str) -> tuple:
    x = _tensor(x, m, path)
    out_ex, state_ex = _run(m, x)
    h, order, op = m.hidden_size, _GATE_ORDER[type(m)], type(m).__name__
    src = g.op("Transpose", [x.name], path, perm=[1, 0, 2]) if m.batch_first else x.name   # ONNX is time-major
    attrs: dict[str, Any] = {"hidden_size": h}
    if isinstance(m, nn.RNN):
        attrs["activations"] = [m.nonlinearity.capitalize()]
    elif isinstance(m, nn.GRU):
        attrs["linear_before_reset"] = 1
    finals: list[list[str]] = [[] for _ in range(m.STATES)]
    for layer in range(m.num_layers):
        w_ih, w_hh, b_ih, b_hh = m._weights(layer)
        inputs = [src, g.weight(_gates(w_ih.data, order, h)[None], f"{path}W_l{layer}"),
                  g.weight(_gates(w_hh.data, order, h)[None], f"{path}R_l{layer}")]
        if b_ih is not None:
            b = np.concatenate([_gates(b_ih.data, order, h), _gates(b_hh.data, order, h)])
            inputs.append(g.weight(b[None], f"{path}B_l{layer}"))
        outs = g.op(op, inputs, path, n_out=1 + m.STATES, **attrs)
        # Y is (T, num_directions = 1, N, H); Y_h (and Y_c) are (1, N, H), this layer's slice of h_n (c_n)
        src = g.op("Squeeze", [outs[0], g.ints([1], path + "axes")], path)
        for i in range(m.STATES):
            finals[i].append(outs[1 + i])
    out = g.op("Transpose", [src], path, perm=[1, 0, 2]) if m.batch_first else src
    states = [f[0] if len(f) == 1 else g.op("Concat", f, path, axis=0) for f in finals]
    if m.STATES == 1:
        return _T(out, out_ex), _T(states[0], state_ex)
    return _T(out, out_ex), (_T(states[0], state_ex[0]), _T(states[1], state_ex[1]))


def _last_step(g: _Graph, m: nn.LastStep, x: _Value, path: str) -> _T:
    y = _run(m, x)
    out = x[0] if isinstance(x, tuple) else x
    index = g.ints(-1, path + "last")   # a scalar index: the time axis goes away
    return _T(g.op("Gather", [out.name, index], path, axis=1 if m.batch_first else 0), y)


# ---- containers and models ---------------------------------------------------------------------------------

def _sequential(g: _Graph, m: nn.Sequential, x: _Value, path: str) -> _Value:
    for i, layer in enumerate(m):
        x = _convert(g, layer, x, f"{path}{i}.")
    return x


def _residual(g: _Graph, m: nn.Residual, x: _Value, path: str) -> _T:
    x = _tensor(x, m, path)
    y = _tensor(_convert(g, m.block, x, path + "block."), m.block, path + "block.")
    s = x if m.shortcut is None else _tensor(_convert(g, m.shortcut, x, path + "shortcut."), m.shortcut,
                                             path + "shortcut.")
    return _T(g.op("Add", [y.name, s.name], path), y.ex + s.ex)


def _concat(g: _Graph, m: nn.Concat, x: _Value, path: str) -> _T:
    x = _tensor(x, m, path)
    outs = [_tensor(_convert(g, b, x, f"{path}{i}."), b, f"{path}{i}.") for i, b in enumerate(m)]
    ex = _run(m, x)
    return _T(g.op("Concat", [o.name for o in outs], path, axis=m.dim % ex.ndim), ex)


def _rnn_classifier(g: _Graph, m: RNNClassifier, x: _Value, path: str) -> _T:
    x = _tensor(x, m, path)
    if x.ex.ndim == 4:  # images (N, 1, H, W) read row by row: (N, H, W)
        _, _, hh, ww = x.ex.shape
        x = _T(g.op("Reshape", [x.name, g.ints([0, hh, ww], path + "rows")], path), x.ex.reshape(-1, hh, ww))
    _, state = _recurrent(g, m.rnn, x, path + "rnn.")
    h_n = state[0] if isinstance(state, tuple) else state
    last = _T(g.op("Gather", [h_n.name, g.ints(-1, path + "last")], path, axis=0), h_n.ex[-1])
    return _linear(g, m.fc, last, path + "fc.")


_Converter = Callable[[_Graph, Any, _Value, str], _Value]
_CONVERTERS: dict[type, _Converter] = {
    nn.Linear: _linear, nn.Conv2d: _conv2d, nn.MaxPool2d: _max_pool2d, nn.AvgPool2d: _avg_pool2d,
    nn.AdaptiveAvgPool2d: _adaptive_avg_pool2d, nn.ELU: _elu, nn.LeakyReLU: _leaky_relu, nn.GELU: _gelu,
    nn.SiLU: _silu, nn.Softmax: _softmax, nn.LogSoftmax: _softmax, nn.Flatten: _flatten,
    nn.BatchNorm1d: _batch_norm, nn.BatchNorm2d: _batch_norm, nn.Embedding: _embedding,
    nn.RNN: _recurrent, nn.LSTM: _recurrent, nn.GRU: _recurrent, nn.LastStep: _last_step,
    nn.Sequential: _sequential, nn.Residual: _residual, nn.Concat: _concat, RNNClassifier: _rnn_classifier,
    **{cls: _unary for cls in _UNARY},
}


def _convert(g: _Graph, m: Module, x: _Value, path: str) -> _Value:
    conv = _CONVERTERS.get(type(m))
    if conv is None:
        supported = ", ".join(sorted(c.__name__ for c in _CONVERTERS))
        raise TypeError(f"export: {_where(path, m)} has no ONNX conversion; supported: {supported}")
    return conv(g, m, x, path)


def _leaves(m: Module):
    """The layers of `m` in the order its forward runs them (containers opened)."""
    if isinstance(m, (nn.Sequential, nn.Concat)):
        for c in m:
            yield from _leaves(c)
    elif isinstance(m, nn.Residual):
        yield from _leaves(m.block)
    elif isinstance(m, RNNClassifier):
        yield m.rnn
    else:
        yield m


_LAYOUT_FREE = (nn.Embedding, nn.Identity, nn.Dropout, nn.Dropout2d, nn.Sigmoid, nn.Tanh, nn.ReLU, nn.ELU,
                nn.LeakyReLU, nn.GELU, nn.SiLU)


def _batch_axis(model: Module) -> int:
    """1 when the model reads time-major sequences (its first layer that cares about the layout is a recurrent
    layer with batch_first=False), else 0."""
    for leaf in _leaves(model):
        if isinstance(leaf, _LAYOUT_FREE):
            continue
        return 1 if isinstance(leaf, (nn.RNN, nn.LSTM, nn.GRU)) and not leaf.batch_first else 0
    return 0


def _flat(v) -> list:
    """The tensors (or arrays) of a value, nested (out, state) tuples flattened in order."""
    return [v] if not isinstance(v, tuple) else [t for part in v for t in _flat(part)]


def _check_input_shape(input_shape) -> tuple[int, ...]:
    if not isinstance(input_shape, (tuple, list)) or not input_shape:
        raise TypeError(f"input_shape: expected a non-empty tuple of ints (the shape of one input batch, e.g. "
                        f"(1, 1, 28, 28)), got {input_shape!r}")
    return tuple(check_int(d, f"input_shape[{i}]", 1) for i, d in enumerate(input_shape))


def export(model: Module, path: str | os.PathLike, input_shape: tuple[int, ...], dtype=None,
           opset: int = MIN_OPSET) -> None:
    """Write `model` as an ONNX model (opset `opset`, 17 or newer) to `path`, atomically.

    The graph computes the model's eval-mode forward (Dropout the identity, BatchNorm with its running
    statistics) on one input named ``input`` and returns ``output`` (a graph ending in a recurrent layer also
    returns ``h_n``, and the LSTM ``c_n``). Initializers carry the parameters' state_dict names (``0.weight``,
    ...) where the layer's ONNX operator takes them as they are. See the module docstring for how each layer
    is written; a layer without a conversion (a user-defined Module, ModuleList) is a TypeError naming it.

    Args:
        model: a network built from cnn_core.nn layers and containers (or ``models.RNNClassifier``).
        path: the ``.onnx`` file to write (through the library's atomic writer: the file at `path` is always
            either the old one or the whole new one).
        input_shape: the shape of one input batch, batch dimension included, e.g. ``(1, 1, 28, 28)`` for
            LeNet-5. The batch dimension (axis 0, or 1 for a model reading time-major sequences) is exported as
            the dynamic dimension ``"N"``; the others are fixed. The model is run once on zeros of this shape
            (in eval mode, its modes restored afterwards), so a shape it cannot take fails here, as its forward
            reports it.
        dtype: float32 or float64, the exported weights' and the float input's dtype (default: the model's).
            A model whose first layer is an Embedding takes int64 indices.
        opset: the ONNX opset version (default 17; at most the installed onnx's newest).

    Raises:
        ImportError: onnx is not installed (install the ``onnx`` extra).
        TypeError: a wrong argument type, or a layer with no ONNX conversion.
        ValueError: a wrong value (an opset out of range, an input shape the model cannot take).

    Example:
        >>> from cnn_core import models, onnx                              # doctest: +SKIP
        >>> onnx.export(models.lenet5(rng=0), "lenet5.onnx", (1, 1, 28, 28))  # doctest: +SKIP
    """
    if not isinstance(model, Module):
        raise TypeError(f"model: expected a cnn_core.nn.Module, got {type(model).__name__}")
    user_path = check_path(path)
    shape = _check_input_shape(input_shape)
    out_dtype = model.dtype if dtype is None else resolve_dtype(dtype)
    opset = check_int(opset, "opset", MIN_OPSET)
    onnx = require_onnx()
    newest = onnx.defs.onnx_opset_version()
    if opset > newest:
        raise ValueError(f"opset: expected an int in [{MIN_OPSET}, {newest}] (the installed onnx {onnx.__version__} "
                         f"knows opsets up to {newest}), got {opset}")
    integer = takes_integer_input(model)
    batch_axis = _batch_axis(model)
    if batch_axis >= len(shape):
        raise ValueError(f"input_shape: expected at least {batch_axis + 1} dimensions (the batch is axis "
                         f"{batch_axis}), got {shape}")
    g = _Graph(onnx, np.dtype(out_dtype), opset)
    with temporary_mode(model, False):
        outputs = _flat(_convert(g, model, _T("input", np.zeros(shape, np.int64 if integer else model.dtype)), ""))
        # The output dimensions that follow the batch: those that change with the batch size.
        other = list(shape)
        other[batch_axis] += 1
        other_outputs = _flat(model(np.zeros(other, np.int64 if integer else model.dtype)))
    helper = onnx.helper
    in_dims: list[Any] = list(shape)
    in_dims[batch_axis] = BATCH_DIM
    in_type = helper.np_dtype_to_tensor_dtype(np.dtype(np.int64) if integer else np.dtype(out_dtype))
    graph_inputs = [helper.make_tensor_value_info("input", in_type, in_dims)]
    names = _OUTPUT_NAMES if len(outputs) <= len(_OUTPUT_NAMES) else [f"output_{i}" for i in range(len(outputs))]
    graph_outputs = []
    for name, t, alt in zip(names, outputs, other_outputs):
        # an Identity names each output (an output may be the input itself, e.g. a model of Dropout alone)
        g.nodes.append(helper.make_node("Identity", [t.name], [name], name=g.fresh(f"node:{name}")))
        dims = [BATCH_DIM if a != b else a for a, b in zip(t.ex.shape, alt.shape)]
        out_type = in_type if t.ex.dtype.kind in "iu" else helper.np_dtype_to_tensor_dtype(np.dtype(out_dtype))
        graph_outputs.append(helper.make_tensor_value_info(name, out_type, dims))
    graph = helper.make_graph(g.nodes, "cnn_core", graph_inputs, graph_outputs, g.initializers)
    opsets = [helper.make_opsetid("", opset)]
    proto = helper.make_model(graph, opset_imports=opsets, producer_name="cnn_core", producer_version=__version__)
    # the oldest IR version that carries this opset: runtimes older than the installed onnx still read the file
    proto.ir_version = helper.find_min_ir_version_for(opsets)
    if proto.ByteSize() > _PROTOBUF_LIMIT:
        raise ValueError(f"model: the ONNX file would be {proto.ByteSize():,} bytes, more than protobuf's 2 GB "
                         f"limit for one file")
    onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    _write_atomic(user_path, lambda f: f.write(data), who="cnn_core.onnx.export")
