"""The time loops of the recurrent layers: Elman RNN, LSTM and GRU, forward and backpropagation through time.

Arrays are time-major: a sequence of T steps of N samples is (T, N, features). Each forward takes the input
projection of every step, ``xw = x W_ih^T + biases`` (T, N, G*H), already computed (the layer does it with one
GEMM over all T*N rows), and runs the recurrence from the initial state; each backward returns the gradients
with respect to the pre-activations (from which the layer forms the weight gradients and dC/dx with one GEMM
each) and the initial state. Gate blocks follow PyTorch's order: LSTM (i, f, g, o), GRU (r, z, n)::

  RNN   h_t = sigma(xw_t + h_{t-1} W_hh^T)                        xw = x W_ih^T + b_ih + b_hh,  G = 1
  LSTM  (i, f, g, o) = (s, s, tanh, s)(xw_t + h_{t-1} W_hh^T)     xw = x W_ih^T + b_ih + b_hh,  G = 4
        c_t = f c_{t-1} + i g,  h_t = o tanh(c_t)
  GRU   r, z = s(xw_r + h_{t-1} W_hr^T + b_hr), s(xw_z + h_{t-1} W_hz^T + b_hz)   xw = x W_ih^T + b_ih,  G = 3
        n = tanh(xw_n + r (h_{t-1} W_hn^T + b_hn)),  h_t = (1 - z) n + z h_{t-1}

The ``_``-prefixed functions are the unchecked entry points for the layers (cnn_core.nn.rnn), which validate
at their own boundary: every array C-contiguous, one float dtype, consistent shapes, T, N, H >= 1.
"""
from __future__ import annotations

import numpy as np

from cnn_core._validation import as_float_array, check_choice
from cnn_core.kernels import _recurrent

NONLINEARITIES = tuple(_recurrent.OPS)


# ---- checks ---------------------------------------------------------------------------------------------

def _seq(x, name: str, dtype=None, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A 3-D (T, N, width) float array with every dimension >= 1 (of `shape` when given)."""
    x = as_float_array(x, name, ndim=3, dtype=dtype)
    if shape is not None and x.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name}: expected at least one step, sample and feature, got shape {x.shape}")
    return x


def _mat(x, name: str, dtype, shape: tuple[int, ...]) -> np.ndarray:
    x = as_float_array(x, name, ndim=len(shape), dtype=dtype)
    if x.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {x.shape}")
    return x


def _weight(w_hh, xw: np.ndarray, gates: int) -> tuple[np.ndarray, int]:
    """w_hh (G*H, H) matching xw's last dimension G*H; returns (w_hh, H)."""
    w_hh = as_float_array(w_hh, "w_hh", ndim=2, dtype=xw.dtype)
    hid = w_hh.shape[1]
    if hid < 1 or w_hh.shape[0] != gates * hid or xw.shape[2] != gates * hid:
        raise ValueError(f"w_hh: expected shape ({gates}*H, H) with {gates}*H = {xw.shape[2]} (the last dimension "
                         f"of the input projection), got {w_hh.shape}")
    return w_hh, hid


def _state(s, name: str, like: np.ndarray, n: int, hid: int) -> np.ndarray:
    """An (N, H) state as a fresh array (zeros for None): the kernels overwrite it."""
    if s is None:
        return np.zeros((n, hid), like.dtype)
    return _mat(s, name, like.dtype, (n, hid)).copy()


def _history(h0: np.ndarray, steps: int) -> np.ndarray:
    """(T+1, N, H) with [0] = h0: the layout the kernels fill."""
    hs = np.empty((steps + 1,) + h0.shape, h0.dtype)
    hs[0] = h0
    return hs


# ---- Elman RNN ------------------------------------------------------------------------------------------

def rnn_forward(xw: np.ndarray, w_hh: np.ndarray, h0: np.ndarray | None = None,
                nonlinearity: str = "tanh") -> np.ndarray:
    """h_t = sigma(xw_t + h_{t-1} W_hh^T) for t = 1..T from h_0 = h0 (zeros for None).

    xw (T, N, H), w_hh (H, H), h0 (N, H) -> hs (T+1, N, H) with hs[0] = h_0 and hs[t] = h_t.
    """
    op = check_choice(nonlinearity, "nonlinearity", NONLINEARITIES)
    xw = _seq(xw, "xw")
    w_hh, hid = _weight(w_hh, xw, 1)
    return _rnn_forward(op, xw.copy(), w_hh, _state(h0, "h0", xw, xw.shape[1], hid))


def _rnn_forward(nonlinearity: str, xw: np.ndarray, w_hh: np.ndarray, h0: np.ndarray) -> np.ndarray:
    """rnn_forward without checks; xw is overwritten (it ends holding the pre-activations)."""
    hs = _history(h0, xw.shape[0])
    _recurrent.rnn_forward(_recurrent.OPS[nonlinearity], xw, w_hh, hs)
    return hs


def rnn_backward(d_hs: np.ndarray, dh_n: np.ndarray | None, hs: np.ndarray, w_hh: np.ndarray,
                 nonlinearity: str = "tanh") -> tuple[np.ndarray, np.ndarray]:
    """Backpropagation through time of rnn_forward.

    d_hs (T, N, H) = dC/dh_t from outside the recurrence, dh_n (N, H) = dC/dh_T from the final state (None:
    zeros), hs (T+1, N, H) forward's -> (d_z (T, N, H) = dC/d(xw_t + h_{t-1} W_hh^T), dh0 (N, H)).
    """
    op = check_choice(nonlinearity, "nonlinearity", NONLINEARITIES)
    d_hs = _seq(d_hs, "d_hs")
    steps, n, hid = d_hs.shape
    hs = _mat(hs, "hs", d_hs.dtype, (steps + 1, n, hid))
    w_hh = _mat(w_hh, "w_hh", d_hs.dtype, (hid, hid))
    return _rnn_backward(op, d_hs, _state(dh_n, "dh_n", d_hs, n, hid), hs, w_hh)


def _rnn_backward(nonlinearity: str, d_hs: np.ndarray, dh: np.ndarray, hs: np.ndarray,
                  w_hh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """rnn_backward without checks; dh (dC/dh_T) is overwritten with dC/dh_0 and returned."""
    d_z = np.empty_like(d_hs)
    _recurrent.rnn_backward(_recurrent.OPS[nonlinearity], d_hs, hs, w_hh, d_z, dh)
    return d_z, dh


# ---- LSTM -----------------------------------------------------------------------------------------------

def lstm_forward(xw: np.ndarray, w_hh: np.ndarray, h0: np.ndarray | None = None, c0: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The LSTM recurrence from (h_0, c_0) = (h0, c0) (zeros for None).

    xw (T, N, 4H), w_hh (4H, H), h0 and c0 (N, H) -> (gates (T, N, 4H), the activated (i, f, g, o);
    hs and cs (T+1, N, H), [0] the initial state and [t] = h_t, c_t; tanh_c (T, N, H) = tanh(c_t)).
    """
    xw = _seq(xw, "xw")
    w_hh, hid = _weight(w_hh, xw, 4)
    n = xw.shape[1]
    return _lstm_forward(xw.copy(), w_hh, _state(h0, "h0", xw, n, hid), _state(c0, "c0", xw, n, hid))


def _lstm_forward(xw: np.ndarray, w_hh: np.ndarray, h0: np.ndarray, c0: np.ndarray):
    """lstm_forward without checks; xw is overwritten with the gates and returned as the first result."""
    steps = xw.shape[0]
    hs, cs = _history(h0, steps), _history(c0, steps)
    tanh_c = np.empty((steps,) + h0.shape, h0.dtype)
    _recurrent.lstm_forward(xw, w_hh, hs, cs, tanh_c)
    return xw, hs, cs, tanh_c


def lstm_backward(d_hs: np.ndarray, dh_n: np.ndarray | None, dc_n: np.ndarray | None, gates: np.ndarray,
                  cs: np.ndarray, tanh_c: np.ndarray, w_hh: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backpropagation through time of lstm_forward.

    d_hs (T, N, H) = dC/dh_t from outside the recurrence; dh_n, dc_n (N, H) = dC/dh_T, dC/dc_T (None: zeros);
    gates, cs, tanh_c: lstm_forward's -> (d_gates (T, N, 4H) = dC/d(pre-activations of i, f, g, o),
    dh0, dc0 (N, H)).
    """
    d_hs = _seq(d_hs, "d_hs")
    steps, n, hid = d_hs.shape
    dt = d_hs.dtype
    gates = _mat(gates, "gates", dt, (steps, n, 4 * hid))
    cs = _mat(cs, "cs", dt, (steps + 1, n, hid))
    tanh_c = _mat(tanh_c, "tanh_c", dt, (steps, n, hid))
    w_hh = _mat(w_hh, "w_hh", dt, (4 * hid, hid))
    return _lstm_backward(d_hs, _state(dh_n, "dh_n", d_hs, n, hid), _state(dc_n, "dc_n", d_hs, n, hid),
                          gates, cs, tanh_c, w_hh)


def _lstm_backward(d_hs, dh, dc, gates, cs, tanh_c, w_hh):
    """lstm_backward without checks; dh and dc are overwritten with dC/dh_0 and dC/dc_0 and returned."""
    d_gates = np.empty_like(gates)
    _recurrent.lstm_backward(d_hs, gates, cs, tanh_c, w_hh, d_gates, dh, dc)
    return d_gates, dh, dc


# ---- GRU ------------------------------------------------------------------------------------------------

def gru_forward(xw: np.ndarray, w_hh: np.ndarray, b_hh: np.ndarray | None = None, h0: np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The GRU recurrence from h_0 = h0 (zeros for None).

    xw (T, N, 3H) = x W_ih^T + b_ih, w_hh (3H, H), b_hh (3H,) (None: no hidden bias), h0 (N, H) ->
    (gates (T, N, 3H), the activated (r, z, n); hs (T+1, N, H), [0] = h_0 and [t] = h_t;
    hn (T, N, H) = h_{t-1} W_hn^T + b_hn).
    """
    xw = _seq(xw, "xw")
    w_hh, hid = _weight(w_hh, xw, 3)
    b_hh = np.zeros(3 * hid, xw.dtype) if b_hh is None else _mat(b_hh, "b_hh", xw.dtype, (3 * hid,))
    return _gru_forward(xw.copy(), w_hh, b_hh, _state(h0, "h0", xw, xw.shape[1], hid))


def _gru_forward(xw: np.ndarray, w_hh: np.ndarray, b_hh: np.ndarray, h0: np.ndarray):
    """gru_forward without checks (b_hh an array); xw is overwritten with the gates and returned first."""
    steps, n = xw.shape[:2]
    hs = _history(h0, steps)
    hn = np.empty((steps,) + h0.shape, h0.dtype)
    _recurrent.gru_forward(xw, w_hh, b_hh, hs, hn, np.empty((n, xw.shape[2]), xw.dtype))
    return xw, hs, hn


def gru_backward(d_hs: np.ndarray, dh_n: np.ndarray | None, gates: np.ndarray, hs: np.ndarray, hn: np.ndarray,
                 w_hh: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Backpropagation through time of gru_forward.

    d_hs (T, N, H) = dC/dh_t from outside the recurrence, dh_n (N, H) = dC/dh_T (None: zeros); gates, hs, hn:
    gru_forward's -> (d_x (T, N, 3H) = dC/d(x W_ih^T + b_ih), d_h (T, N, 3H) = dC/d(h_{t-1} W_hh^T + b_hh),
    dh0 (N, H)).
    """
    d_hs = _seq(d_hs, "d_hs")
    steps, n, hid = d_hs.shape
    dt = d_hs.dtype
    gates = _mat(gates, "gates", dt, (steps, n, 3 * hid))
    hs = _mat(hs, "hs", dt, (steps + 1, n, hid))
    hn = _mat(hn, "hn", dt, (steps, n, hid))
    w_hh = _mat(w_hh, "w_hh", dt, (3 * hid, hid))
    return _gru_backward(d_hs, _state(dh_n, "dh_n", d_hs, n, hid), gates, hs, hn, w_hh)


def _gru_backward(d_hs, dh, gates, hs, hn, w_hh):
    """gru_backward without checks; dh is overwritten with dC/dh_0 and returned."""
    d_x, d_h = np.empty_like(gates), np.empty_like(gates)
    _recurrent.gru_backward(d_hs, gates, hs, hn, w_hh, d_x, d_h, dh)
    return d_x, d_h, dh
