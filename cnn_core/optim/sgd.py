"""Stochastic gradient descent with optional momentum (with dampening), Nesterov momentum and L2 weight decay."""
from __future__ import annotations

import numpy as np

from cnn_core._validation import check_bool, check_real
from cnn_core.kernels._optim import sgd_step as _sgd_step
from cnn_core.optim.optimizer import Optimizer


class SGD(Optimizer):
    """PyTorch's SGD. Per parameter p with gradient g, each step:

        g = g + weight_decay * p
        buf = g (first step), else buf = momentum * buf + (1 - dampening) * g      (only when momentum > 0)
        g = g + momentum * buf (nesterov), else g = buf                             (only when momentum > 0)
        p = p - lr * g

    `.grad` itself is never modified. Defaults are PyTorch 2's (lr=1e-3).

    Subnormal values (below 2^-126 in float32, 2^-1022 in float64) are taken as zero on x86 (the compiled
    step's DAZ/FTZ, src_c/optim.c): a momentum buffer decaying where the gradient stays zero (a dead ReLU
    unit's weights) reaches zero instead of crawling through values that cost the CPU a microcode assist
    each (an MLP's step 2.5-3x slower after a few epochs). Parameters above ~2^-100 keep the bits of the
    unflushed arithmetic: the updates such entries make are below half an ulp of them.
    """

    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.0, dampening: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                                      nesterov=nesterov))

    @classmethod
    def _validate_hyper(cls, hyper, name):
        out = super()._validate_hyper(hyper, name)
        out["momentum"] = check_real(hyper["momentum"], name("momentum"), 0.0)
        out["dampening"] = check_real(hyper["dampening"], name("dampening"))
        out["weight_decay"] = check_real(hyper["weight_decay"], name("weight_decay"), 0.0)
        nesterov = check_bool(hyper["nesterov"], name("nesterov"))
        if nesterov and (out["momentum"] == 0.0 or out["dampening"] != 0.0):
            raise ValueError(f"{name('nesterov')}: Nesterov momentum requires momentum > 0 and zero dampening, "
                             f"got momentum={out['momentum']}, dampening={out['dampening']}")
        out["nesterov"] = nesterov
        return out

    def _state_spec(self, group):
        return (("momentum_buffer",) if group["momentum"] != 0.0 else ()), ()

    def step(self) -> None:
        """Apply one update to every trainable parameter from its current `.grad`."""
        for group in self.param_groups:
            lr, mu, damp, wd = group["lr"], group["momentum"], group["dampening"], group["weight_decay"]
            todo = list(self._trainable(group))
            ps, gs = [p.data for p, _ in todo], [p.grad for p, _ in todo]
            bufs = firsts = None
            if mu != 0.0:
                bufs = [s.get("momentum_buffer") for _, s in todo]
                firsts = [b is None for b in bufs]
                bufs = [np.empty_like(d) if b is None else b for d, b in zip(ps, bufs)]
            try:
                # the group in one compiled call (kernels/_optim.pyx: the roundings of _step_one's ufuncs)
                _sgd_step(ps, gs, bufs, firsts, lr, mu, damp, wd, group["nesterov"])
            except (TypeError, ValueError):   # a strided array, mixed dtypes: parameter by parameter
                for k, (p, state) in enumerate(todo):
                    self._step_one(p, state, None if bufs is None else bufs[k], group)
                continue
            if firsts is not None and any(firsts):
                for (_, state), b, first in zip(todo, bufs, firsts):
                    if first:
                        state["momentum_buffer"] = b

    def _step_one(self, p, state: dict, new_buf, group: dict) -> None:
        """One parameter's update: the compiled pass (new_buf: the momentum buffer it takes on its first step,
        kept once the pass ran), else, where the pass refuses its arrays (TypeError or ValueError before an
        element is written: a strided array, a gradient of another dtype), NumPy's ufuncs."""
        lr, mu, damp, wd = group["lr"], group["momentum"], group["dampening"], group["weight_decay"]
        buf = state.get("momentum_buffer")
        first = mu != 0.0 and buf is None
        try:
            _sgd_step([p.data], [p.grad], [new_buf if first else buf], [first], lr, mu, damp, wd, group["nesterov"])
        except (TypeError, ValueError):
            pass
        else:
            if first:
                state["momentum_buffer"] = new_buf
            return
        g = self._grad_with_decay(p, wd)
        if mu != 0.0:
            if buf is None:
                buf = state["momentum_buffer"] = g.copy()
            else:
                np.multiply(buf, mu, out=buf)
                if damp != 0.0:
                    t = self._scratch_buffer(p, "t")
                    np.multiply(g, 1.0 - damp, out=t)
                    np.add(buf, t, out=buf)
                else:
                    np.add(buf, g, out=buf)
            if group["nesterov"]:
                d = self._scratch_buffer(p, "d")
                t = self._scratch_buffer(p, "t")
                np.multiply(buf, mu, out=t)
                np.add(g, t, out=d)
                g = d
            else:
                g = buf
        t = self._scratch_buffer(p, "t")
        np.multiply(g, lr, out=t)
        np.subtract(p.data, t, out=p.data)
