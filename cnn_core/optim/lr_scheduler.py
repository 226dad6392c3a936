"""Learning-rate schedules acting on an optimizer's parameter groups, in PyTorch's closed forms.

A schedule records each group's starting lr as `group["initial_lr"]` (PyTorch's key; kept when already set,
so several schedules on one optimizer share their base) in `base_lrs`, sets the lr for step 0 at
construction, and on each `step()` advances `last_epoch` and rewrites every group's `lr`. Epoch schedules are
stepped once per epoch after the epoch's optimizer steps; OneCycleLR once per batch; ReduceLROnPlateau with
the monitored metric. `LRSchedulerStep` (cnn_core.callbacks) does this inside `fit`.
"""
from __future__ import annotations

import math
from bisect import bisect_right
from typing import Any, Sequence

from cnn_core._validation import as_real, check_bool, check_choice, check_int, check_real
from cnn_core.optim.optimizer import Optimizer


def _check_optimizer(optimizer) -> Optimizer:
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer: expected a cnn_core.optim optimizer, got {type(optimizer).__name__}")
    return optimizer


def _per_group(value, name: str, n: int, low: float = 0.0, low_open: bool = False) -> list[float]:
    """A number or a list of one number per parameter group, as a list of n checked floats."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name}: expected one value per parameter group ({n}), got {len(value)}")
        return [check_real(v, f"{name}[{i}]", low, low_open=low_open) for i, v in enumerate(value)]
    return [check_real(value, name, low, low_open=low_open)] * n


class _StateMixin:
    """state_dict / load_state_dict over the schedule's own attributes (all but the optimizer): numbers,
    strings, bools, None and lists of numbers. Loading checks that every key is present with a value of the
    same kind as this schedule's, then sets them all."""

    _not_state = ("optimizer",)

    def state_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in vars(self).items()
                if k not in self._not_state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a `state_dict()`; every entry is checked (TypeError/ValueError naming the key) before any is set."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict: expected a dict from {type(self).__name__}.state_dict(), "
                            f"got {type(state_dict).__name__}")
        mine = _StateMixin.state_dict(self)  # the own attributes (a subclass may add nested states)
        if set(state_dict) != set(mine):
            raise ValueError(f"state_dict: expected the keys {sorted(mine)} of {type(self).__name__}, "
                             f"got {sorted(map(str, state_dict))}")
        new = {k: _like(state_dict[k], v, f"state_dict[{k!r}]") for k, v in mine.items()}
        for k, v in new.items():
            setattr(self, k, v)


def _like(value, ref, name: str):
    """`value` checked to be of the same kind as `ref` (a number, str, bool, None or a list of numbers/dicts)."""
    if isinstance(ref, bool) or ref is None or isinstance(ref, str):
        if type(value) is not type(ref) and not (ref is None and value is None):
            raise TypeError(f"{name}: expected {type(ref).__name__}, got {type(value).__name__}")
        return value
    if isinstance(ref, int):  # counters and sizes
        return check_int(value, name, 0)
    if isinstance(ref, float):
        v = as_real(value, name)
        if math.isnan(v):
            raise ValueError(f"{name}: expected a number, got NaN")
        return v
    if isinstance(ref, list):
        if not isinstance(value, (list, tuple)) or len(value) != len(ref):
            raise ValueError(f"{name}: expected a list of {len(ref)} values, got {value!r:.80}")
        return [_like(v, r, f"{name}[{i}]") for i, (v, r) in enumerate(zip(value, ref))]
    if isinstance(ref, dict):
        if not isinstance(value, dict) or set(value) != set(ref):
            raise ValueError(f"{name}: expected a dict with the keys {sorted(ref)}, got {value!r:.80}")
        return {k: _like(value[k], r, f"{name}[{k!r}]") for k, r in ref.items()}
    raise TypeError(f"{name}: cannot restore a value of type {type(ref).__name__}")  # pragma: no cover


class LRScheduler(_StateMixin):
    """Base class: `last_epoch` counts `step()` calls (0 after construction); `get_lr()` gives each group's lr
    for `last_epoch` from `base_lrs`; subclasses implement `get_lr`."""

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = _check_optimizer(optimizer)
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = 0
        self._set(self.get_lr())

    def get_lr(self) -> list[float]:
        raise NotImplementedError

    def _set(self, lrs: Sequence[float]) -> None:
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = list(lrs)

    def step(self) -> None:
        """Advance one step (an epoch, or a batch for OneCycleLR) and set every group's lr for it."""
        self.last_epoch += 1
        self._set(self.get_lr())

    def get_last_lr(self) -> list[float]:
        """The lr last set by this schedule, one per parameter group."""
        return list(self._last_lr)


class StepLR(LRScheduler):
    """lr = base_lr * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1) -> None:
        self.step_size = check_int(step_size, "step_size", 1)
        self.gamma = check_real(gamma, "gamma", 0.0)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        return [b * self.gamma ** (self.last_epoch // self.step_size) for b in self.base_lrs]


class CosineAnnealingLR(LRScheduler):
    """lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T_max)) / 2.

    Past T_max the closed form keeps following the cosine back up, as PyTorch's closed form does.
    """

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0) -> None:
        self.T_max = check_int(T_max, "T_max", 1)
        self.eta_min = check_real(eta_min, "eta_min", 0.0)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        c = (1 + math.cos(math.pi * self.last_epoch / self.T_max)) / 2
        return [self.eta_min + (b - self.eta_min) * c for b in self.base_lrs]


class LinearLR(LRScheduler):
    """Linear warm-up (or decay) of the factor: lr = base_lr * (start_factor + (end_factor - start_factor) *
    min(epoch, total_iters) / total_iters); constant at base_lr * end_factor afterwards. PyTorch's defaults."""

    def __init__(self, optimizer: Optimizer, start_factor: float = 1.0 / 3, end_factor: float = 1.0,
                 total_iters: int = 5) -> None:
        self.start_factor = check_real(start_factor, "start_factor", 0.0, 1.0, low_open=True)
        self.end_factor = check_real(end_factor, "end_factor", 0.0, 1.0)
        self.total_iters = check_int(total_iters, "total_iters", 1)
        super().__init__(optimizer)

    def get_lr(self) -> list[float]:
        f = self.start_factor + (self.end_factor - self.start_factor) * min(self.last_epoch,
                                                                             self.total_iters) / self.total_iters
        return [b * f for b in self.base_lrs]


class SequentialLR(LRScheduler):
    """Runs `schedulers` one after another: schedulers[i] from epoch milestones[i-1] on, restarted at its
    epoch 0 there (PyTorch's SequentialLR, e.g. LinearLR warm-up then CosineAnnealingLR). The schedulers
    must act on `optimizer`; their own construction-time lr settings are undone, as PyTorch does."""

    _not_state = ("optimizer", "_schedulers")

    def __init__(self, optimizer: Optimizer, schedulers: Sequence[LRScheduler], milestones: Sequence[int]) -> None:
        self.optimizer = _check_optimizer(optimizer)
        if not isinstance(schedulers, (list, tuple)) or not schedulers:
            raise TypeError(f"schedulers: expected a non-empty list of schedulers, got {schedulers!r:.80}")
        for i, s in enumerate(schedulers):
            if not isinstance(s, LRScheduler) or isinstance(s, (SequentialLR, OneCycleLR)):
                raise TypeError(f"schedulers[{i}]: expected an epoch schedule such as StepLR or LinearLR, "
                                f"got {type(s).__name__}")
            if s.optimizer is not optimizer:
                raise ValueError(f"schedulers[{i}]: acts on another optimizer than `optimizer`")
        if not isinstance(milestones, (list, tuple)) or len(milestones) != len(schedulers) - 1:
            raise ValueError(f"milestones: expected {len(schedulers) - 1} epochs (one fewer than the schedulers), "
                             f"got {milestones!r:.80}")
        milestones = [check_int(m, f"milestones[{i}]", 1) for i, m in enumerate(milestones)]
        if any(b <= a for a, b in zip(milestones, milestones[1:])):
            raise ValueError(f"milestones: expected increasing epochs, got {milestones}")
        self._schedulers = list(schedulers)
        self._milestones = milestones
        self.last_epoch = 0
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        first = self._schedulers[0]
        first.last_epoch = 0
        first._set(first.get_lr())
        self._last_lr = first.get_last_lr()

    def step(self) -> None:
        self.last_epoch += 1
        idx = bisect_right(self._milestones, self.last_epoch)
        s = self._schedulers[idx]
        if idx > 0 and self._milestones[idx - 1] == self.last_epoch:
            s.last_epoch = 0
            s._set(s.get_lr())
        else:
            s.step()
        self._last_lr = s.get_last_lr()

    def state_dict(self) -> dict[str, Any]:
        out = super().state_dict()
        out["_schedulers"] = [s.state_dict() for s in self._schedulers]
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not isinstance(state_dict, dict) or "_schedulers" not in state_dict:
            raise ValueError("state_dict: expected a dict from SequentialLR.state_dict() (with '_schedulers')")
        subs = state_dict["_schedulers"]
        if not isinstance(subs, (list, tuple)) or len(subs) != len(self._schedulers):
            raise ValueError(f"state_dict['_schedulers']: expected {len(self._schedulers)} states")
        own = {k: v for k, v in state_dict.items() if k != "_schedulers"}
        # check everything before setting anything: dry-run each sub-state against a copy of its values
        for i, (s, sub) in enumerate(zip(self._schedulers, subs)):
            mine = s.state_dict()
            if not isinstance(sub, dict) or set(sub) != set(mine):
                raise ValueError(f"state_dict['_schedulers'][{i}]: expected the keys {sorted(mine)}")
            for k, v in mine.items():
                _like(sub[k], v, f"state_dict['_schedulers'][{i}][{k!r}]")
        super().load_state_dict(own)
        for s, sub in zip(self._schedulers, subs):
            s.load_state_dict(sub)


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin), stepped once per batch, with PyTorch's phases and defaults.

    Each group's lr goes from initial_lr = max_lr / div_factor up to max_lr over the first pct_start of the
    total_steps (step pct_start * total_steps - 1), then down to min_lr = initial_lr / final_div_factor at step
    total_steps - 1 (three_phase: back to initial_lr at step 2 * pct_start * total_steps - 2 first, then to
    min_lr). Within a phase from a to b at fraction f: 'cos' gives b + (a - b) * (1 + cos(pi * f)) / 2,
    'linear' a + (b - a) * f. With cycle_momentum the momentum (SGD/RMSprop) or beta1 (Adam/AdamW) moves
    inversely between max_momentum and base_momentum. total_steps, or epochs and steps_per_epoch, is required;
    stepping past total_steps raises ValueError.
    """

    _not_state = ("optimizer", "_phases")  # saved by state_dict below, as lists

    def __init__(self, optimizer: Optimizer, max_lr, total_steps: int | None = None, epochs: int | None = None,
                 steps_per_epoch: int | None = None, pct_start: float = 0.3, anneal_strategy: str = "cos",
                 cycle_momentum: bool = True, base_momentum: float | Sequence[float] = 0.85,
                 max_momentum: float | Sequence[float] = 0.95, div_factor: float = 25.0,
                 final_div_factor: float = 1e4, three_phase: bool = False) -> None:
        optimizer = _check_optimizer(optimizer)
        if total_steps is not None:
            self.total_steps = check_int(total_steps, "total_steps", 1)
        elif epochs is not None and steps_per_epoch is not None:
            self.total_steps = check_int(epochs, "epochs", 1) * check_int(steps_per_epoch, "steps_per_epoch", 1)
        else:
            raise ValueError("total_steps: expected total_steps, or both epochs and steps_per_epoch, got None")
        pct_start = check_real(pct_start, "pct_start", 0.0, 1.0)
        self.anneal_strategy = check_choice(anneal_strategy, "anneal_strategy", ("cos", "linear"))
        self.cycle_momentum = check_bool(cycle_momentum, "cycle_momentum")
        three_phase = check_bool(three_phase, "three_phase")
        div_factor = check_real(div_factor, "div_factor", 0.0, low_open=True)
        final_div_factor = check_real(final_div_factor, "final_div_factor", 0.0, low_open=True)
        n = len(optimizer.param_groups)
        max_lrs = _per_group(max_lr, "max_lr", n)
        if three_phase:
            self._phases = [(pct_start * self.total_steps - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                            (2 * pct_start * self.total_steps - 2, "max_lr", "initial_lr", "base_momentum",
                             "max_momentum"),
                            (self.total_steps - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum")]
        else:
            self._phases = [(pct_start * self.total_steps - 1, "initial_lr", "max_lr", "max_momentum", "base_momentum"),
                            (self.total_steps - 1, "max_lr", "min_lr", "base_momentum", "max_momentum")]
        self._use_beta1 = False
        if self.cycle_momentum:
            if "betas" in optimizer.defaults:
                self._use_beta1 = True
            elif "momentum" not in optimizer.defaults:
                raise ValueError(f"cycle_momentum: {type(optimizer).__name__} has neither momentum nor betas; "
                                 "pass cycle_momentum=False")
            base_m = _per_group(base_momentum, "base_momentum", n)
            max_m = _per_group(max_momentum, "max_momentum", n)
        for i, group in enumerate(optimizer.param_groups):
            group["initial_lr"] = max_lrs[i] / div_factor
            group["max_lr"] = max_lrs[i]
            group["min_lr"] = group["initial_lr"] / final_div_factor
            if self.cycle_momentum:
                group["base_momentum"], group["max_momentum"] = base_m[i], max_m[i]
                self._set_momentum(group, max_m[i])
        super().__init__(optimizer)

    def _set_momentum(self, group, m: float) -> None:
        if self._use_beta1:
            group["betas"] = (m, *group["betas"][1:])
        else:
            group["momentum"] = m

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(f"OneCycleLR: stepped {step} times, more than total_steps={self.total_steps}")
        lrs = []
        for group in self.optimizer.param_groups:
            start = 0.0
            for i, (end, lr_a, lr_b, m_a, m_b) in enumerate(self._phases):
                if step <= end or i == len(self._phases) - 1:
                    pct = (step - start) / (end - start)
                    lrs.append(self._anneal(group[lr_a], group[lr_b], pct))
                    if self.cycle_momentum:
                        self._set_momentum(group, self._anneal(group[m_a], group[m_b], pct))
                    break
                start = end
        return lrs

    def state_dict(self) -> dict[str, Any]:
        out = super().state_dict()
        out["_phases"] = [list(p) for p in self._phases]
        return out

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not isinstance(state_dict, dict) or "_phases" not in state_dict:
            raise ValueError("state_dict: expected a dict from OneCycleLR.state_dict() (with '_phases')")
        phases = _like(state_dict["_phases"], [list(p) for p in self._phases], "state_dict['_phases']")
        super().load_state_dict({k: v for k, v in state_dict.items() if k != "_phases"})
        self._phases = [tuple(p) for p in phases]


class ReduceLROnPlateau(_StateMixin):
    """Multiply every group's lr by `factor` when the monitored metric stopped improving for `patience`
    epochs (PyTorch's ReduceLROnPlateau and defaults). `step(metric)` once per epoch.

    Improvement (mode 'min'; 'max' mirrors it): metric < best * (1 - threshold) ('rel') or metric < best -
    threshold ('abs'). After more than `patience` epochs without improvement, lr = max(lr * factor, min_lr)
    (changes smaller than eps are skipped) and the next `cooldown` epochs count no bad epochs.
    """

    def __init__(self, optimizer: Optimizer, mode: str = "min", factor: float = 0.1, patience: int = 10,
                 threshold: float = 1e-4, threshold_mode: str = "rel", cooldown: int = 0,
                 min_lr: float | Sequence[float] = 0.0, eps: float = 1e-8) -> None:
        self.optimizer = _check_optimizer(optimizer)
        self.mode = check_choice(mode, "mode", ("min", "max"))
        self.factor = check_real(factor, "factor", 0.0, 1.0, high_open=True)
        self.patience = check_int(patience, "patience", 0)
        self.threshold = check_real(threshold, "threshold", 0.0)
        self.threshold_mode = check_choice(threshold_mode, "threshold_mode", ("rel", "abs"))
        self.cooldown = check_int(cooldown, "cooldown", 0)
        self.min_lrs = _per_group(min_lr, "min_lr", len(optimizer.param_groups))
        self.eps = check_real(eps, "eps", 0.0)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.last_epoch = 0
        self._last_lr = [g["lr"] for g in optimizer.param_groups]

    def is_better(self, a: float, best: float) -> bool:
        if self.mode == "min":
            return a < (best * (1.0 - self.threshold) if self.threshold_mode == "rel" else best - self.threshold)
        return a > (best * (1.0 + self.threshold) if self.threshold_mode == "rel" else best + self.threshold)

    def step(self, metrics: float) -> None:
        """Record one epoch's metric and reduce the lr when it has plateaued."""
        current = as_real(metrics, "metrics")
        self.last_epoch += 1
        if self.is_better(current, self.best):
            self.best = current
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            for group, min_lr in zip(self.optimizer.param_groups, self.min_lrs):
                old = float(group["lr"])
                new = max(old * self.factor, min_lr)
                if old - new > self.eps:
                    group["lr"] = new
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
        self._last_lr = [g["lr"] for g in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)
