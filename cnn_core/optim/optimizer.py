"""Optimizer base class: parameter groups, per-parameter state and PyTorch's state_dict layout.

A parameter is anything with `.data` (a float ndarray) and `.grad` (an ndarray of the same shape and dtype, or
None): the `cnn_core.nn.Parameter` contract. A parameter whose `.grad` is None or whose `requires_grad` is
False is skipped by `step()`. Subclasses update `.data` in place with NumPy ufuncs writing into buffers
allocated on the first step, so a training step creates no new arrays.

Parameter groups are PyTorch's: `params` is an iterable of parameters (one group) or of dicts
`{"params": [...], "lr": ..., ...}`, each group taking the constructor's hyperparameters as defaults for the
keys it does not set. `optimizer.param_groups[k]["lr"]` is what the schedules rewrite; `optimizer.lr` (and
any other hyperparameter read as an attribute, e.g. `optimizer.momentum`) is the first group's.
"""
from __future__ import annotations

import numbers
from typing import Any, Callable, Iterable

import numpy as np

from cnn_core._validation import FLOAT_DTYPES, check_real

# Keys the learning-rate schedules add to a group (PyTorch's names); state_dict carries them.
SCHEDULE_KEYS = ("initial_lr", "max_lr", "min_lr", "base_momentum", "max_momentum")
# Flags of PyTorch's optimizers that have no effect here: a PyTorch state_dict loads when they are off.
_TORCH_FLAGS = {"maximize": (False,), "foreach": (None, False), "capturable": (False,),
                "differentiable": (False,), "fused": (None, False), "decoupled_weight_decay": (False,)}


def check_params(params, name: str = "params") -> list:
    """Materialize an iterable of parameters, rejecting empty lists, duplicates and non-parameters."""
    if isinstance(params, np.ndarray) or not isinstance(params, Iterable) or isinstance(params, (str, dict)):
        raise TypeError(f"{name}: expected an iterable of parameters (e.g. model.parameters()), "
                        f"got {type(params).__name__}")
    params = [p for p in params if getattr(p, "requires_grad", True)]  # frozen parameters are never updated
    if not params:
        raise ValueError(f"{name}: expected at least one parameter, got an empty list")
    seen = set()
    for i, p in enumerate(params):
        data, grad = getattr(p, "data", None), getattr(p, "grad", None)
        if not isinstance(data, np.ndarray) or not (grad is None or isinstance(grad, np.ndarray)):
            raise TypeError(f"{name}[{i}]: expected an object with ndarray .data and .grad, "
                            f"got {type(p).__name__}")
        if data.dtype not in FLOAT_DTYPES or (grad is not None and (grad.dtype != data.dtype
                                                                    or grad.shape != data.shape)):
            got = "None" if grad is None else f"{grad.dtype}{grad.shape}"
            raise TypeError(f"{name}[{i}]: expected float32/float64 .data and .grad of the same shape and "
                            f"dtype, got {data.dtype}{data.shape} and {got}")
        if id(p) in seen:
            raise ValueError(f"{name}[{i}]: the same parameter appears twice; it would be updated twice")
        seen.add(id(p))
    return params


def trainable(p) -> bool:
    """True when step() updates p: it has a gradient and does not have requires_grad=False."""
    return p.grad is not None and getattr(p, "requires_grad", True)


def _plain(key: str) -> str:
    return key


def _scalar(v):
    """A 0-d array-like (a NumPy scalar, a 0-d torch tensor) as a Python number; anything else unchanged."""
    if not isinstance(v, (numbers.Number, str, type(None), list, tuple, dict)) and hasattr(v, "__array__"):
        a = np.asarray(v)
        if a.ndim == 0:
            return a.item()
    return v


class Optimizer:
    """Base class: `step()` updates every trainable parameter from its `.grad`; `zero_grad()` clears the grads.

    Subclasses pass their defaults to `__init__`, check hyperparameters in `_validate_hyper` (run for every
    group, by the constructor, `add_param_group` and `load_state_dict`), and declare a parameter's state in
    `_state_spec(group)`: the arrays shaped like the parameter (those in `_state_nonnegative` must be >= 0) and
    the integer counters. A parameter's state is either empty (before its first step) or holds exactly those.

    state_dict() is PyTorch's layout: {"state": {index: {...}}, "param_groups": [{..., "params": [indices]}]},
    parameters numbered 0, 1, ... across the groups in order, "state" holding only parameters with state.
    """

    _state_nonnegative: tuple[str, ...] = ()
    _torch_flags: dict[str, tuple] = {}  # a subclass's fixed values of PyTorch's flags, where not the default

    def __init__(self, params, defaults: dict[str, Any]) -> None:
        # a subclass's hyperparameter that _validate_hyper does not check is kept as given
        self.defaults = {**defaults, **self._validate_hyper(defaults, _plain)}
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Any, dict[str, Any]] = {}
        self._scratch: dict[int, dict[str, np.ndarray]] = {}
        if isinstance(params, np.ndarray) or not isinstance(params, Iterable) or isinstance(params, (str, dict)):
            raise TypeError(f"params: expected an iterable of parameters or of parameter-group dicts, "
                            f"got {type(params).__name__}")
        params = list(params)
        if not params:
            raise ValueError("params: expected at least one parameter, got an empty list")
        if all(isinstance(g, dict) for g in params):
            for k, g in enumerate(params):
                self._add_group(g, f"params[{k}]")
        elif any(isinstance(g, dict) for g in params):
            raise TypeError("params: expected either parameters or parameter-group dicts, got a mix of both")
        else:
            self._add_group({"params": params}, "params", params_name="params")

    # ---- groups ------------------------------------------------------------------------------------------

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group {"params": [...], hyperparameter: value, ...}; missing hyperparameters take the defaults."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group: expected a dict with a 'params' key, got {type(param_group).__name__}")
        self._add_group(param_group, "param_group")

    def _add_group(self, group: dict, name: str, params_name: str | None = None) -> None:
        params_name = params_name or f"{name}['params']"
        if "params" not in group:
            raise ValueError(f"{name}: expected a 'params' key holding the group's parameters")
        unknown = sorted(set(group) - set(self.defaults) - {"params", *SCHEDULE_KEYS})
        if unknown:
            raise ValueError(f"{name}: unknown hyperparameters {unknown} for {type(self).__name__} "
                             f"(expected some of {sorted(self.defaults)})")
        params = check_params(group["params"], params_name)
        taken = {id(p) for g in self.param_groups for p in g["params"]}
        for i, p in enumerate(params):
            if id(p) in taken:
                raise ValueError(f"{params_name}[{i}]: this parameter is already in another group")
        hyper = {**self.defaults, **{k: v for k, v in group.items() if k in self.defaults}}
        hyper = {**hyper, **self._validate_hyper(hyper, lambda k: f"{name}[{k!r}]")}
        extra = {k: check_real(group[k], f"{name}[{k!r}]", 0.0) for k in SCHEDULE_KEYS if k in group}
        self.param_groups.append({"params": params, **hyper, **extra})

    @classmethod
    def _validate_hyper(cls, hyper: dict[str, Any], name: Callable[[str], str]) -> dict[str, Any]:
        """The hyperparameters in `hyper`, checked and normalized; `name(key)` is how a message names one.

        Subclasses extend the dict returned by super()._validate_hyper with their own."""
        return {"lr": check_real(hyper["lr"], name("lr"), 0.0)}

    def _state_spec(self, group: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """(array keys, counter keys) of a parameter's state in this group, once it has taken a step."""
        return (), ()

    @property
    def params(self) -> list:
        """All parameters, group after group (the numbering of state_dict)."""
        return [p for g in self.param_groups for p in g["params"]]

    @property
    def lr(self) -> float:
        """The first group's learning rate (the only one for an optimizer built from a parameter list)."""
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value: float) -> None:
        self.param_groups[0]["lr"] = check_real(value, "lr", 0.0)

    def __getattr__(self, name: str):
        # hyperparameters read as attributes (optimizer.momentum, optimizer.betas) are the first group's
        defaults = self.__dict__.get("defaults")
        if defaults is not None and name in defaults and self.__dict__.get("param_groups"):
            return self.__dict__["param_groups"][0][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # ---- stepping ----------------------------------------------------------------------------------------

    def step(self) -> None:
        raise NotImplementedError

    def _trainable(self, group: dict[str, Any]):
        """(parameter, its state dict) for the group's parameters that step() updates."""
        for p in group["params"]:
            if trainable(p):
                s = self.state.get(p)
                if s is None:
                    s = self.state[p] = {}
                yield p, s

    def zero_grad(self) -> None:
        """Set every gradient to zero in place (backward passes accumulate into `.grad`)."""
        for g in self.param_groups:
            for p in g["params"]:
                lazy = getattr(p, "_zero_grad", None)     # nn.Parameter: zeroed when next read or written
                if lazy is not None:
                    lazy()
                elif p.grad is not None:
                    p.grad.fill(0)

    def _scratch_buffer(self, p, key: str) -> np.ndarray:
        """Work array for parameter p (not part of the state), allocated once and reused on every step."""
        bufs = self._scratch.setdefault(id(p), {})
        buf = bufs.get(key)
        if buf is None or buf.shape != p.data.shape or buf.dtype != p.data.dtype:
            buf = bufs[key] = np.empty_like(p.data)
        return buf

    def _grad_with_decay(self, p, wd: float) -> np.ndarray:
        """g + wd * p (L2 weight decay, PyTorch's coupled form), without touching p.grad."""
        if wd == 0.0:
            return p.grad
        d = self._scratch_buffer(p, "d")
        np.multiply(p.data, wd, out=d)
        np.add(p.grad, d, out=d)
        return d

    # ---- state_dict --------------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """PyTorch's layout, with copies of the state arrays: {"state": {index: {key: value}},
        "param_groups": [{hyperparameters..., "params": [indices]}]}."""
        state, groups, index = {}, [], 0
        for g in self.param_groups:
            ids = []
            for p in g["params"]:
                s = self.state.get(p)
                if s:
                    state[index] = {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
                ids.append(index)
                index += 1
            groups.append({**{k: v for k, v in g.items() if k != "params"}, "params": ids})
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a `state_dict()` (this optimizer's, or PyTorch's for the same class and parameters).

        Everything is checked before anything is set: the group structure must match this optimizer's, the
        hyperparameters pass the constructor's checks, state arrays (NumPy arrays or array-likes such as torch
        tensors) match their parameter's shape and are cast to its dtype (finite after the cast), counters are
        integers >= 0. TypeError or ValueError names the offending key; the optimizer is then unchanged.
        """
        groups, state = self._check_state_dict(state_dict)
        for g, new in zip(self.param_groups, groups):
            params = g["params"]
            g.clear()
            g.update(params=params, **new)
        self.state = state

    def _check_state_dict(self, state_dict) -> tuple[list[dict[str, Any]], dict[Any, dict[str, Any]]]:
        if not isinstance(state_dict, dict):
            raise TypeError(f"state_dict: expected a dict from Optimizer.state_dict(), got {type(state_dict).__name__}")
        if set(state_dict) != {"state", "param_groups"}:
            raise ValueError(f"state_dict: expected the keys ['param_groups', 'state'], "
                             f"got {sorted(map(str, state_dict))}")
        saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        if not isinstance(saved_groups, (list, tuple)):
            raise TypeError(f"state_dict['param_groups']: expected a list, got {type(saved_groups).__name__}")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"state_dict['param_groups']: expected {len(self.param_groups)} groups (this "
                             f"optimizer's), got {len(saved_groups)}")
        groups, by_index = [], {}
        for k, (g, saved) in enumerate(zip(self.param_groups, saved_groups)):
            name = f"state_dict['param_groups'][{k}]"
            if not isinstance(saved, dict):
                raise TypeError(f"{name}: expected a dict, got {type(saved).__name__}")
            saved = {key: _scalar(v) for key, v in saved.items()}
            ids = saved.get("params")
            if not isinstance(ids, (list, tuple)) or len(ids) != len(g["params"]):
                raise ValueError(f"{name}['params']: expected a list of {len(g['params'])} parameter indices "
                                 f"(this group's size), got {ids!r:.80}")
            for key, v in saved.items():
                if key in _TORCH_FLAGS and v not in {**_TORCH_FLAGS, **self._torch_flags}[key]:
                    raise ValueError(f"{name}[{key!r}]: {key}={v!r} is not supported by cnn_core")
            hyper_keys = set(saved) - {"params", *SCHEDULE_KEYS, *_TORCH_FLAGS}
            if hyper_keys != set(self.defaults):
                raise ValueError(f"{name}: expected the hyperparameters {sorted(self.defaults)} of "
                                 f"{type(self).__name__}, got {sorted(map(str, hyper_keys))}")
            new = {key: saved[key] for key in self.defaults}
            new.update(self._validate_hyper(saved, lambda key, name=name: f"{name}[{key!r}]"))
            new.update({key: check_real(saved[key], f"{name}[{key!r}]", 0.0) for key in SCHEDULE_KEYS
                        if key in saved})
            groups.append(new)
            for i, p in zip(ids, g["params"]):
                i = _scalar(i)
                if not isinstance(i, numbers.Integral) or isinstance(i, bool) or i in by_index:
                    raise ValueError(f"{name}['params']: expected distinct integer indices, got {ids!r:.80}")
                by_index[int(i)] = (p, new)
        if not isinstance(saved_state, dict):
            raise TypeError(f"state_dict['state']: expected a dict {{index: state}}, got {type(saved_state).__name__}")
        state = {}
        for key, s in saved_state.items():
            i = _scalar(key)
            if isinstance(i, str) and i.isdigit():  # JSON object keys are strings
                i = int(i)
            if i not in by_index:
                raise ValueError(f"state_dict['state']: key {key!r} is not a parameter index of param_groups")
            p, group = by_index[i]
            checked = self._check_param_state(s, p, group, f"state_dict['state'][{key!r}]")
            if checked:
                state[p] = checked
        return groups, state

    def _check_param_state(self, s, p, group, name: str) -> dict[str, Any]:
        """One parameter's state checked against the parameter p: a fresh dict with arrays of p's dtype."""
        if not isinstance(s, dict):
            raise TypeError(f"{name}: expected a dict, got {type(s).__name__}")
        s = {k: v for k, v in s.items() if v is not None}  # PyTorch's SGD stores momentum_buffer=None
        arrays, counters = self._state_spec(group)
        keys = set(arrays) | set(counters)
        if s and set(s) != keys:
            raise ValueError(f"{name}: expected no keys (no step taken yet) or exactly {sorted(keys)}, "
                             f"got {sorted(map(str, s))}")
        out: dict[str, Any] = {}
        for k in counters:
            if k in s:
                v = _scalar(s[k])
                if isinstance(v, float) and v.is_integer():  # PyTorch keeps step as a float tensor
                    v = int(v)
                if not isinstance(v, numbers.Integral) or isinstance(v, bool):
                    raise TypeError(f"{name}[{k!r}]: expected an integer >= 0, got {v!r:.80}")
                if v < 0:
                    raise ValueError(f"{name}[{k!r}]: expected an integer >= 0, got {v!r:.80}")
                out[k] = int(v)
        for k in arrays:
            if k in s:
                v = s[k]
                if not isinstance(v, np.ndarray) and hasattr(v, "__array__"):
                    v = np.asarray(v)
                if not isinstance(v, np.ndarray) or v.dtype.kind != "f":
                    got = f"dtype {v.dtype}" if isinstance(v, np.ndarray) else type(v).__name__
                    raise TypeError(f"{name}[{k!r}]: expected a float array, got {got}")
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

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for k, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {k}: {len(g['params'])} parameters")
            lines += [f"    {key}: {v!r}" for key, v in g.items() if key != "params"]
        return "\n".join(lines + [")"])
