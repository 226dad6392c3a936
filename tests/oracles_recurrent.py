"""The recurrent layers' forward passes (Elman RNN, LSTM, GRU) as plain loops over layers and time steps, written
from PyTorch's equations, in float64 whatever the input dtype.

`weights` is a list with one (w_ih, w_hh, b_ih, b_hh) per layer (biases None for bias=False), gate blocks in
PyTorch's order: LSTM i, f, g, o; GRU r, z, n. Sequences are time-major (T, N, D) unless batch_first; states
are (num_layers, N, H), None meaning zeros.
"""
import numpy as np
from oracles_activations import activation_ref


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _prepare(x, weights, batch_first):
    x = np.asarray(x, np.float64)
    x = x.transpose(1, 0, 2) if batch_first else x
    ws = [tuple(None if w is None else np.asarray(w, np.float64) for w in layer) for layer in weights]
    return x, ws


def _initial(state, layers, n, h):
    return np.zeros((layers, n, h)) if state is None else np.asarray(state, np.float64)


def _affine(v, w, b):
    return v @ w.T + (0.0 if b is None else b)


def _finish(seq, batch_first):
    out = np.stack(seq)  # (T, N, H)
    return out.transpose(1, 0, 2) if batch_first else out


def rnn_ref(x, h0, weights, nonlinearity="tanh", batch_first=False):
    """h_t = sigma(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) per layer -> (out, h_n)."""
    x, ws = _prepare(x, weights, batch_first)
    t_len, n, _ = x.shape
    h_size = ws[0][1].shape[1]
    h0 = _initial(h0, len(ws), n, h_size)
    seq, h_n = list(x), []
    for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(ws):
        h, outs = h0[layer], []
        for x_t in seq:
            h = activation_ref(_affine(x_t, w_ih, b_ih) + _affine(h, w_hh, b_hh), nonlinearity)
            outs.append(h)
        seq = outs
        h_n.append(h)
    return _finish(seq, batch_first), np.stack(h_n)


def lstm_ref(x, h0, c0, weights, batch_first=False):
    """i, f, g, o = s, s, tanh, s of (x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) in blocks of H;
    c_t = f c_{t-1} + i g; h_t = o tanh(c_t) -> (out, h_n, c_n)."""
    x, ws = _prepare(x, weights, batch_first)
    t_len, n, _ = x.shape
    hid = ws[0][1].shape[1]
    h0, c0 = _initial(h0, len(ws), n, hid), _initial(c0, len(ws), n, hid)
    seq, h_n, c_n = list(x), [], []
    for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(ws):
        h, c, outs = h0[layer], c0[layer], []
        for x_t in seq:
            a = _affine(x_t, w_ih, b_ih) + _affine(h, w_hh, b_hh)
            i, f = sigmoid(a[:, :hid]), sigmoid(a[:, hid:2 * hid])
            g, o = np.tanh(a[:, 2 * hid:3 * hid]), sigmoid(a[:, 3 * hid:])
            c = f * c + i * g
            h = o * np.tanh(c)
            outs.append(h)
        seq = outs
        h_n.append(h)
        c_n.append(c)
    return _finish(seq, batch_first), np.stack(h_n), np.stack(c_n)


def gru_ref(x, h0, weights, batch_first=False):
    """r = s(W_ir x + b_ir + W_hr h + b_hr), z = s(W_iz x + b_iz + W_hz h + b_hz),
    n = tanh(W_in x + b_in + r (W_hn h + b_hn)), h' = (1 - z) n + z h -> (out, h_n)."""
    x, ws = _prepare(x, weights, batch_first)
    t_len, n, _ = x.shape
    hid = ws[0][1].shape[1]
    h0 = _initial(h0, len(ws), n, hid)
    seq, h_n = list(x), []
    for layer, (w_ih, w_hh, b_ih, b_hh) in enumerate(ws):
        h, outs = h0[layer], []
        for x_t in seq:
            gi, gh = _affine(x_t, w_ih, b_ih), _affine(h, w_hh, b_hh)
            r = sigmoid(gi[:, :hid] + gh[:, :hid])
            z = sigmoid(gi[:, hid:2 * hid] + gh[:, hid:2 * hid])
            n_gate = np.tanh(gi[:, 2 * hid:] + r * gh[:, 2 * hid:])
            h = (1 - z) * n_gate + z * h
            outs.append(h)
        seq = outs
        h_n.append(h)
    return _finish(seq, batch_first), np.stack(h_n)


def layer_weights(module):
    """The (w_ih, w_hh, b_ih, b_hh) of every layer of a cnn_core recurrent module, by PyTorch's names."""
    get = lambda name: getattr(module, name).data if hasattr(module, name) else None  # noqa: E731
    return [tuple(get(f"{kind}_l{k}") for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            for k in range(module.num_layers)]


def recurrent_ref(module, x, state=None):
    """The oracle for a cnn_core RNN/LSTM/GRU module's forward: (out, state) shaped as the module returns them."""
    ws, bf = layer_weights(module), module.batch_first
    name = type(module).__name__
    if name == "LSTM":
        h0, c0 = (None, None) if state is None else state
        out, h_n, c_n = lstm_ref(x, h0, c0, ws, bf)
        return out, (h_n, c_n)
    if name == "GRU":
        return gru_ref(x, state, ws, bf)
    return rnn_ref(x, state, ws, module.nonlinearity, bf)
