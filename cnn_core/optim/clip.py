"""Gradient clipping by the global L2 norm."""
from __future__ import annotations

import math

import numpy as np

from cnn_core.optim.optimizer import check_hyper, check_params


def clip_grad_norm(params, max_norm: float) -> float:
    """Scale all gradients in place so that their global L2 norm is at most `max_norm`; return the norm.

    The norm is taken over all gradients together, as if concatenated. When it exceeds `max_norm` every grad is
    multiplied by max_norm / (norm + 1e-6) (PyTorch's clip_grad_norm_). A non-finite norm is returned and the
    gradients are left untouched: scaling by it would only turn them into NaN.
    """
    params = check_params(params)
    max_norm = check_hyper(max_norm, "max_norm")
    total = math.sqrt(sum(float(np.vdot(p.grad, p.grad)) for p in params))
    coef = max_norm / (total + 1e-6)
    if math.isfinite(total) and coef < 1.0:
        for p in params:
            np.multiply(p.grad, coef, out=p.grad)
    return total
