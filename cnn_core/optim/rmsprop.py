"""RMSprop (Hinton) with optional momentum and the centered variant (Graves)."""
from __future__ import annotations

import numpy as np

from cnn_core._validation import check_bool, check_real
from cnn_core.optim.optimizer import Optimizer


class RMSprop(Optimizer):
    """PyTorch's RMSprop. Per parameter p with gradient g, each step:

        g = g + weight_decay * p
        s = alpha * s + (1 - alpha) * g * g
        avg = sqrt(s - a * a) + eps  with a = alpha * a + (1 - alpha) * g   (centered)
        avg = sqrt(s) + eps                                                   (otherwise)
        buf = momentum * buf + g / avg;  p = p - lr * buf                     (momentum > 0)
        p = p - lr * g / avg                                                  (otherwise)

    State: step, square_avg (s), momentum_buffer (momentum > 0), grad_avg (a, centered). Defaults are PyTorch's.
    """

    _state_nonnegative = ("square_avg",)

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False) -> None:
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=centered))

    @classmethod
    def _validate_hyper(cls, hyper, name):
        out = super()._validate_hyper(hyper, name)
        out["alpha"] = check_real(hyper["alpha"], name("alpha"), 0.0)
        out["eps"] = check_real(hyper["eps"], name("eps"), 0.0)
        out["weight_decay"] = check_real(hyper["weight_decay"], name("weight_decay"), 0.0)
        out["momentum"] = check_real(hyper["momentum"], name("momentum"), 0.0)
        out["centered"] = check_bool(hyper["centered"], name("centered"))
        return out

    def _state_spec(self, group):
        arrays = ("square_avg",) + (("momentum_buffer",) if group["momentum"] > 0 else ()) \
            + (("grad_avg",) if group["centered"] else ())
        return arrays, ("step",)

    def step(self) -> None:
        """Apply one update to every trainable parameter from its current `.grad`."""
        for group in self.param_groups:
            lr, alpha, eps, mu = group["lr"], group["alpha"], group["eps"], group["momentum"]
            for p, state in self._trainable(group):
                if not state:
                    state["step"] = 0
                    state["square_avg"] = np.zeros_like(p.data)
                    if mu > 0:
                        state["momentum_buffer"] = np.zeros_like(p.data)
                    if group["centered"]:
                        state["grad_avg"] = np.zeros_like(p.data)
                state["step"] += 1
                g = self._grad_with_decay(p, group["weight_decay"])
                s, t, avg = state["square_avg"], self._scratch_buffer(p, "t"), self._scratch_buffer(p, "avg")
                np.multiply(s, alpha, out=s)
                np.multiply(g, g, out=t)
                np.multiply(t, 1.0 - alpha, out=t)
                np.add(s, t, out=s)
                if group["centered"]:
                    a = state["grad_avg"]
                    np.multiply(a, alpha, out=a)
                    np.multiply(g, 1.0 - alpha, out=t)
                    np.add(a, t, out=a)
                    np.multiply(a, a, out=t)
                    np.subtract(s, t, out=avg)
                    np.sqrt(avg, out=avg)
                else:
                    np.sqrt(s, out=avg)
                np.add(avg, eps, out=avg)
                np.divide(g, avg, out=t)
                if mu > 0:
                    buf = state["momentum_buffer"]
                    np.multiply(buf, mu, out=buf)
                    np.add(buf, t, out=buf)
                    np.multiply(buf, lr, out=t)
                else:
                    np.multiply(t, lr, out=t)
                np.subtract(p.data, t, out=p.data)
