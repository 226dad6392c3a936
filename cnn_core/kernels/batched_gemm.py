"""Batched GEMM: one matrix product per sample (a convolution layer's gemms over the batch) in one call."""
from __future__ import annotations

import numpy as np

from cnn_core._validation import as_float_array, as_real
from cnn_core.kernels import _batched_gemm
from cnn_core.kernels.gemm import check_output


def _as_batch(x, name: str, dtype=None) -> np.ndarray:
    """A 2-D (shared by every sample) or 3-D (one matrix per sample) array as a C-contiguous 3-D one."""
    x = as_float_array(x, name, dtype=dtype)
    if x.ndim == 2:
        x = x[None]
    elif x.ndim != 3:
        raise ValueError(f"{name}: expected a 2-D matrix or a 3-D batch of matrices, got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name}: expected every dimension >= 1, got shape {x.shape}")
    return x


def _operands(a, b, trans_a, trans_b):
    a = _as_batch(a, "a")
    b = _as_batch(b, "b", dtype=a.dtype)
    m, k = (a.shape[2], a.shape[1]) if trans_a else a.shape[1:]
    kb, n = (b.shape[2], b.shape[1]) if trans_b else b.shape[1:]
    if kb != k:
        raise ValueError(f"b: inner dimensions do not match: op(a[i]) is {m}x{k} (trans_a={bool(trans_a)}), "
                         f"op(b[i]) is {kb}x{n} (trans_b={bool(trans_b)})")
    if a.shape[0] != b.shape[0] and 1 not in (a.shape[0], b.shape[0]):
        raise ValueError(f"b: batch sizes do not match: a has {a.shape[0]} matrices, b has {b.shape[0]}")
    return a, b, m, n


def gemm_batched(a: np.ndarray, b: np.ndarray, c: np.ndarray | None = None, alpha: float = 1.0,
                 beta: float = 0.0, trans_a: bool = False, trans_b: bool = False) -> np.ndarray:
    """c[i] = alpha * op(a[i]) @ op(b[i]) + beta * c[i] for i < B, samples in parallel.

    a: (B, M, K) or one (M, K) matrix shared by all samples ((B, K, M) / (K, M) with trans_a); b likewise
    (B, K, N) or (K, N) ((B, N, K) / (N, K) with trans_b); at least one of them 3-D unless B = 1.
    c: (B, M, N), C-contiguous, written in place and returned (a new array when None; beta then ignored).
    """
    a, b, m, n = _operands(a, b, trans_a, trans_b)
    batch = max(a.shape[0], b.shape[0])
    alpha, beta = as_real(alpha, "alpha"), as_real(beta, "beta")
    if c is not None:
        check_output(c, a, b, (batch, m, n))
    return _gemm_batched(a, b, c, alpha, beta, bool(trans_a), bool(trans_b))


def gemm_batched_sum(a: np.ndarray, b: np.ndarray, c: np.ndarray | None = None, alpha: float = 1.0,
                     beta: float = 0.0, trans_a: bool = False, trans_b: bool = False) -> np.ndarray:
    """c = alpha * sum_i op(a[i]) @ op(b[i]) + beta * c: a weight gradient summed over the batch.

    a: (B, M, K) ((B, K, M) with trans_a), b: (B, K, N) ((B, N, K) with trans_b); c: (M, N), C-contiguous,
    updated in place and returned (a new array when None; beta then ignored). With beta == 0 the old
    contents of c are never read.
    """
    a, b, m, n = _operands(a, b, trans_a, trans_b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"b: expected as many matrices as a ({a.shape[0]}), got {b.shape[0]}")
    alpha, beta = as_real(alpha, "alpha"), as_real(beta, "beta")
    if c is not None:
        check_output(c, a, b, (m, n))
    return _gemm_batched_sum(a, b, c, alpha, beta, bool(trans_a), bool(trans_b))


# The unchecked entry points for layers that have validated their arrays at their own boundary: a and b
# C-contiguous 3-D (or 2-D, shared by every sample) of one float dtype with matching inner dimensions, c
# None or a C-contiguous buffer of the product's shape that overlaps neither.

def _as3d(x: np.ndarray) -> np.ndarray:
    return x if x.ndim == 3 else x[None]


def _dims(a: np.ndarray, b: np.ndarray, trans_a: bool, trans_b: bool) -> tuple[int, int]:
    return a.shape[2] if trans_a else a.shape[1], b.shape[1] if trans_b else b.shape[2]


def _gemm_batched(a: np.ndarray, b: np.ndarray, c: np.ndarray | None = None, alpha: float = 1.0,
                  beta: float = 0.0, trans_a: bool = False, trans_b: bool = False) -> np.ndarray:
    """gemm_batched without argument checks."""
    a, b = _as3d(a), _as3d(b)
    if c is None:
        c, beta = np.empty((max(a.shape[0], b.shape[0]), *_dims(a, b, trans_a, trans_b)), dtype=a.dtype), 0.0
    _batched_gemm.gemm_batched(a, b, c, trans_a, trans_b, alpha, beta)
    return c


def _gemm_batched_sum(a: np.ndarray, b: np.ndarray, c: np.ndarray | None = None, alpha: float = 1.0,
                      beta: float = 0.0, trans_a: bool = False, trans_b: bool = False) -> np.ndarray:
    """gemm_batched_sum without argument checks."""
    if c is None:
        c, beta = np.empty(_dims(a, b, trans_a, trans_b), dtype=a.dtype), 0.0
    _batched_gemm.gemm_batched_sum(a, b, c, trans_a, trans_b, alpha, beta)
    return c
