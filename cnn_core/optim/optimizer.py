"""Optimizer base class: holds the parameters, their per-parameter state and the learning rate.

A parameter is anything with `.data` and `.grad`, two float ndarrays of the same shape and dtype (the
`cnn_core.nn.Parameter` contract). Subclasses update `.data` in place with NumPy ufuncs writing into
buffers allocated on the first step, so a training step creates no new arrays.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_hyper(value, name: str, minimum: float = 0.0, below: float | None = None) -> float:
    """Return `value` as a float, checking it is a finite real number in [minimum, below)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value < minimum or (below is not None and value >= below):
        upper = f", < {below}" if below is not None else ""
        raise ValueError(f"{name}: expected a finite value >= {minimum}{upper}, got {value!r}")
    return value


def check_params(params, name: str = "params") -> list:
    """Materialize an iterable of parameters, rejecting empty lists, duplicates and non-parameters."""
    if isinstance(params, np.ndarray) or not isinstance(params, Iterable):
        raise TypeError(f"{name}: expected an iterable of parameters (e.g. model.parameters()), "
                        f"got {type(params).__name__}")
    params = list(params)
    if not params:
        raise ValueError(f"{name}: expected at least one parameter, got an empty list")
    seen = set()
    for i, p in enumerate(params):
        data, grad = getattr(p, "data", None), getattr(p, "grad", None)
        if not isinstance(data, np.ndarray) or not isinstance(grad, np.ndarray):
            raise TypeError(f"{name}[{i}]: expected an object with ndarray .data and .grad, "
                            f"got {type(p).__name__}")
        if data.dtype not in _FLOAT_DTYPES or grad.dtype != data.dtype or grad.shape != data.shape:
            raise TypeError(f"{name}[{i}]: expected float32/float64 .data and .grad of the same shape and "
                            f"dtype, got {data.dtype}{data.shape} and {grad.dtype}{grad.shape}")
        if id(p) in seen:
            raise ValueError(f"{name}[{i}]: the same parameter appears twice; it would be updated twice")
        seen.add(id(p))
    return params


class Optimizer:
    """Base class: `step()` updates every parameter from its `.grad`; `zero_grad()` clears the grads.

    `lr` is a plain attribute, which the learning-rate schedules rewrite. Hyperparameter names listed in
    `_hyper` are saved by `state_dict()` next to the per-parameter state (momentum buffers, moments).
    """

    _hyper: tuple[str, ...] = ("lr",)

    def __init__(self, params, lr: float) -> None:
        self.params = check_params(params)
        self.lr = check_hyper(lr, "lr")
        self.state: list[dict[str, Any]] = [{} for _ in self.params]
        self._scratch: list[dict[str, np.ndarray]] = [{} for _ in self.params]

    def step(self) -> None:
        raise NotImplementedError

    def zero_grad(self) -> None:
        """Set every gradient to zero in place (backward passes accumulate into `.grad`)."""
        for p in self.params:
            p.grad.fill(0)

    def state_dict(self) -> dict[str, Any]:
        """Hyperparameters and a copy of each parameter's state, indexed by parameter position."""
        return {"hyper": {k: getattr(self, k) for k in self._hyper},
                "state": [{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                          for s in self.state]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters and per-parameter state saved by `state_dict()` (copies the arrays)."""
        hyper, state = state_dict["hyper"], state_dict["state"]
        if set(hyper) != set(self._hyper):
            raise ValueError(f"state_dict: expected hyperparameters {sorted(self._hyper)}, got {sorted(hyper)}")
        if len(state) != len(self.params):
            raise ValueError(f"state_dict: expected state for {len(self.params)} parameters, got {len(state)}")
        for i, (p, s) in enumerate(zip(self.params, state)):
            for k, v in s.items():
                if isinstance(v, np.ndarray) and v.shape != p.data.shape:
                    raise ValueError(f"state_dict: state[{i}][{k!r}] has shape {v.shape}, "
                                     f"expected {p.data.shape}")
        for k, v in hyper.items():
            setattr(self, k, v)
        self.state = [{k: (np.array(v, dtype=p.data.dtype) if isinstance(v, np.ndarray) else v)
                       for k, v in s.items()} for p, s in zip(self.params, state)]

    def _scratch_buffer(self, i: int, key: str) -> np.ndarray:
        """Work array for parameter i (not part of the state), allocated once and reused on every step."""
        buf = self._scratch[i].get(key)
        if buf is None:
            buf = self._scratch[i][key] = np.empty_like(self.params[i].data)
        return buf

    def _grad_with_decay(self, i: int, wd: float) -> np.ndarray:
        """g + wd * p for parameter i (L2 weight decay, PyTorch's coupled form), without touching p.grad."""
        p = self.params[i]
        if wd == 0.0:
            return p.grad
        d = self._scratch_buffer(i, "d")
        np.multiply(p.data, wd, out=d)
        np.add(p.grad, d, out=d)
        return d

    def __repr__(self) -> str:
        hyper = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._hyper)
        return f"{type(self).__name__}({len(self.params)} parameters, {hyper})"
