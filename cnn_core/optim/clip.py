"""Gradient clipping: by the global norm of all gradients (clip_grad_norm_) or by value (clip_grad_value_)."""
from __future__ import annotations

import math

import numpy as np

from cnn_core._validation import FLOAT_DTYPES, NonFiniteError, as_real, check_bool, check_real
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


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> float:
    """Scale all gradients in place so that their global `norm_type`-norm is at most `max_norm`; return the norm.

    PyTorch's clip_grad_norm_: the norm ||(g_1, ..., g_k)||_p is taken over all gradients together, as if
    concatenated (p = norm_type: 2 by default, any p > 0, or math.inf for the largest |g|), and when it
    exceeds `max_norm` every grad is multiplied by max_norm / (norm + 1e-6). Parameters whose grad is None are
    skipped. The 2-norm is computed without overflow: float32 gradients of 1e20 give their true norm (a naive
    float32 sum of squares is inf); should the norm itself exceed the float64 range (float64 gradients near
    1e308) the factor is formed from the scaled norms, so the gradients are still clipped to `max_norm`.

    Non-finite gradients (a NaN or an inf anywhere): the norm is NaN (any NaN) or inf and is returned with
    the gradients left untouched, since scaling by it would only turn them into NaN (PyTorch scales them
    anyway). With error_if_nonfinite=True a NonFiniteError, a ValueError, is raised instead.
    """
    return _clip_norm(parameters, max_norm, norm_type, error_if_nonfinite, "parameters")


def _clip_norm(parameters, max_norm, norm_type, error_if_nonfinite, name: str) -> float:
    params = [p for p in check_params(parameters, name) if p.grad is not None]
    max_norm = check_real(max_norm, "max_norm", 0.0)
    norm_type = as_real(norm_type, "norm_type")
    if not norm_type > 0:
        raise ValueError(f"norm_type: expected a number > 0 or math.inf, got {norm_type!r}")
    check_bool(error_if_nonfinite, "error_if_nonfinite")
    if norm_type == 2.0:
        norms = [_l2_norm(p.grad) for p in params]
    else:
        norms = [_p_norm(p.grad, norm_type) for p in params]
    scales = [scale for scale, _ in norms]
    if not all(map(math.isfinite, scales)):
        total = math.nan if any(map(math.isnan, scales)) else math.inf
        if error_if_nonfinite:
            raise NonFiniteError(f"{name}: the total gradient norm is {total}, so the gradients cannot be "
                                 "clipped (set error_if_nonfinite=False to get the norm back and leave them untouched)")
        return total
    big = max(scales, default=0.0)
    if big == 0.0:
        return 0.0
    # ||(g_1, ..., g_k)|| = big * ||(scale_i / big * r_i)||_p: every term <= numel ** (1/p), so no overflow
    if norm_type == math.inf:
        rel = 1.0
    elif norm_type == 2.0:
        rel = math.hypot(*(scale / big * r for scale, r in norms))
    else:
        rel = math.fsum((scale / big * r) ** norm_type for scale, r in norms) ** (1.0 / norm_type)
    total = big * rel  # inf only when the true norm is beyond float64
    coef = max_norm / (total + 1e-6) if math.isfinite(total) else (max_norm / big) / rel
    if coef < 1.0:
        for p in params:
            np.multiply(p.grad, coef, out=p.grad)
    return total


def _p_norm(g: np.ndarray, p: float) -> tuple[float, float]:
    """||g||_p as (m, r) with norm = m * r, m = max |g| (so r = ||g / m||_p is in [1, numel ** (1/p)])."""
    a = np.abs(g.reshape(-1))
    m = float(np.max(a)) if a.size else 0.0
    if m == 0.0 or not math.isfinite(m) or p == math.inf:
        return m, 1.0
    return m, float(np.sum((a / m) ** p)) ** (1.0 / p)


def clip_grad_norm(params, max_norm: float, error_if_nonfinite: bool = False) -> float:
    """The former name of clip_grad_norm_ (2-norm), kept for existing code."""
    return _clip_norm(params, max_norm, 2.0, error_if_nonfinite, "params")


def clip_grad_value_(parameters, clip_value: float) -> None:
    """Clamp every gradient in place to [-clip_value, clip_value] (PyTorch's clip_grad_value_); grads that
    are None are skipped, NaN stays NaN."""
    params = check_params(parameters, "parameters")
    clip_value = check_real(clip_value, "clip_value", 0.0)
    for p in params:
        if p.grad is not None:
            np.clip(p.grad, -clip_value, clip_value, out=p.grad)
