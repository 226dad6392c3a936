"""Adam (Kingma & Ba) with coupled L2 weight decay, and AdamW (Loshchilov & Hutter) with decoupled decay."""
from __future__ import annotations

import math

import numpy as np

from cnn_core._validation import check_bool, check_real
from cnn_core.kernels._optim import adam_step as _adam_step, adam_v_floor as _adam_v_floor
from cnn_core.optim.optimizer import Optimizer


class Adam(Optimizer):
    """PyTorch's Adam. Per parameter p with gradient g, at step t = 1, 2, ...:

        g = g + weight_decay * p
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v)                                   (amsgrad; v_max replaces v below)
        p = p - (lr / (1 - beta1**t)) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    which is p - lr * m_hat / (sqrt(v_hat) + eps) evaluated the way PyTorch does. `.grad` is never modified.

    m, and v and v_max where eps allows, are stored as zero when below the smallest normal number (2^-126 in
    float32): where a gradient stays zero (a dead ReLU unit's weights) the moments decay through values that
    cost the CPU a microcode assist each (an MLP's step 2-2.6x slower after a few epochs). The denominator
    keeps its bits (v is floored only where sqrt(v) / sqrt(1 - beta2**t) cannot move eps), and parameters above
    ~2^-100 * lr / eps keep theirs.
    """

    _state_nonnegative = ("exp_avg_sq", "max_exp_avg_sq")  # their square roots are taken
    _decoupled = False

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad))

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
        out["amsgrad"] = check_bool(hyper["amsgrad"], name("amsgrad"))
        return out

    def _state_spec(self, group):
        return ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ()), ("step",)

    def step(self) -> None:
        """Apply one update to every trainable parameter from its current `.grad`."""
        for group in self.param_groups:
            lr, (beta1, beta2), wd, ams = group["lr"], group["betas"], group["weight_decay"], group["amsgrad"]
            todo = list(self._trainable(group))
            for p, state in todo:
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = np.zeros_like(p.data)
                    state["exp_avg_sq"] = np.zeros_like(p.data)
                    if ams:
                        state["max_exp_avg_sq"] = np.zeros_like(p.data)
                state["step"] += 1
            states = [s for _, s in todo]
            try:
                # the group in one compiled call (kernels/_optim.pyx: the roundings of _step_one's ufuncs)
                _adam_step([p.data for p, _ in todo], [p.grad for p, _ in todo], [s["exp_avg"] for s in states],
                           [s["exp_avg_sq"] for s in states], [s["max_exp_avg_sq"] for s in states] if ams else None,
                           beta1, beta2, group["eps"], wd, self._decoupled,
                           [lr / (1.0 - beta1 ** s["step"]) for s in states],
                           [math.sqrt(1.0 - beta2 ** s["step"]) for s in states], 1.0 - lr * wd)
            except (TypeError, ValueError):   # a strided array, mixed dtypes: parameter by parameter
                for p, state in todo:
                    self._step_one(p, state, group)

    def _step_one(self, p, state: dict, group: dict) -> None:
        """One parameter's update (its state made and its step counted): the compiled pass, else, where the
        pass refuses its arrays (TypeError or ValueError before an element is written), NumPy's ufuncs."""
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        t_step, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
        vmax = state["max_exp_avg_sq"] if group["amsgrad"] else None
        step_size, bias2_sqrt = lr / (1.0 - beta1 ** t_step), math.sqrt(1.0 - beta2 ** t_step)
        try:
            _adam_step([p.data], [p.grad], [m], [v], None if vmax is None else [vmax], beta1, beta2, eps, wd,
                       self._decoupled, [step_size], [bias2_sqrt], 1.0 - lr * wd)
        except (TypeError, ValueError):
            pass
        else:
            return
        t = self._scratch_buffer(p, "t")
        if self._decoupled:
            if wd != 0.0:
                np.multiply(p.data, 1.0 - lr * wd, out=p.data)
            g = p.grad
        else:
            g = self._grad_with_decay(p, wd)
        m_floor, v_floor = _moment_floors(p.data.dtype, eps, bias2_sqrt)
        np.multiply(m, beta1, out=m)
        np.multiply(g, 1.0 - beta1, out=t)
        np.add(m, t, out=m)
        np.copyto(m, 0, where=np.abs(m) < m_floor)
        np.multiply(v, beta2, out=v)
        np.multiply(g, g, out=t)
        np.multiply(t, 1.0 - beta2, out=t)
        np.add(v, t, out=v)
        np.copyto(v, 0, where=np.abs(v) < v_floor)
        if vmax is not None:
            np.copyto(vmax, 0, where=np.abs(vmax) < v_floor)
            np.maximum(vmax, v, out=vmax)
            v = vmax
        np.sqrt(v, out=t)
        np.divide(t, bias2_sqrt, out=t)
        np.add(t, eps, out=t)
        np.divide(m, t, out=t)
        np.multiply(t, step_size, out=t)
        np.subtract(p.data, t, out=p.data)


def _moment_floors(dtype: np.dtype, eps: float, bias2_sqrt: float) -> tuple[float, float]:
    """The values below which Adam stores m and v (and v_max) as zero, the compiled step's (src_c/optim.c
    says why): the smallest normal number for m; for v that, or 0 where v keeps its subnormals."""
    dtype = np.dtype(dtype)
    return float(np.finfo(dtype).tiny), _adam_v_floor(dtype == np.float32, eps, bias2_sqrt)


class AdamW(Adam):
    """PyTorch's AdamW: Adam with the weight decay applied to the weights, not added to the gradient.

        p = p * (1 - lr * weight_decay)
        then Adam's update with the plain gradient g (same m, v, bias corrections, amsgrad)

    Defaults are PyTorch's (weight_decay=1e-2).
    """

    _decoupled = True
    _torch_flags = {"decoupled_weight_decay": (True,)}

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False) -> None:
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)
