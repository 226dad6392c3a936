"""Adagrad (Duchi, Hazan & Singer): per-coordinate steps shrinking with the sum of squared gradients."""
from __future__ import annotations

import numpy as np

from cnn_core._validation import check_real
from cnn_core.optim.optimizer import Optimizer


class Adagrad(Optimizer):
    """PyTorch's Adagrad. Per parameter p with gradient g, at step t = 1, 2, ...:

        g = g + weight_decay * p
        clr = lr / (1 + (t - 1) * lr_decay)
        sum = sum + g * g
        p = p - clr * g / (sqrt(sum) + eps)

    As in PyTorch the state (step 0, sum filled with initial_accumulator_value) exists from construction.
    """

    _state_nonnegative = ("sum",)

    def __init__(self, params, lr: float = 1e-2, lr_decay: float = 0.0, weight_decay: float = 0.0,
                 initial_accumulator_value: float = 0.0, eps: float = 1e-10) -> None:
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps))
        for group in self.param_groups:
            self._init_group(group)

    def add_param_group(self, param_group) -> None:
        super().add_param_group(param_group)
        self._init_group(self.param_groups[-1])

    def _init_group(self, group) -> None:
        for p in group["params"]:
            self.state[p] = {"step": 0, "sum": np.full_like(p.data, group["initial_accumulator_value"])}

    @classmethod
    def _validate_hyper(cls, hyper, name):
        out = super()._validate_hyper(hyper, name)
        out["lr_decay"] = check_real(hyper["lr_decay"], name("lr_decay"), 0.0)
        out["weight_decay"] = check_real(hyper["weight_decay"], name("weight_decay"), 0.0)
        out["initial_accumulator_value"] = check_real(hyper["initial_accumulator_value"],
                                                      name("initial_accumulator_value"), 0.0)
        out["eps"] = check_real(hyper["eps"], name("eps"), 0.0)
        return out

    def _state_spec(self, group):
        return ("sum",), ("step",)

    def step(self) -> None:
        """Apply one update to every trainable parameter from its current `.grad`."""
        for group in self.param_groups:
            for p, state in self._trainable(group):
                if not state:  # a parameter loaded without state
                    state.update(step=0, sum=np.full_like(p.data, group["initial_accumulator_value"]))
                state["step"] += 1
                g = self._grad_with_decay(p, group["weight_decay"])
                clr = group["lr"] / (1.0 + (state["step"] - 1) * group["lr_decay"])
                s, t = state["sum"], self._scratch_buffer(p, "t")
                np.multiply(g, g, out=t)
                np.add(s, t, out=s)
                np.sqrt(s, out=t)
                np.add(t, group["eps"], out=t)
                np.divide(g, t, out=t)
                np.multiply(t, clr, out=t)
                np.subtract(p.data, t, out=p.data)
