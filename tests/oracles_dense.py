"""Plain NumPy references for gemm and the fully connected kernels, written straight from the formulas.

Everything is computed in float64 whatever the input dtype, so the oracle's own rounding is far below the
float32 tolerances; for float64 inputs the tolerances allow for it explicitly.
"""
import numpy as np


def op(x, trans):
    return x.T if trans else x


def matmul_ref(a, b):
    """(a @ b)[i, j] = sum_p a[i, p] * b[p, j], one rank-1 update per p, in float64."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    out = np.zeros((a.shape[0], b.shape[1]))
    for p in range(a.shape[1]):
        out += np.outer(a[:, p], b[p, :])
    return out


def gemm_ref(a, b, c=None, alpha=1.0, beta=0.0, trans_a=False, trans_b=False):
    """C = alpha * op(A) @ op(B) + beta * C; beta * C is dropped when beta == 0 (BLAS: C is not read)."""
    out = alpha * matmul_ref(op(a, trans_a), op(b, trans_b))
    if c is not None and beta != 0:
        out += beta * np.asarray(c, dtype=np.float64)
    return out


def gemm_tolerance(a, b, c=None, alpha=1.0, beta=0.0, trans_a=False, trans_b=False, dtype=np.float32):
    """Elementwise error bound for C: |fl(C) - C| <= gamma * (|alpha| |op(A)| @ |op(B)| + |beta| |C|).

    A K-term dot product in working precision has forward error <= K*u*|A||B| (u = eps/2, Higham 3.5); the
    alpha and beta scalings and the final add are three more roundings. gamma = (K + 3) * eps is twice that
    bound, which covers it for either summation order (blocked, FMA or not) and, for float64, also the
    float64 oracle's own rounding of the same size. The tiny floor keeps exact zeros comparable.
    """
    k = op(a, trans_a).shape[1]
    eps = np.finfo(dtype).eps
    scale = abs(alpha) * matmul_ref(np.abs(op(a, trans_a)), np.abs(op(b, trans_b)))
    if c is not None and beta != 0:
        scale += abs(beta) * np.abs(np.asarray(c, dtype=np.float64))
    return (k + 3) * eps * scale + np.finfo(dtype).tiny


def activation_ref(z, activation, alpha=1.0):
    """The activations from their definitions, in float64."""
    z = np.asarray(z, dtype=np.float64)
    if activation is None:
        return z.copy()
    if activation == "sigmoid":
        with np.errstate(over="ignore"):   # exp(-z) = inf for z << 0 gives the right limit 1/(1+inf) = 0
            return 1.0 / (1.0 + np.exp(-z))
    if activation == "tanh":
        return np.tanh(z)
    if activation == "relu":
        return np.where(z > 0, z, 0.0)
    if activation == "elu":
        out = z.copy()
        for idx in zip(*np.nonzero(z <= 0)):
            out[idx] = alpha * (np.exp(z[idx]) - 1.0)
        return out
    raise ValueError(activation)


def linear_ref(x, w, b=None, activation=None, alpha=1.0):
    """a = activation(z), z[n, o] = sum_i x[n, i] * w[o, i] + b[o]."""
    z = matmul_ref(x, np.asarray(w).T)
    if b is not None:
        z += np.asarray(b, dtype=np.float64)
    return activation_ref(z, activation, alpha), z


def linear_backward_ref(x, w, delta):
    """dx[n, i] = sum_o delta[n, o] w[o, i]; dw[o, i] = sum_n delta[n, o] x[n, i]; db[o] = sum_n delta[n, o]."""
    x, w, delta = (np.asarray(v, dtype=np.float64) for v in (x, w, delta))
    dx = matmul_ref(delta, w)
    dw = matmul_ref(delta.T, x)
    db = np.zeros(delta.shape[1])
    for row in delta:
        db += row
    return dx, dw, db
