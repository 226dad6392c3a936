"""Recurrent layers (PyTorch's RNN, LSTM and GRU), trained by backpropagation through time, and LastStep.

Every layer runs time-major inside: for each of its `num_layers` layers, the input projection of all T steps is
one GEMM over the (T*N, D) rows, the recurrence is one call into the compiled time loop (cnn_core.kernels.
recurrent: per step one GEMM with W_hh and the gate math), and the backward pass is the reverse time loop
followed by one GEMM each for dW_ih, dW_hh and dC/dx over the stacked gate deltas. Layer l > 0 reads the
hidden states of layer l - 1.

Files written before the gated layers existed named the Elman RNN's parameters ``weight_ih`` ... (one layer,
batch first); ``upgrade_legacy_config`` and ``legacy_parameter_names`` translate them for ``cnn_core.load``.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnn_core._random import get_rng
from cnn_core._validation import check_bool, check_choice, check_int, check_size
from cnn_core.kernels.dense import _bias_grad, _linear
from cnn_core.kernels.gemm import _matmul
from cnn_core.kernels.recurrent import (_gru_backward, _gru_forward, _lstm_backward, _lstm_forward, _rnn_backward,
                                        _rnn_forward)
from cnn_core.nn.init import check_init, check_parameter_bytes, normal, uniform
from cnn_core.nn.module import Module, Parameter, no_parameters, register_module

NONLINEARITIES = ("tanh", "relu")
# Stacked layers at most: far beyond any trained network, and it keeps parameter_shapes (which cnn_core.load
# calls on a file's config before reading any weights) from looping over a hostile num_layers.
MAX_LAYERS = 10_000


class _Recurrent(Module):
    """What RNN, LSTM and GRU share: parameters, argument checks, the layer loop and the weight gradients.

    A subclass sets GATES (G), STATES (1, or 2 for the LSTM's (h, c)) and implements _recur (one layer's time
    loop on its input projection) and _recur_backward (its reverse).
    """

    GATES = 1
    STATES = 1

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dtype=None, rng=None, init: str = "default"):
        super().__init__(dtype)
        self.input_size = check_size(input_size, "input_size")
        self.hidden_size = check_size(hidden_size, "hidden_size")
        self.num_layers = check_int(num_layers, "num_layers", 1, MAX_LAYERS)
        self.bias = check_bool(bias, "bias")
        self.batch_first = check_bool(batch_first, "batch_first")
        self.init = check_init(init)
        rng = get_rng(rng)
        d, h, g, dt = self.input_size, self.hidden_size, self.GATES, self._dtype
        check_parameter_bytes((g * h, max(d, h)), dt, "input_size, hidden_size")
        k = 1 / math.sqrt(h)
        for layer in range(self.num_layers):
            fan_in = d if layer == 0 else h
            for name, shape in self._layer_shapes(layer, d, h, self.bias).items():
                if init == "normal":  # the deck's N(0, 1/fan_in) weights, N(0, 1) biases
                    std = 1.0 if name.startswith("bias") else 1 / math.sqrt(fan_in if "_ih_" in name else h)
                    data = normal(shape, std, rng, dt)
                else:  # PyTorch: every parameter ~ U(-1/sqrt(H), 1/sqrt(H)), in this order
                    data = uniform(shape, k, rng, dt)
                setattr(self, name, Parameter(data))
        self.h0_grad = None
        self._cache = None

    @classmethod
    def _layer_shapes(cls, layer: int, input_size: int, hidden_size: int, bias: bool) -> dict[str, tuple]:
        gh, d = cls.GATES * hidden_size, input_size if layer == 0 else hidden_size
        shapes = {f"weight_ih_l{layer}": (gh, d), f"weight_hh_l{layer}": (gh, hidden_size)}
        if bias:
            shapes.update({f"bias_ih_l{layer}": (gh,), f"bias_hh_l{layer}": (gh,)})
        return shapes

    @classmethod
    def parameter_shapes(cls, input_size, hidden_size, num_layers=1, bias=True, **config
                         ) -> dict[str, tuple[int, ...]]:
        """The shapes __init__ gives the parameters, without allocating them (see Module)."""
        d, h = check_size(input_size, "input_size"), check_size(hidden_size, "hidden_size")
        bias = check_bool(bias, "bias")
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in range(check_int(num_layers, "num_layers", 1, MAX_LAYERS)):
            shapes.update(cls._layer_shapes(layer, d, h, bias))
        return shapes

    def _weights(self, layer: int) -> tuple[Parameter, Parameter, Parameter | None, Parameter | None]:
        get = self._parameters.get
        return (get(f"weight_ih_l{layer}"), get(f"weight_hh_l{layer}"), get(f"bias_ih_l{layer}"),
                get(f"bias_hh_l{layer}"))

    # -- arguments ------------------------------------------------------------------------------------------
    def _state_names(self) -> tuple[str, ...]:
        return ("h0", "c0")[:self.STATES]

    def _check_states(self, state, n: int) -> list[np.ndarray | None]:
        """The initial states as a list of STATES arrays (L, N, H) or None (zeros)."""
        if state is None:
            return [None] * self.STATES
        names = self._state_names()
        if self.STATES > 1:
            if not isinstance(state, tuple) or len(state) != self.STATES:
                raise TypeError(f"{type(self).__name__}: state: expected None or a tuple ({', '.join(names)}), "
                                f"got {type(state).__name__}")
            states = list(state)
        else:
            states = [state]
        shape = (self.num_layers, n, self.hidden_size)
        for s, name in zip(states, names):
            self._check_input(s, name, 3, "(num_layers, batch, hidden_size)")
            if s.shape != shape:
                raise ValueError(f"{type(self).__name__}: {name}: expected shape {shape} (num_layers, batch, "
                                 f"hidden_size), got {s.shape}")
        return states

    def _check_d_states(self, d_state, shape: tuple[int, int, int]) -> list[np.ndarray | None]:
        if d_state is None:
            return [None] * self.STATES
        names = ("d_hn", "d_cn")[:self.STATES]
        if self.STATES > 1:
            if not isinstance(d_state, tuple) or len(d_state) != self.STATES:
                raise TypeError(f"{type(self).__name__}: d_state: expected None or a tuple (d_hn, d_cn), "
                                f"got {type(d_state).__name__}")
            grads = list(d_state)
        else:
            grads = [d_state]
        for g, name in zip(grads, names):
            if g is not None:
                self._check_grad(g, name, shape)
        return grads

    # -- forward / backward ---------------------------------------------------------------------------------
    def forward(self, x: np.ndarray, state=None):
        layout = "(batch, time, input_size)" if self.batch_first else "(time, batch, input_size)"
        self._check_input(x, "x", 3, layout)
        name = type(self).__name__
        if x.shape[2] != self.input_size:
            raise ValueError(f"{name}: x: expected {self.input_size} features (input_size) in the last "
                             f"dimension {layout}, got shape {x.shape}")
        if x.size == 0:
            raise ValueError(f"{name}: x: expected at least one sample and one time step, got shape {x.shape}")
        t_len, n = (x.shape[1], x.shape[0]) if self.batch_first else x.shape[:2]
        states = self._check_states(state, n)
        h, d = self.hidden_size, self.input_size
        # time-major rows (T*N, D); backward needs x as it is now, so a view of the caller's array is copied
        x_tm = x.transpose(1, 0, 2) if self.batch_first else x
        inp = x_tm.reshape(t_len * n, d)
        if not inp.flags.c_contiguous or (self.training and np.may_share_memory(inp, x)):
            inp = np.array(inp, order="C")
        caches, finals = [], []
        for layer in range(self.num_layers):
            w_ih, w_hh, b_ih, b_hh = self._weights(layer)
            init = [np.zeros((n, h), self._dtype) if s is None else s[layer] for s in states]
            hs, cache, last = self._recur(inp, w_ih, w_hh, b_ih, b_hh, init, t_len)
            caches.append((inp, hs, cache))
            finals.append(last)
            inp = hs[1:].reshape(t_len * n, h)
        self._cache = (caches, t_len, n) if self.training else None
        out = inp.reshape(t_len, n, h)
        out = out.transpose(1, 0, 2).copy() if self.batch_first else out.copy()
        final = [np.stack([f[i] for f in finals]) for i in range(self.STATES)]
        return out, (final[0] if self.STATES == 1 else tuple(final))

    def backward(self, d_out: np.ndarray, d_state=None) -> np.ndarray | None:
        """d_out = dC/dout (out's shape), d_state = dC/d(final state) (h_n's shape; the LSTM's a tuple
        (d_hn, d_cn) of which either may be None) or None; returns dC/dx (or None when input_grad is
        False), accumulates every parameter's gradient and sets h0_grad (and c0_grad) to dC/d(initial state)."""
        caches, t_len, n = self._need_cache(self._cache)
        h = self.hidden_size
        self._check_grad(d_out, "d_out", (n, t_len, h) if self.batch_first else (t_len, n, h))
        d_finals = self._check_d_states(d_state, (self.num_layers, n, h))
        d_hs = np.ascontiguousarray(d_out.transpose(1, 0, 2) if self.batch_first else d_out)
        d_inits: list[list[np.ndarray]] = [[] for _ in range(self.STATES)]
        d_x = None
        for layer in range(self.num_layers - 1, -1, -1):
            inp, hs, cache = caches[layer]
            w_ih, w_hh, b_ih, b_hh = self._weights(layer)
            d_last = [np.zeros((n, h), self._dtype) if g is None else g[layer].copy() for g in d_finals]
            d_pre_x, d_pre_h, d_init = self._recur_backward(d_hs, d_last, hs, cache, w_hh)
            for i, g in enumerate(d_init):
                d_inits[i].append(g)
            rows = t_len * n
            d_pre_x = d_pre_x.reshape(rows, -1)
            d_pre_h = d_pre_x if d_pre_h is None else d_pre_h.reshape(rows, -1)
            _matmul(d_pre_x, inp, c=w_ih.grad, beta=1.0, trans_a=True)                      # dW_ih
            _matmul(d_pre_h, hs[:-1].reshape(rows, h), c=w_hh.grad, beta=1.0, trans_a=True)  # dW_hh
            if b_ih is not None:
                db = _bias_grad(d_pre_x)
                b_ih.grad += db
                b_hh.grad += db if d_pre_h is d_pre_x else _bias_grad(d_pre_h)
            if layer > 0 or self.input_grad:
                d_x = _matmul(d_pre_x, w_ih.data)                                               # dC/d input
                d_hs = d_x.reshape(t_len, n, -1)
        self.h0_grad = np.stack(d_inits[0][::-1])
        if self.STATES > 1:
            self.c0_grad = np.stack(d_inits[1][::-1])
        if d_x is None or not self.input_grad:
            return None
        d_x = d_x.reshape(t_len, n, self.input_size)
        return d_x.transpose(1, 0, 2).copy() if self.batch_first else d_x

    def _recur(self, inp, w_ih, w_hh, b_ih, b_hh, init, t_len):
        raise NotImplementedError

    def _recur_backward(self, d_hs, d_last, hs, cache, w_hh):
        raise NotImplementedError

    def _clear_cache(self) -> None:
        self._cache = None

    def get_config(self) -> dict[str, Any]:
        return {"input_size": self.input_size, "hidden_size": self.hidden_size, "num_layers": self.num_layers,
                "bias": self.bias, "batch_first": self.batch_first, "init": self.init, **super().get_config()}


@register_module
class RNN(_Recurrent):
    """Elman RNN: ``forward(x, h0=None) -> (out, h_n)``, as ``torch.nn.RNN``.

    For each layer l and step t, from h_0 = h0[l] (zeros when None):
    ``h_t = sigma(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)``, sigma = tanh or relu, where x_t is the
    input for l = 0 and layer l - 1's h_t above it. ``backward(d_out, d_state=None)`` (d_state = dC/dh_n)
    runs backpropagation through time, accumulates every parameter's gradient, sets ``h0_grad`` = dC/dh0 and
    returns dC/dx.

    Args:
        input_size: D, the features of each time step.
        hidden_size: H, the width of the state.
        num_layers: L, stacked layers (default 1); layer l > 0 reads layer l - 1's h_t.
        nonlinearity: sigma, ``"tanh"`` (default) or ``"relu"``.
        bias: whether to learn b_ih and b_hh (default True).
        batch_first: x and out are ``(N, T, .)`` instead of ``(T, N, .)`` (default False, as PyTorch); the
            state is ``(L, N, H)`` either way.
        dtype: float32 (default) or float64, for the parameters and the accepted input.
        rng: seed or ``numpy.random.Generator`` for the initial weights (default: the global one,
            see ``cnn_core.manual_seed``).
        init: ``"default"``, PyTorch's (every parameter ~ U(-1/sqrt(H), 1/sqrt(H))); or ``"normal"``, the
            deck's (weights ~ N(0, 1/fan_in), biases ~ N(0, 1)).

    Shape:
        - Input: x ``(T, N, D)``, or ``(N, T, D)`` with batch_first; h0 ``(L, N, H)`` or None (zeros)
        - Output: out ``(T, N, H)`` (``(N, T, H)`` with batch_first), the last layer's h_t for every t;
          h_n ``(L, N, H)``, every layer's h_T
        - weight_ih_l0: ``(H, D)``; weight_ih_lk for k > 0, and weight_hh_lk: ``(H, H)``; bias_ih_lk and
          bias_hh_lk: ``(H,)``

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> rnn = nn.RNN(28, 64, batch_first=True, rng=0)   # an MNIST digit read as 28 rows of 28 pixels
        >>> out, h_n = rnn(np.zeros((5, 28, 28), np.float32))
        >>> out.shape, h_n.shape
        ((5, 28, 64), (1, 5, 64))
        >>> bool(np.array_equal(out[:, -1], h_n[-1]))
        True
        >>> rnn.backward(np.zeros_like(out), np.ones_like(h_n)).shape, rnn.h0_grad.shape
        ((5, 28, 28), (1, 5, 64))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dtype=None, rng=None, init: str = "default"):
        nonlinearity = check_choice(nonlinearity, "nonlinearity", NONLINEARITIES)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dtype, rng, init)
        self.nonlinearity = nonlinearity

    def _recur(self, inp, w_ih, w_hh, b_ih, b_hh, init, t_len):
        b = None if b_ih is None else b_ih.data + b_hh.data
        xw = _linear(inp, w_ih.data, b).reshape(t_len, -1, self.hidden_size)
        hs = _rnn_forward(self.nonlinearity, xw, w_hh.data, init[0])
        return hs, None, (hs[-1],)

    def _recur_backward(self, d_hs, d_last, hs, cache, w_hh):
        d_z, dh0 = _rnn_backward(self.nonlinearity, d_hs, d_last[0], hs, w_hh.data)
        return d_z, None, (dh0,)

    def get_config(self) -> dict[str, Any]:
        cfg = super().get_config()  # PyTorch's argument order: nonlinearity after num_layers
        first = {k: cfg.pop(k) for k in ("input_size", "hidden_size", "num_layers")}
        return {**first, "nonlinearity": self.nonlinearity, **cfg}


@register_module
class LSTM(_Recurrent):
    """Long short-term memory: ``forward(x, (h0, c0)=None) -> (out, (h_n, c_n))``, as ``torch.nn.LSTM``.

    For each layer and step, from (h_0, c_0) (zeros when the state is None), with s the logistic sigmoid and
    the four gate blocks of W and b in PyTorch's order i, f, g, o::

        i = s(W_ii x_t + b_ii + W_hi h_{t-1} + b_hi)     f = s(W_if x_t + b_if + W_hf h_{t-1} + b_hf)
        g = tanh(W_ig x_t + b_ig + W_hg h_{t-1} + b_hg)  o = s(W_io x_t + b_io + W_ho h_{t-1} + b_ho)
        c_t = f * c_{t-1} + i * g                        h_t = o * tanh(c_t)

    ``backward(d_out, d_state=None)`` with d_state = (dC/dh_n, dC/dc_n) (either may be None) returns dC/dx,
    accumulates every parameter's gradient and sets ``h0_grad`` and ``c0_grad``.

    Args:
        input_size: D, the features of each time step.
        hidden_size: H, the width of the state.
        num_layers: L, stacked layers (default 1); layer l > 0 reads layer l - 1's h_t.
        bias: whether to learn b_ih and b_hh (default True).
        batch_first: x and out are ``(N, T, .)`` instead of ``(T, N, .)`` (default False, as PyTorch); the
            state is ``(L, N, H)`` either way.
        dtype: float32 (default) or float64, for the parameters and the accepted input.
        rng: seed or ``numpy.random.Generator`` for the initial weights (default: the global one,
            see ``cnn_core.manual_seed``).
        init: ``"default"``, PyTorch's (every parameter ~ U(-1/sqrt(H), 1/sqrt(H))); or ``"normal"``, the
            deck's (weights ~ N(0, 1/fan_in), biases ~ N(0, 1)).

    Shape:
        - Input: x ``(T, N, D)``, or ``(N, T, D)`` with batch_first; (h0, c0), each ``(L, N, H)``, or None (zeros)
        - Output: out ``(T, N, H)`` (``(N, T, H)`` with batch_first), the last layer's h_t for every t;
          (h_n, c_n), each ``(L, N, H)``, every layer's h_T and c_T
        - weight_ih_l0: ``(4H, D)``; weight_ih_lk for k > 0, and weight_hh_lk: ``(4H, H)``; bias_ih_lk and
          bias_hh_lk: ``(4H,)``

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> lstm = nn.LSTM(10, 20, num_layers=2, rng=0)
        >>> out, (h_n, c_n) = lstm(np.ones((5, 3, 10), np.float32))       # 5 steps of a batch of 3
        >>> out.shape, h_n.shape, c_n.shape, lstm.weight_hh_l1.shape
        ((5, 3, 20), (2, 3, 20), (2, 3, 20), (80, 20))
        >>> lstm.backward(np.ones_like(out)).shape, lstm.c0_grad.shape
        ((5, 3, 10), (2, 3, 20))
    """

    GATES = 4
    STATES = 2

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dtype=None, rng=None, init: str = "default"):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dtype, rng, init)
        self.c0_grad = None

    def _recur(self, inp, w_ih, w_hh, b_ih, b_hh, init, t_len):
        b = None if b_ih is None else b_ih.data + b_hh.data
        xw = _linear(inp, w_ih.data, b).reshape(t_len, -1, 4 * self.hidden_size)
        gates, hs, cs, tanh_c = _lstm_forward(xw, w_hh.data, init[0], init[1])
        return hs, (gates, cs, tanh_c), (hs[-1], cs[-1])

    def _recur_backward(self, d_hs, d_last, hs, cache, w_hh):
        gates, cs, tanh_c = cache
        d_gates, dh0, dc0 = _lstm_backward(d_hs, d_last[0], d_last[1], gates, cs, tanh_c, w_hh.data)
        return d_gates, None, (dh0, dc0)


@register_module
class GRU(_Recurrent):
    """Gated recurrent unit: ``forward(x, h0=None) -> (out, h_n)``, as ``torch.nn.GRU``.

    For each layer and step, from h_0 (zeros when None), with the three gate blocks in PyTorch's order r, z, n::

        r = s(W_ir x_t + b_ir + W_hr h_{t-1} + b_hr)     z = s(W_iz x_t + b_iz + W_hz h_{t-1} + b_hz)
        n = tanh(W_in x_t + b_in + r * (W_hn h_{t-1} + b_hn))
        h_t = (1 - z) * n + z * h_{t-1}

    ``backward(d_out, d_state=None)`` (d_state = dC/dh_n) returns dC/dx, accumulates every parameter's gradient
    and sets ``h0_grad``.

    Args:
        input_size: D, the features of each time step.
        hidden_size: H, the width of the state.
        num_layers: L, stacked layers (default 1); layer l > 0 reads layer l - 1's h_t.
        bias: whether to learn b_ih and b_hh (default True).
        batch_first: x and out are ``(N, T, .)`` instead of ``(T, N, .)`` (default False, as PyTorch); the
            state is ``(L, N, H)`` either way.
        dtype: float32 (default) or float64, for the parameters and the accepted input.
        rng: seed or ``numpy.random.Generator`` for the initial weights (default: the global one,
            see ``cnn_core.manual_seed``).
        init: ``"default"``, PyTorch's (every parameter ~ U(-1/sqrt(H), 1/sqrt(H))); or ``"normal"``, the
            deck's (weights ~ N(0, 1/fan_in), biases ~ N(0, 1)).

    Shape:
        - Input: x ``(T, N, D)``, or ``(N, T, D)`` with batch_first; h0 ``(L, N, H)`` or None (zeros)
        - Output: out ``(T, N, H)`` (``(N, T, H)`` with batch_first), the last layer's h_t for every t;
          h_n ``(L, N, H)``, every layer's h_T
        - weight_ih_l0: ``(3H, D)``; weight_ih_lk for k > 0, and weight_hh_lk: ``(3H, H)``; bias_ih_lk and
          bias_hh_lk: ``(3H,)``

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> gru = nn.GRU(10, 20, batch_first=True, rng=0)
        >>> out, h_n = gru(np.ones((3, 5, 10), np.float32))               # a batch of 3, 5 steps
        >>> out.shape, h_n.shape, gru.weight_ih_l0.shape
        ((3, 5, 20), (1, 3, 20), (60, 10))
    """

    GATES = 3

    def _recur(self, inp, w_ih, w_hh, b_ih, b_hh, init, t_len):
        h = self.hidden_size
        xw = _linear(inp, w_ih.data, None if b_ih is None else b_ih.data).reshape(t_len, -1, 3 * h)
        b = np.zeros(3 * h, self._dtype) if b_hh is None else b_hh.data
        gates, hs, hn = _gru_forward(xw, w_hh.data, b, init[0])
        return hs, (gates, hn), (hs[-1],)

    def _recur_backward(self, d_hs, d_last, hs, cache, w_hh):
        gates, hn = cache
        d_x, d_h, dh0 = _gru_backward(d_hs, d_last[0], gates, hs, hn, w_hh.data)
        return d_x, d_h, (dh0,)


@register_module
class LastStep(Module):
    """The last time step of a recurrent layer's output, so a recurrent layer can sit inside ``Sequential``.

    ``LastStep()(rnn(x))`` takes the ``(out, state)`` pair a recurrent layer returns (or ``out`` alone) and
    returns ``out[-1]`` (``out[:, -1]`` with batch_first), which for a one-directional layer is the last
    layer's h_T; backward puts dy at the last step of a zero dC/dout, which the recurrent layer's backward
    then takes as its d_out: ``nn.Sequential(nn.LSTM(28, 128, batch_first=True), nn.LastStep(batch_first=True),
    nn.Linear(128, 10))`` is a many-to-one classifier.

    Args:
        batch_first: the recurrent layer's batch_first (default False).
        dtype: float32 (default) or float64, the accepted input.

    Shape:
        - Input: out ``(T, N, H)`` (``(N, T, H)`` with batch_first), or ``(out, state)``
        - Output: ``(N, H)``

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> model = nn.Sequential(nn.GRU(4, 8, batch_first=True, rng=0), nn.LastStep(batch_first=True),
        ...                       nn.Linear(8, 3, rng=0))
        >>> model(np.zeros((2, 6, 4), np.float32)).shape
        (2, 3)
        >>> model.backward(np.ones((2, 3), np.float32)).shape
        (2, 6, 4)
    """

    parameter_shapes = classmethod(no_parameters)

    def __init__(self, batch_first: bool = False, dtype=None):
        super().__init__(dtype)
        self.batch_first = check_bool(batch_first, "batch_first")
        self._out_shape = None

    def forward(self, x) -> np.ndarray:
        out = x[0] if isinstance(x, tuple) and len(x) == 2 else x
        self._check_input(out, "x", 3, "(batch, time, hidden)" if self.batch_first else "(time, batch, hidden)")
        self._out_shape = out.shape if self.training else None
        return (out[:, -1] if self.batch_first else out[-1]).copy()

    def backward(self, dy: np.ndarray) -> np.ndarray:
        shape = self._need_cache(self._out_shape)
        n = shape[0] if self.batch_first else shape[1]
        self._check_grad(dy, "dy", (n, shape[2]))
        d_out = np.zeros(shape, self._dtype)
        if self.batch_first:
            d_out[:, -1] = dy
        else:
            d_out[-1] = dy
        return d_out

    def _clear_cache(self) -> None:
        self._out_shape = None

    def get_config(self) -> dict[str, Any]:
        return {"batch_first": self.batch_first, **super().get_config()}


# ---- files written before issue 11 ---------------------------------------------------------------------------
# The Elman RNN was one layer, batch first, with parameters weight_ih, weight_hh, bias_ih, bias_hh; its config
# had no batch_first (nor num_layers, bias). RNNClassifier's config did not change, only its parameter names.
LEGACY_PARAMETER_NAMES = {"weight_ih": "weight_ih_l0", "weight_hh": "weight_hh_l0", "bias_ih": "bias_ih_l0",
                          "bias_hh": "bias_hh_l0"}


def upgrade_legacy_config(cfg: Any) -> Any:
    """`cfg` (a module config, as JSON) with every old RNN config given batch_first=True, as the old layer read
    its input; anything else is returned as it is (a new copy where something changed)."""
    if isinstance(cfg, list):
        return [upgrade_legacy_config(c) for c in cfg]
    if not isinstance(cfg, dict):
        return cfg
    cfg = {k: upgrade_legacy_config(v) for k, v in cfg.items()}
    config = cfg.get("config")
    if cfg.get("type") == "RNN" and isinstance(config, dict) and "batch_first" not in config:
        cfg["config"] = {**config, "batch_first": True}
    return cfg


def legacy_parameter_names(file_names, expected) -> dict[str, str]:
    """{old name: new name} for the parameters of a file that carry the old RNN names (``rnn.weight_ih`` ->
    ``rnn.weight_ih_l0``), where the model expects the new name and the file does not hold it already."""
    renames = {}
    file_names, expected = set(file_names), set(expected)
    for name in file_names - expected:
        prefix, _, leaf = name.rpartition(".")
        new = (prefix + "." if prefix else "") + LEGACY_PARAMETER_NAMES.get(leaf, leaf)
        if new != name and new in expected and new not in file_names:
            renames[name] = new
    return renames
