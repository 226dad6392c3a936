"""Plain NumPy references for gemm (single and batched) and the fully connected layer, straight from the
formulas.

Everything is computed in float64 whatever the input dtype, so the oracle's own rounding is far below the
float32 tolerances; for float64 inputs the tolerances allow for it explicitly.
"""
import numpy as np
from oracles_activations import activation_ref


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


def gemm_batched_ref(a, b, c=None, alpha=1.0, beta=0.0, trans_a=False, trans_b=False):
    """C[i] = alpha * op(A[i]) @ op(B[i]) + beta * C[i], one gemm_ref per matrix; a 2-D A or B is shared by
    every i."""
    batch = max(a.shape[0] if a.ndim == 3 else 1, b.shape[0] if b.ndim == 3 else 1)
    return np.array([gemm_ref(a[i] if a.ndim == 3 else a, b[i] if b.ndim == 3 else b,
                              None if c is None else c[i], alpha, beta, trans_a, trans_b) for i in range(batch)])


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
