"""The recurrent time loops (cnn_core.kernels.recurrent) against the oracle of tests/oracles_recurrent.py on every
SIMD path, float32 and float64, and their argument checks."""
import numpy as np
import pytest
from oracles_recurrent import gru_ref, lstm_ref, rnn_ref, sigmoid

from cnn_core.kernels import recurrent as K

F32, F64 = np.float32, np.float64


def rand(*shape, seed=0, dtype=F64, scale=1.0):
    return (scale * np.random.default_rng(seed).standard_normal(shape)).astype(dtype)


def tol(dtype):
    return 1e-12 if dtype == F64 else 3e-6


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("t_len, n, h", [(1, 1, 1), (5, 3, 7), (17, 2, 33)])
def test_rnn_forward(simd, dtype, nonlinearity, t_len, n, h):
    xw, w_hh = rand(t_len, n, h, dtype=dtype), rand(h, h, seed=1, dtype=dtype, scale=0.3)
    h0 = rand(n, h, seed=2, dtype=dtype)
    hs = K.rnn_forward(xw, w_hh, h0, nonlinearity)
    # the oracle with W_ih = I and no input bias reads xw as the projection itself
    out, h_n = rnn_ref(xw, h0[None], [(np.eye(h), w_hh, None, None)], nonlinearity)
    assert hs.shape == (t_len + 1, n, h) and hs.dtype == dtype
    np.testing.assert_array_equal(hs[0], h0)
    np.testing.assert_allclose(hs[1:], out, rtol=tol(dtype), atol=tol(dtype))


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("t_len, n, h", [(1, 1, 1), (5, 3, 7), (17, 2, 33)])
def test_lstm_forward(simd, dtype, t_len, n, h):
    xw, w_hh = rand(t_len, n, 4 * h, dtype=dtype), rand(4 * h, h, seed=1, dtype=dtype, scale=0.3)
    h0, c0 = rand(n, h, seed=2, dtype=dtype), rand(n, h, seed=3, dtype=dtype)
    gates, hs, cs, tanh_c = K.lstm_forward(xw, w_hh, h0, c0)
    out, h_n, c_n = lstm_ref(xw, h0[None], c0[None], [(np.eye(4 * h), w_hh, None, None)])
    np.testing.assert_allclose(hs[1:], out, rtol=tol(dtype), atol=tol(dtype))
    np.testing.assert_allclose(cs[-1], c_n[0], rtol=tol(dtype), atol=tol(dtype))
    np.testing.assert_allclose(tanh_c, np.tanh(cs[1:].astype(F64)), rtol=tol(dtype), atol=tol(dtype))
    # the kept gates are the activated (i, f, g, o) of the last step's pre-activation
    pre = xw[-1].astype(F64) + hs[-2].astype(F64) @ w_hh.T.astype(F64)
    want = np.concatenate([sigmoid(pre[:, :2 * h]), np.tanh(pre[:, 2 * h:3 * h]), sigmoid(pre[:, 3 * h:])], axis=1)
    np.testing.assert_allclose(gates[-1], want, rtol=tol(dtype), atol=tol(dtype))


@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("t_len, n, h", [(1, 1, 1), (5, 3, 7), (17, 2, 33)])
def test_gru_forward(simd, dtype, t_len, n, h):
    xw, w_hh = rand(t_len, n, 3 * h, dtype=dtype), rand(3 * h, h, seed=1, dtype=dtype, scale=0.3)
    b_hh, h0 = rand(3 * h, seed=2, dtype=dtype), rand(n, h, seed=3, dtype=dtype)
    gates, hs, hn = K.gru_forward(xw, w_hh, b_hh, h0)
    out, h_n = gru_ref(xw, h0[None], [(np.eye(3 * h), w_hh, None, b_hh)])
    np.testing.assert_allclose(hs[1:], out, rtol=tol(dtype), atol=tol(dtype))
    np.testing.assert_allclose(hn, hs[:-1].astype(F64) @ w_hh[2 * h:].T.astype(F64) + b_hh[2 * h:],
                               rtol=tol(dtype), atol=tol(dtype))


def _fd_check(loss, params, grads, eps=1e-6, rtol=1e-6, atol=1e-8):
    """Central differences of loss() with respect to each array in params, against grads."""
    for p, g in zip(params, grads):
        num = np.empty_like(p)
        for i in np.ndindex(p.shape):
            old = p[i]
            p[i] = old + eps
            up = loss()
            p[i] = old - eps
            down = loss()
            p[i] = old
            num[i] = (up - down) / (2 * eps)
        np.testing.assert_allclose(g, num, rtol=rtol, atol=atol)


@pytest.mark.parametrize("cell", ["rnn-tanh", "rnn-relu", "lstm", "gru"])
def test_backward_is_the_derivative_of_forward(simd, cell):
    """Each backward kernel against central differences of its own forward (float64): the gradients with
    respect to the input projection and the initial state."""
    t_len, n, h = 4, 2, 3
    g = {"rnn-tanh": 1, "rnn-relu": 1, "lstm": 4, "gru": 3}[cell]
    xw, w_hh = rand(t_len, n, g * h), rand(g * h, h, seed=1, scale=0.5)
    h0, c0, b_hh = rand(n, h, seed=2), rand(n, h, seed=3), rand(3 * h, seed=4)
    r_hs, r_h, r_c = rand(t_len, n, h, seed=5), rand(n, h, seed=6), rand(n, h, seed=7)

    def loss():
        if cell.startswith("rnn"):
            hs = K.rnn_forward(xw, w_hh, h0, cell[4:])
            return np.vdot(hs[1:], r_hs) + np.vdot(hs[-1], r_h)
        if cell == "lstm":
            _, hs, cs, _ = K.lstm_forward(xw, w_hh, h0, c0)
            return np.vdot(hs[1:], r_hs) + np.vdot(hs[-1], r_h) + np.vdot(cs[-1], r_c)
        _, hs, _ = K.gru_forward(xw, w_hh, b_hh, h0)
        return np.vdot(hs[1:], r_hs) + np.vdot(hs[-1], r_h)

    if cell.startswith("rnn"):
        hs = K.rnn_forward(xw, w_hh, h0, cell[4:])
        d_xw, dh0 = K.rnn_backward(r_hs, r_h, hs, w_hh, cell[4:])
        _fd_check(loss, [xw, h0], [d_xw, dh0])
    elif cell == "lstm":
        gates, hs, cs, tanh_c = K.lstm_forward(xw, w_hh, h0, c0)
        d_xw, dh0, dc0 = K.lstm_backward(r_hs, r_h, r_c, gates, cs, tanh_c, w_hh)
        _fd_check(loss, [xw, h0, c0], [d_xw, dh0, dc0])
    else:
        gates, hs, hn = K.gru_forward(xw, w_hh, b_hh, h0)
        d_x, d_h, dh0 = K.gru_backward(r_hs, r_h, gates, hs, hn, w_hh)
        _fd_check(loss, [xw, b_hh, h0], [d_x, d_h.sum(axis=(0, 1)), dh0])


def test_forward_does_not_change_its_arguments():
    xw, w_hh, h0, c0 = rand(3, 2, 8), rand(8, 2, seed=1), rand(2, 2, seed=2), rand(2, 2, seed=3)
    copies = [a.copy() for a in (xw, w_hh, h0, c0)]
    K.lstm_forward(xw, w_hh, h0, c0)
    for a, b in zip((xw, w_hh, h0, c0), copies):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("call, exc, name", [
    (lambda: K.rnn_forward(rand(3, 2, 4), rand(4, 5)), ValueError, "w_hh"),
    (lambda: K.rnn_forward(rand(3, 2, 4), rand(4, 4), rand(2, 3)), ValueError, "h0"),
    (lambda: K.rnn_forward(rand(3, 2, 4), rand(4, 4), nonlinearity="sigmoid"), ValueError, "nonlinearity"),
    (lambda: K.rnn_forward(rand(0, 2, 4), rand(4, 4)), ValueError, "xw"),
    (lambda: K.rnn_forward(rand(3, 2, 4, dtype=F32), rand(4, 4)), TypeError, "w_hh"),
    (lambda: K.rnn_forward(rand(3, 8), rand(4, 4)), ValueError, "xw"),
    (lambda: K.lstm_forward(rand(3, 2, 8), rand(4, 2)), ValueError, "w_hh"),
    (lambda: K.lstm_forward(rand(3, 2, 8), rand(8, 2), None, rand(2, 3)), ValueError, "c0"),
    (lambda: K.gru_forward(rand(3, 2, 6), rand(6, 2), rand(5)), ValueError, "b_hh"),
    (lambda: K.rnn_backward(rand(3, 2, 4), None, rand(3, 2, 4), rand(4, 4)), ValueError, "hs"),
    (lambda: K.lstm_backward(rand(3, 2, 2), None, None, rand(3, 2, 6), rand(4, 2, 2), rand(3, 2, 2), rand(8, 2)),
     ValueError, "gates"),
    (lambda: K.gru_backward(rand(3, 2, 2), rand(2, 3), rand(3, 2, 6), rand(4, 2, 2), rand(3, 2, 2), rand(6, 2)),
     ValueError, "dh_n"),
    (lambda: K.gru_backward(rand(3, 2, 2), None, rand(3, 2, 6), rand(4, 2, 2), [[0.0]], rand(6, 2)),
     TypeError, "hn"),
])
def test_bad_arguments_name_the_argument(call, exc, name):
    with pytest.raises(exc, match=name):
        call()
