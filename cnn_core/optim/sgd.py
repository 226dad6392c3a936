"""Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight decay."""
from __future__ import annotations

import numpy as np

from cnn_core._validation import check_bool, check_real
from cnn_core.optim.optimizer import Optimizer


class SGD(Optimizer):
    """PyTorch's SGD (dampening 0). Per parameter p with gradient g, each step:

        g = g + weight_decay * p
        buf = g (first step), else buf = momentum * buf + g
        g = g + momentum * buf (nesterov), else g = buf      (only when momentum > 0)
        p = p - lr * g

    `.grad` itself is never modified.
    """

    _hyper = ("lr", "momentum", "weight_decay", "nesterov")
    _state_arrays = ("momentum_buffer",)

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False) -> None:
        super().__init__(params, lr, momentum=momentum, weight_decay=weight_decay, nesterov=nesterov)

    @classmethod
    def _validate_hyper(cls, hyper, name):
        out = super()._validate_hyper(hyper, name)
        out["momentum"] = check_real(hyper["momentum"], name("momentum"), 0.0)
        out["weight_decay"] = check_real(hyper["weight_decay"], name("weight_decay"), 0.0)
        nesterov = check_bool(hyper["nesterov"], name("nesterov"))
        if nesterov and out["momentum"] == 0.0:
            raise ValueError(f"{name('nesterov')}: Nesterov momentum requires momentum > 0, got momentum=0")
        out["nesterov"] = nesterov
        return out

    def step(self) -> None:
        """Apply one update to every parameter from its current `.grad`."""
        lr, mu, wd = self.lr, self.momentum, self.weight_decay
        for i, p in enumerate(self.params):
            g = self._grad_with_decay(i, wd)
            if mu != 0.0:
                buf = self.state[i].get("momentum_buffer")
                if buf is None:
                    buf = self.state[i]["momentum_buffer"] = g.copy()
                else:
                    np.multiply(buf, mu, out=buf)
                    np.add(buf, g, out=buf)
                if self.nesterov:
                    d = self._scratch_buffer(i, "d")
                    t = self._scratch_buffer(i, "t")
                    np.multiply(buf, mu, out=t)
                    np.add(g, t, out=d)
                    g = d
                else:
                    g = buf
            t = self._scratch_buffer(i, "t")
            np.multiply(g, lr, out=t)
            np.subtract(p.data, t, out=p.data)
