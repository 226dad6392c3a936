"""Learning-rate schedules: step decay and cosine annealing, in PyTorch's closed forms.

A schedule remembers the optimizer's lr at construction (`base_lr`) and rewrites `optimizer.lr` on each
`step()`, normally called once per epoch after the epoch's optimizer steps (as in PyTorch).
"""
from __future__ import annotations

import math

from cnn_core._validation import check_int, check_real
from cnn_core.optim.optimizer import Optimizer


class LRScheduler:
    """Base class: `last_epoch` counts `step()` calls; `get_lr()` gives the lr for `last_epoch`."""

    def __init__(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer: expected a cnn_core.optim optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.last_epoch = 0
        self._last_lr = optimizer.lr

    def get_lr(self) -> float:
        raise NotImplementedError

    def step(self) -> None:
        """Advance one epoch and set the optimizer's lr for it."""
        self.last_epoch += 1
        self.optimizer.lr = self._last_lr = self.get_lr()

    def get_last_lr(self) -> list[float]:
        """The lr last set by this schedule, as a one-element list (PyTorch returns one per param group)."""
        return [self._last_lr]

    def state_dict(self) -> dict:
        return {"base_lr": self.base_lr, "last_epoch": self.last_epoch, "last_lr": self._last_lr}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a `state_dict()`; every entry is checked (TypeError/ValueError naming the key) before any is set."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict: expected a dict from LRScheduler.state_dict(), got {type(state_dict).__name__}")
        keys = {"base_lr", "last_epoch", "last_lr"}
        if set(state_dict) != keys:
            raise ValueError(f"state_dict: expected the keys {sorted(keys)}, got {sorted(map(str, state_dict))}")
        base_lr = check_real(state_dict["base_lr"], "state_dict['base_lr']", 0.0)
        last_lr = check_real(state_dict["last_lr"], "state_dict['last_lr']", 0.0)
        last_epoch = check_int(state_dict["last_epoch"], "state_dict['last_epoch']", 0)
        self.base_lr, self.last_epoch, self._last_lr = base_lr, last_epoch, last_lr


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        super().__init__(optimizer)
        self.step_size = check_int(step_size, "step_size", 1)
        self.gamma = check_real(gamma, "gamma", 0.0)

    def get_lr(self) -> float:
        return self.base_lr * self.gamma ** (self.last_epoch // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2.

    Past T_max the closed form keeps following the cosine back up, as PyTorch's closed form does.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        super().__init__(optimizer)
        self.T_max = check_int(T_max, "T_max", 1)
        self.eta_min = check_real(eta_min, "eta_min", 0.0)

    def get_lr(self) -> float:
        return self.eta_min + (self.base_lr - self.eta_min) * (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
