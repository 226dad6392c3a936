"""Plain NumPy references for the issue-11 layers and losses, written from the formulas (loops where that is the
clearest statement), independent of the library's code paths."""
from __future__ import annotations

import math

import numpy as np


def _channels_last(x: np.ndarray) -> np.ndarray:
    """(N, C, *) -> (C, N * prod(*)): each row one channel's values."""
    return np.moveaxis(x, 1, 0).reshape(x.shape[1], -1)


def batch_norm_train(x, gamma, beta, eps):
    """y, mean, biased var per channel (float64 math)."""
    x64 = x.astype(np.float64)
    v = _channels_last(x64)
    mean = v.mean(axis=1)
    var = ((v - mean[:, None]) ** 2).mean(axis=1)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    xhat = (x64 - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
    return xhat * gamma.reshape(shape) + beta.reshape(shape), mean, var


def batch_norm_eval(x, running_mean, running_var, gamma, beta, eps):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    xhat = (x.astype(np.float64) - running_mean.reshape(shape)) / np.sqrt(running_var.reshape(shape) + eps)
    return xhat * gamma.reshape(shape) + beta.reshape(shape)


def batch_norm_backward(x, dy, gamma, eps):
    """dx, dgamma, dbeta by the chain rule through mean and variance, step by step (not the closed form):
    y = gamma xhat + beta, xhat = (x - mu) s, s = (var + eps)^-1/2, var = mean((x - mu)^2), mu = mean(x)."""
    x64, dy64 = x.astype(np.float64), dy.astype(np.float64)
    c = x.shape[1]
    xs, dys = _channels_last(x64), _channels_last(dy64)
    m = xs.shape[1]
    dx = np.empty_like(xs)
    dgamma, dbeta = np.empty(c), np.empty(c)
    for k in range(c):
        xv, g = xs[k], dys[k]
        mu = xv.mean()
        d = xv - mu
        var = (d * d).mean()
        s = 1 / math.sqrt(var + eps)
        xhat = d * s
        dbeta[k] = g.sum()
        dgamma[k] = (g * xhat).sum()
        dxhat = g * gamma[k]
        ds = (dxhat * d).sum()
        dvar = ds * -0.5 * (var + eps) ** -1.5
        dd = dxhat * s + dvar * 2 * d / m
        dmu = -dd.sum()
        dx[k] = dd + dmu / m
    dx = np.moveaxis(dx.reshape((c, x.shape[0]) + x.shape[2:]), 0, 1)
    return dx, dgamma, dbeta


def embedding_backward(idx, dy, num, dim, padding_idx=None):
    """weight.grad by a plain loop over every index."""
    g = np.zeros((num, dim))
    flat, rows = idx.reshape(-1), dy.reshape(-1, dim)
    for i, j in enumerate(flat):
        if j != padding_idx:
            g[j] += rows[i]
    return g


def softmax(x, dim):
    e = np.exp(x.astype(np.float64) - x.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def gelu(x, approximate="none"):
    x64 = x.astype(np.float64).ravel()
    if approximate == "tanh":
        out = [0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3))) for v in x64]
    else:
        out = [0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x64]
    return np.array(out).reshape(x.shape)


def silu(x):
    x64 = x.astype(np.float64)
    return x64 / (1 + np.exp(-x64))


def leaky_relu(x, slope):
    x64 = x.astype(np.float64)
    return np.where(x64 > 0, x64, slope * x64)


def cross_entropy(z, y, weight=None, ignore_index=-100, label_smoothing=0.0, reduction="mean"):
    """PyTorch's formula, one sample at a time."""
    n, k = z.shape
    w = np.ones(k) if weight is None else np.asarray(weight, np.float64)
    losses, denom = np.zeros(n), 0.0
    for i in range(n):
        if y[i] == ignore_index:
            continue
        zi = z[i].astype(np.float64)
        logp = zi - (zi.max() + math.log(np.exp(zi - zi.max()).sum()))
        nll = -w[y[i]] * logp[y[i]]
        smooth = -(w * logp).sum()
        losses[i] = (1 - label_smoothing) * nll + label_smoothing / k * smooth
        denom += w[y[i]] if weight is not None else 1
    return _reduce(losses, denom, reduction)


def nll(x, y, weight=None, ignore_index=-100, reduction="mean"):
    n, k = x.shape
    w = np.ones(k) if weight is None else np.asarray(weight, np.float64)
    losses, denom = np.zeros(n), 0.0
    for i in range(n):
        if y[i] != ignore_index:
            losses[i] = -w[y[i]] * float(x[i, y[i]])
            denom += w[y[i]] if weight is not None else 1
    return _reduce(losses, denom, reduction)


def bce_with_logits(x, y, weight=None, pos_weight=None, reduction="mean"):
    """-w [pw y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))], the textbook form (fine for moderate x)."""
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    s = 1 / (1 + np.exp(-x64))
    pw = 1.0 if pos_weight is None else np.broadcast_to(pos_weight, x.shape)
    losses = -(pw * y64 * np.log(s) + (1 - y64) * np.log(1 - s))
    if weight is not None:
        losses = losses * np.broadcast_to(weight, x.shape)
    return _reduce(losses, x.size, reduction)


def _reduce(losses, denom, reduction):
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.sum() / denom
