"""Optimizer base class: holds the parameters, their per-parameter state and the learning rate.

A parameter is anything with `.data` and `.grad`, two float ndarrays of the same shape and dtype (the
`cnn_core.nn.Parameter` contract). Subclasses update `.data` in place with NumPy ufuncs writing into
buffers allocated on the first step, so a training step creates no new arrays.
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np

from cnn_core._validation import FLOAT_DTYPES, check_int, check_real

def check_params(params, name: str = "params") -> list:
    """Materialize an iterable of parameters, rejecting empty lists, duplicates and non-parameters."""
    if isinstance(params, np.ndarray) or not isinstance(params, Iterable):
        raise TypeError(f"{name}: expected an iterable of parameters (e.g. model.parameters()), "
                        f"got {type(params).__name__}")
    params = [p for p in params if getattr(p, "requires_grad", True)]  # frozen parameters are never updated
    if not params:
        raise ValueError(f"{name}: expected at least one parameter, got an empty list")
    seen = set()
    for i, p in enumerate(params):
        data, grad = getattr(p, "data", None), getattr(p, "grad", None)
        if not isinstance(data, np.ndarray) or not isinstance(grad, np.ndarray):
            raise TypeError(f"{name}[{i}]: expected an object with ndarray .data and .grad, "
                            f"got {type(p).__name__}")
        if data.dtype not in FLOAT_DTYPES or grad.dtype != data.dtype or grad.shape != data.shape:
            raise TypeError(f"{name}[{i}]: expected float32/float64 .data and .grad of the same shape and "
                            f"dtype, got {data.dtype}{data.shape} and {grad.dtype}{grad.shape}")
        if id(p) in seen:
            raise ValueError(f"{name}[{i}]: the same parameter appears twice; it would be updated twice")
        seen.add(id(p))
    return params


def _plain(key: str) -> str:
    return key


def _in_hyper(key: str) -> str:
    return f"state_dict['hyper'][{key!r}]"


class Optimizer:
    """Base class: `step()` updates every parameter from its `.grad`; `zero_grad()` clears the grads.

    `lr` is a plain attribute, which the learning-rate schedules rewrite. Hyperparameter names listed in
    `_hyper` are saved by `state_dict()` next to the per-parameter state (momentum buffers, moments).

    Subclasses list their hyperparameters in `_hyper` and check them in `_validate_hyper`, which both the
    constructor and `load_state_dict` run, and declare their per-parameter state: `_state_arrays` (arrays
    shaped like the parameter; those in `_state_nonnegative` must be >= 0) and `_state_counters` (ints >= 0).
    A parameter's state is either empty (before its first step) or holds every one of those keys.
    (A hyperparameter listed in `_hyper` but not checked by `_validate_hyper` is loaded as given.)
    """

    _hyper: tuple[str, ...] = ("lr",)
    _state_arrays: tuple[str, ...] = ()
    _state_nonnegative: tuple[str, ...] = ()
    _state_counters: tuple[str, ...] = ()

    def __init__(self, params, lr: float, **hyper) -> None:
        self.params = check_params(params)
        for k, v in self._validate_hyper({"lr": lr, **hyper}, _plain).items():
            setattr(self, k, v)
        self.state: list[dict[str, Any]] = [{} for _ in self.params]
        self._scratch: list[dict[str, np.ndarray]] = [{} for _ in self.params]

    @classmethod
    def _validate_hyper(cls, hyper: dict[str, Any], name: Callable[[str], str]) -> dict[str, Any]:
        """The hyperparameters in `hyper`, checked and normalized; `name(key)` is how a message names one.

        Subclasses extend the dict returned by super()._validate_hyper with their own."""
        return {"lr": check_real(hyper["lr"], name("lr"), 0.0)}

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
        """Restore hyperparameters and per-parameter state saved by `state_dict()` (copies the arrays).

        Everything is checked before anything is set, with the constructor's checks for the hyperparameters:
        TypeError or ValueError naming the offending key (e.g. state_dict['hyper']['lr']), and the optimizer
        unchanged. State arrays are cast to their parameter's dtype and must be finite after the cast.
        """
        hyper, state = self._check_state_dict(state_dict)
        for k, v in hyper.items():
            setattr(self, k, v)
        self.state = state

    def _check_state_dict(self, state_dict) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Validated hyperparameters and fresh per-parameter state from a `state_dict()`-shaped dict."""
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict: expected a dict from Optimizer.state_dict(), got {type(state_dict).__name__}")
        if set(state_dict) != {"hyper", "state"}:
            raise ValueError(f"state_dict: expected the keys ['hyper', 'state'], got {sorted(map(str, state_dict))}")
        hyper, state = state_dict["hyper"], state_dict["state"]
        if not isinstance(hyper, dict):
            raise TypeError(f"state_dict['hyper']: expected a dict, got {type(hyper).__name__}")
        if set(hyper) != set(self._hyper):
            raise ValueError(f"state_dict['hyper']: expected the hyperparameters {sorted(self._hyper)} of "
                             f"{type(self).__name__}, got {sorted(map(str, hyper))}")
        # a subclass that lists a hyperparameter without checking it in _validate_hyper gets it back as given
        hyper = {**hyper, **self._validate_hyper(hyper, _in_hyper)}
        if not isinstance(state, (list, tuple)):
            raise TypeError(f"state_dict['state']: expected a list with one dict per parameter, "
                            f"got {type(state).__name__}")
        if len(state) != len(self.params):
            raise ValueError(f"state_dict['state']: expected state for {len(self.params)} parameters, got {len(state)}")
        return hyper, [self._check_param_state(s, p, f"state_dict['state'][{i}]")
                       for i, (p, s) in enumerate(zip(self.params, state))]

    def _check_param_state(self, s, p, name: str) -> dict[str, Any]:
        """One parameter's state checked against the parameter p: a fresh dict with arrays of p's dtype."""
        if not isinstance(s, dict):
            raise TypeError(f"{name}: expected a dict, got {type(s).__name__}")
        keys = set(self._state_arrays) | set(self._state_counters)
        if s and set(s) != keys:
            raise ValueError(f"{name}: expected no keys (no step taken yet) or exactly {sorted(keys)}, "
                             f"got {sorted(map(str, s))}")
        out: dict[str, Any] = {}
        for k in self._state_counters:
            if k in s:
                out[k] = check_int(s[k], f"{name}[{k!r}]", 0)
        for k in self._state_arrays:
            if k in s:
                v = s[k]
                if not isinstance(v, np.ndarray) or v.dtype.kind != "f":
                    got = f"dtype {v.dtype}" if isinstance(v, np.ndarray) else type(v).__name__
                    raise TypeError(f"{name}[{k!r}]: expected a float numpy.ndarray, got {got}")
                if v.shape != p.data.shape:
                    raise ValueError(f"{name}[{k!r}]: expected shape {p.data.shape} (the parameter's), got {v.shape}")
                with np.errstate(over="ignore"):  # an overflow in the cast is reported just below
                    a = np.array(v, dtype=p.data.dtype)
                if not np.isfinite(a).all():
                    cast = "" if v.dtype == a.dtype else f" after the cast from {v.dtype} to {a.dtype}"
                    raise ValueError(f"{name}[{k!r}]: expected finite values{cast}, got NaN or infinity")
                if k in self._state_nonnegative and (a < 0).any():
                    raise ValueError(f"{name}[{k!r}]: expected values >= 0, got a minimum of {a.min()}")
                out[k] = a
        return out

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
