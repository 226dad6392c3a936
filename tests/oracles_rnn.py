"""The recurrent layer's forward pass as a loop over time steps, straight from the recurrence."""
import numpy as np
from oracles_activations import activation_ref


def rnn_ref(x, h0, w_ih, w_hh, b_ih, b_hh, nonlinearity="tanh"):
    """Elman RNN, one step at a time: h_t = sigma(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), h_0 = h0 or 0,
    sigma the activation named `nonlinearity`.

    Returns (out (N, T, H) stacking every h_t, h_T)."""
    n, t_len, _ = x.shape
    h = np.zeros((n, w_hh.shape[0])) if h0 is None else h0
    outs = []
    for t in range(t_len):
        h = activation_ref(x[:, t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh, nonlinearity)
        outs.append(h)
    return np.stack(outs, axis=1), h
