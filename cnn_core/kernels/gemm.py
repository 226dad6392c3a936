"""Public GEMM: C = alpha * op(A) @ op(B) + beta * C on the blocked C kernel of src_c/gemm.c."""
from __future__ import annotations

import numpy as np

from cnn_core._validation import as_float_array, as_real, check_output as _check_buffer
from cnn_core.kernels import _gemm


def _strided(x: np.ndarray) -> np.ndarray:
    """`x` itself when its strides are whole elements (the C code takes any such view), else a copy."""
    rows, cols = x.strides
    if rows % x.itemsize or cols % x.itemsize:
        return np.ascontiguousarray(x)
    return x


def gemm(a: np.ndarray, b: np.ndarray, c: np.ndarray | None = None, alpha: float = 1.0, beta: float = 0.0,
         trans_a: bool = False, trans_b: bool = False) -> np.ndarray:
    """C = alpha * op(A) @ op(B) + beta * C, where op(X) is X or X.T.

    a: (M, K), or (K, M) with trans_a; b: (K, N), or (N, K) with trans_b; c: (M, N) -> returned.
    a and b may be any views (transposed, sliced): they are read through their strides, not copied.
    c, when given, must be C-contiguous with a's dtype; it is overwritten in place and returned. With
    beta == 0 its old contents are never read (NaN garbage does not leak). When c is None a new array is
    returned and beta is ignored.
    """
    out = _gemm.gemm_fast(a, b, c, alpha, beta, trans_a, trans_b)   # the usual arguments, checked in C
    if out is not NotImplemented:
        return out
    a = as_float_array(a, "a", ndim=2, contiguous=False)
    b = as_float_array(b, "b", ndim=2, dtype=a.dtype, contiguous=False)
    alpha = as_real(alpha, "alpha")
    beta = as_real(beta, "beta")
    opa = _strided(a.T if trans_a else a)
    opb = _strided(b.T if trans_b else b)
    (m, k), (kb, n) = opa.shape, opb.shape
    if kb != k:
        raise ValueError(
            f"b: inner dimensions do not match: op(a) is {m}x{k} (trans_a={bool(trans_a)}), "
            f"op(b) is {kb}x{n} (trans_b={bool(trans_b)})")
    if c is None:
        return _gemm_op(opa, opb, c, alpha, beta)
    _check_buffer(c, "c", (m, n), a.dtype, "to match a and b")
    _gemm.gemm_into(opa, opb, c, alpha, beta, True)   # True: c overlapping a or b is a ValueError
    return c


def _gemm_op(opa: np.ndarray, opb: np.ndarray, c: np.ndarray | None, alpha: float, beta: float) -> np.ndarray:
    """c = alpha * opa @ opb + beta * c without argument checks: opa (M, K) and opb (K, N) float views of
    one dtype with whole-element strides, c None (a new array, beta ignored) or (M, N) C-contiguous."""
    out = _gemm.gemm_fast(opa, opb, c, float(alpha), float(beta), False, False)   # the cheaper entry
    if out is not NotImplemented:
        return out
    if c is None:
        c, beta = np.empty((opa.shape[0], opb.shape[1]), dtype=opa.dtype), 0.0
    _gemm.gemm_into(opa, opb, c, alpha, beta)
    return c


def _matmul(a: np.ndarray, b: np.ndarray, c: np.ndarray | None = None, alpha: float = 1.0, beta: float = 0.0,
            trans_a: bool = False, trans_b: bool = False) -> np.ndarray:
    """gemm for layers that have checked their arrays at their own boundary (see _gemm_op)."""
    return _gemm_op(a.T if trans_a else a, b.T if trans_b else b, c, alpha, beta)


def check_output(c, a: np.ndarray, b: np.ndarray, shape: tuple[int, ...]) -> None:
    """Validate an output buffer c of `shape` for a product of a and b (also used by the batched GEMMs)."""
    _check_buffer(c, "c", shape, a.dtype, "to match a and b")
    # The product is written block by block while A and B are still being read.
    for name, x in (("a", a), ("b", b)):
        if np.may_share_memory(c, x):
            raise ValueError(f"c: must not overlap {name} (the product is written while {name} is read)")
