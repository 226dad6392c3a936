"""Gradient clipping by the global L2 norm."""
from __future__ import annotations

import math

import numpy as np

from cnn_core._validation import FLOAT_DTYPES, NonFiniteError, check_bool, check_real
from cnn_core.optim.optimizer import check_params

# sum(g*g) in g's own precision is exact enough when it lands in [tiny / eps, max]: a finite sum means no
# square overflowed, and the squares that underflowed (each < tiny) add at most n * tiny, a relative error
# <= n * eps like the rounding of the sum itself. Outside that range the norm is recomputed with scaling.
_TRUST_LOW = {t: np.finfo(t).tiny / np.finfo(t).eps for t in FLOAT_DTYPES}


def _l2_norm(g: np.ndarray) -> tuple[float, float]:
    """||g||_2 as a pair (scale, r) with norm = scale * r, r finite: the norm itself may exceed float64.

    Fast path: one BLAS dot in g's dtype, (sqrt(sum g^2), 1). When that sum overflowed (float32 gradients of
    1e20 already do) or underflowed, the norm is m * ||g / m|| with m = max |g|, scaled as LAPACK's nrm2 does
    (every |g_i / m| <= 1, so the sum of squares lies in [1, n]). scale is NaN when g holds a NaN, else inf
    when it holds an inf, and 0 for a zero g.
    """
    g = g.reshape(-1)
    with np.errstate(over="ignore", under="ignore"):
        ss = float(np.dot(g, g))
    if _TRUST_LOW[g.dtype] <= ss < math.inf:
        return math.sqrt(ss), 1.0
    m = float(np.max(np.abs(g))) if g.size else 0.0
    if m == 0.0 or not math.isfinite(m):  # all zero, or a NaN (max propagates it) or an inf in g
        return m, 1.0
    r = g / m
    return m, math.sqrt(float(np.dot(r, r)))


def clip_grad_norm(params, max_norm: float, error_if_nonfinite: bool = False) -> float:
    """Scale all gradients in place so that their global L2 norm is at most `max_norm`; return the norm.

    The norm ||(g_1, ..., g_k)||_2 is taken over all gradients together, as if concatenated, and computed
    without overflow: float32 gradients of 1e20 give their true norm (a naive float32 sum of squares is inf).
    When it exceeds `max_norm` every grad is multiplied by max_norm / (norm + 1e-6) (PyTorch's
    clip_grad_norm_); should the norm itself exceed the float64 range (float64 gradients near 1e308) the
    factor is formed from the scaled norms, so the gradients are still clipped to `max_norm`.

    Non-finite gradients (a NaN or an inf anywhere): the norm is NaN (any NaN) or inf and is returned with
    the gradients left untouched, since scaling by it would only turn them into NaN (PyTorch scales them
    anyway). With error_if_nonfinite=True (PyTorch's keyword) a NonFiniteError, a ValueError, is raised instead.
    """
    params = check_params(params)
    max_norm = check_real(max_norm, "max_norm", 0.0)
    check_bool(error_if_nonfinite, "error_if_nonfinite")
    norms = [_l2_norm(p.grad) for p in params]
    scales = [scale for scale, _ in norms]
    if not all(map(math.isfinite, scales)):
        total = math.nan if any(map(math.isnan, scales)) else math.inf
        if error_if_nonfinite:
            raise NonFiniteError(f"params: the total gradient norm is {total}, so the gradients cannot be clipped "
                                 "(set error_if_nonfinite=False to get the norm back and leave them untouched)")
        return total
    big = max(scales)
    if big == 0.0:
        return 0.0
    # ||(g_1, ..., g_k)|| = big * hypot(scale_i / big * r_i): every term <= sqrt(numel), so no overflow
    rel = math.hypot(*(scale / big * r for scale, r in norms))
    total = big * rel  # inf only when the true norm is beyond float64
    coef = max_norm / (total + 1e-6) if math.isfinite(total) else (max_norm / big) / rel
    if coef < 1.0:
        for p in params:
            np.multiply(p.grad, coef, out=p.grad)
    return total
