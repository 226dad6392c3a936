"""Elman RNN, batch first, trained by backpropagation through time.

h_t = sigma(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh),  sigma = tanh (or relu).
The input projection for all time steps is one gemm over (T*N, D); only the recurrence loops over t, each
step a batched (N, H) gemm. Backward walks t = T-1 .. 0 with
  delta_t = (dC/dh_t from the output + delta_{t+1} W_hh) (.) sigma'(z_t)
and then forms all weight gradients with one gemm each over the stacked deltas.
"""
from __future__ import annotations

import math

import numpy as np

from cnn_core._random import get_rng
from cnn_core._validation import check_choice, check_size
from cnn_core.kernels.activations import _sigma, _sigma_backward
from cnn_core.kernels.dense import _bias_grad, _linear
from cnn_core.kernels.gemm import _matmul
from cnn_core.nn.init import check_init, check_parameter_bytes, normal, uniform
from cnn_core.nn.module import Module, Parameter, register_module

NONLINEARITIES = ("tanh", "relu")


@register_module
class RNN(Module):
    """One-layer Elman RNN, batch first: ``forward(x, h0=None) -> (out, h_n)``.

    ``h_t = sigma(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh)`` for t = 1..T, from ``h_0 = h0`` (zeros when
    None); ``out`` stacks every h_t and ``h_n = h_T``. ``backward(d_out, d_hn=None)`` runs backpropagation
    through time and returns dC/dx, accumulating all four parameters' gradients.

    Args:
        input_size: D, the features of each time step.
        hidden_size: H, the width of the state.
        nonlinearity: sigma, ``"tanh"`` (default) or ``"relu"``.
        dtype: float32 (default) or float64, for the parameters and the accepted input.
        rng: seed or ``numpy.random.Generator`` for the initial weights (default: the global one,
            see ``cnn_core.manual_seed``).
        init: ``"default"``, PyTorch's (every parameter ~ U(-1/sqrt(H), 1/sqrt(H))); or ``"normal"``, the
            deck's (weights ~ N(0, 1/fan_in), biases ~ N(0, 1)).

    Shape:
        - Input: x ``(N, T, D)``, h0 ``(N, H)`` or None
        - Output: out ``(N, T, H)``, h_n ``(N, H)``
        - weight_ih: ``(H, D)``, weight_hh: ``(H, H)``, bias_ih and bias_hh: ``(H,)``

    Example:
        >>> import numpy as np
        >>> from cnn_core import nn
        >>> rnn = nn.RNN(28, 64, rng=0)                    # an MNIST digit read as 28 rows of 28 pixels
        >>> out, h_n = rnn(np.zeros((5, 28, 28), np.float32))
        >>> out.shape, h_n.shape
        ((5, 28, 64), (5, 64))
        >>> bool(np.array_equal(out[:, -1], h_n))
        True
        >>> rnn.backward(np.zeros_like(out), np.ones_like(h_n)).shape
        (5, 28, 28)
    """

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh", dtype=None, rng=None,
                 init: str = "default"):
        super().__init__(dtype)
        self.input_size = check_size(input_size, "input_size")
        self.hidden_size = check_size(hidden_size, "hidden_size")
        self.nonlinearity = check_choice(nonlinearity, "nonlinearity", NONLINEARITIES)
        self.init = check_init(init)
        rng = get_rng(rng)
        d, h, dt = self.input_size, self.hidden_size, self._dtype
        check_parameter_bytes((h, max(d, h)), dt, "input_size, hidden_size")
        if init == "normal":  # the deck's N(0, 1/n_in) weights, N(0, 1) biases
            self.weight_ih = Parameter(normal((h, d), 1 / math.sqrt(d), rng, dt))
            self.weight_hh = Parameter(normal((h, h), 1 / math.sqrt(h), rng, dt))
            self.bias_ih = Parameter(normal((h,), 1.0, rng, dt))
            self.bias_hh = Parameter(normal((h,), 1.0, rng, dt))
        else:  # PyTorch: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))
            k = 1 / math.sqrt(h)
            self.weight_ih = Parameter(uniform((h, d), k, rng, dt))
            self.weight_hh = Parameter(uniform((h, h), k, rng, dt))
            self.bias_ih = Parameter(uniform((h,), k, rng, dt))
            self.bias_hh = Parameter(uniform((h,), k, rng, dt))
        self._cache = None

    @classmethod
    def parameter_shapes(cls, input_size, hidden_size, **config) -> dict[str, tuple[int, ...]]:
        """The shapes __init__ gives the parameters, without allocating them (see Module)."""
        d, h = check_size(input_size, "input_size"), check_size(hidden_size, "hidden_size")
        return {"weight_ih": (h, d), "weight_hh": (h, h), "bias_ih": (h,), "bias_hh": (h,)}

    def forward(self, x: np.ndarray, h0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        self._check_input(x, "x", 3, "(batch, time, input_size)")
        n, t_len, d = x.shape
        if d != self.input_size:
            raise ValueError(f"RNN: x: expected {self.input_size} features (input_size), got shape {x.shape}")
        if n == 0 or t_len == 0:
            raise ValueError(f"RNN: x: expected at least one sample and one time step, got shape {x.shape}")
        h = self.hidden_size
        if h0 is not None:
            self._check_input(h0, "h0", 2, "(batch, hidden_size)")
            if h0.shape != (n, h):
                raise ValueError(f"RNN: h0: expected shape {(n, h)}, got {h0.shape}")
        # time-major copy of x so that each step's slice is contiguous; backward needs it as x is now, so it
        # is copied also when the reshape could return a view of the caller's x (T == 1 or N == 1)
        x_tm = x.transpose(1, 0, 2).reshape(t_len * n, d)
        if not x_tm.flags.c_contiguous or (self.training and np.may_share_memory(x_tm, x)):
            x_tm = np.array(x_tm, order="C")
        z = _linear(x_tm, self.weight_ih.data, self.bias_ih.data + self.bias_hh.data).reshape(t_len, n, h)
        hs = np.empty((t_len + 1, n, h), dtype=self._dtype)  # hs[0] = h0, hs[t+1] = h_t
        if h0 is None:
            hs[0] = 0
        else:
            hs[0] = h0
        for t in range(t_len):
            _matmul(hs[t], self.weight_hh.data, c=z[t], beta=1.0, trans_b=True)  # z_t += h_{t-1} W_hh^T
            _sigma(self.nonlinearity, z[t], out=hs[t + 1])
        self._cache = (x_tm, hs) if self.training else None
        return hs[1:].transpose(1, 0, 2).copy(), hs[t_len].copy()

    def backward(self, d_out: np.ndarray, d_hn: np.ndarray | None = None) -> np.ndarray:
        """d_out = dC/dout (N, T, H), d_hn = dC/dh_n (N, H) or None; returns dC/dx (N, T, D)."""
        x_tm, hs = self._need_cache(self._cache)
        t_len, n, h = hs.shape[0] - 1, hs.shape[1], self.hidden_size
        self._check_grad(d_out, "d_out", (n, t_len, h))
        if d_hn is not None:
            self._check_grad(d_hn, "d_hn", (n, h))
        deltas = d_out.transpose(1, 0, 2).copy()  # (T, N, H), becomes delta_t in place
        w_hh = self.weight_hh.data
        if d_hn is not None:
            deltas[t_len - 1] += d_hn
        for t in range(t_len - 1, -1, -1):
            _sigma_backward(self.nonlinearity, deltas[t], hs[t + 1], out=deltas[t])  # dC/dh_t (.) sigma'(z_t)
            if t > 0:
                _matmul(deltas[t], w_hh, c=deltas[t - 1], beta=1.0)    # dC/dh_{t-1} += delta_t W_hh
        d2 = deltas.reshape(t_len * n, h)
        _matmul(d2, hs[:-1].reshape(t_len * n, h), c=self.weight_hh.grad, beta=1.0, trans_a=True)
        _matmul(d2, x_tm, c=self.weight_ih.grad, beta=1.0, trans_a=True)
        db = _bias_grad(d2)
        self.bias_ih.grad += db
        self.bias_hh.grad += db
        dx = _matmul(d2, self.weight_ih.data)                            # (T*N, D), time-major
        return dx.reshape(t_len, n, self.input_size).transpose(1, 0, 2).copy()

    def _clear_cache(self) -> None:
        self._cache = None

    def get_config(self) -> dict:
        return {"input_size": self.input_size, "hidden_size": self.hidden_size,
                "nonlinearity": self.nonlinearity, "init": self.init, **super().get_config()}
