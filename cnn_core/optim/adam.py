"""Adam (Kingma & Ba) with bias correction and optional L2 weight decay (PyTorch's Adam, not AdamW)."""
from __future__ import annotations

import math

import numpy as np

from cnn_core._validation import check_real
from cnn_core.optim.optimizer import Optimizer


class Adam(Optimizer):
    """PyTorch's Adam (amsgrad off). Per parameter p with gradient g, at step t = 1, 2, ...:

        g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p = p - (lr / (1 - beta1**t)) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    which is p - lr * m_hat / (sqrt(v_hat) + eps) evaluated the way PyTorch does. `.grad` is never modified.
    """

    _hyper = ("lr", "betas", "eps", "weight_decay")

    _state_arrays = ("exp_avg", "exp_avg_sq")
    _state_nonnegative = ("exp_avg_sq",)  # its square root is taken
    _state_counters = ("step",)

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0) -> None:
        super().__init__(params, lr, betas=betas, eps=eps, weight_decay=weight_decay)

    @classmethod
    def _validate_hyper(cls, hyper, name):
        out = super()._validate_hyper(hyper, name)
        betas = hyper["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"{name('betas')}: expected a pair (beta1, beta2), got {betas!r}")
        out["betas"] = (check_real(betas[0], name("betas") + "[0]", 0.0, 1.0, high_open=True),
                        check_real(betas[1], name("betas") + "[1]", 0.0, 1.0, high_open=True))
        out["eps"] = check_real(hyper["eps"], name("eps"), 0.0)
        out["weight_decay"] = check_real(hyper["weight_decay"], name("weight_decay"), 0.0)
        return out

    def step(self) -> None:
        """Apply one update to every parameter from its current `.grad`."""
        beta1, beta2 = self.betas
        wd, eps = self.weight_decay, self.eps
        for i, p in enumerate(self.params):
            state = self.state[i]
            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(p.data)
                state["exp_avg_sq"] = np.zeros_like(p.data)
            state["step"] += 1
            t_step, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
            t = self._scratch_buffer(i, "t")
            g = self._grad_with_decay(i, wd)
            np.multiply(m, beta1, out=m)
            np.multiply(g, 1.0 - beta1, out=t)
            np.add(m, t, out=m)
            np.multiply(v, beta2, out=v)
            np.multiply(g, g, out=t)
            np.multiply(t, 1.0 - beta2, out=t)
            np.add(v, t, out=v)
            step_size = self.lr / (1.0 - beta1 ** t_step)
            np.sqrt(v, out=t)
            np.divide(t, math.sqrt(1.0 - beta2 ** t_step), out=t)
            np.add(t, eps, out=t)
            np.divide(m, t, out=t)
            np.multiply(t, step_size, out=t)
            np.subtract(p.data, t, out=p.data)
