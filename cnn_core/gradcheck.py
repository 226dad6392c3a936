"""Gradient check: analytic backward against central finite differences in float64."""
from __future__ import annotations

import copy
from typing import Any

import numpy as np

from cnn_core._validation import check_real


class GradcheckError(RuntimeError):
    """Raised when an analytic gradient disagrees with the finite-difference estimate."""


def _to64(v):
    if isinstance(v, np.ndarray) and np.issubdtype(v.dtype, np.floating):
        return v.astype(np.float64)
    return v


def gradcheck(fn_or_module: Any, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3) -> bool:
    """Compare analytic gradients with central differences (f(v+eps) - f(v-eps)) / (2 eps), in float64.

    fn_or_module is either
      - a Module: forward(*inputs) returns an array (or a tuple of arrays, like RNN); the scalar checked is
        L = sum_k <out_k, r_k> with fixed random r_k, whose dL/dout_k = r_k is passed to backward(*r). The
        gradients checked are backward's return value(s) against the leading float input(s) and every
        parameter's .grad. The module is deep-copied and cast to float64, so the caller's is untouched.
      - a loss-like callable: fn(*inputs) returns a float and fn.backward() returns d fn / d inputs[0].
    Float inputs are cast to float64 copies; integer inputs (labels) are passed through unchanged.
    An entry passes when |analytic - numeric| <= atol + rtol * |numeric|. Returns True, or raises
    GradcheckError naming the worst entry.
    """
    eps = check_real(eps, "eps", 0.0, low_open=True)
    atol, rtol = check_real(atol, "atol", 0.0), check_real(rtol, "rtol", 0.0)
    from cnn_core.nn.module import Module  # late import: cnn_core.nn imports the kernels

    if isinstance(inputs, np.ndarray):
        inputs = (inputs,)
    inputs = [_to64(v) for v in inputs]
    if isinstance(fn_or_module, Module):
        fn = copy.deepcopy(fn_or_module).to(np.float64).train()
        return _check_module(fn, inputs, eps, atol, rtol)
    if callable(fn_or_module) and callable(getattr(fn_or_module, "backward", None)):
        return _check_scalar_fn(fn_or_module, inputs, eps, atol, rtol)
    raise TypeError(f"fn_or_module: expected a Module or a callable with a backward() method, "
                    f"got {type(fn_or_module).__name__}")


def _check_module(m, inputs, eps, atol, rtol) -> bool:
    out = m.forward(*inputs)
    outs = out if isinstance(out, tuple) else (out,)
    rng = np.random.default_rng(0)
    r = [rng.standard_normal(o.shape) for o in outs]

    def loss() -> float:
        o = m.forward(*inputs)
        o = o if isinstance(o, tuple) else (o,)
        return float(sum(np.vdot(a, b) for a, b in zip(o, r)))

    m.zero_grad()
    m.forward(*inputs)
    d_in = m.backward(*r)
    d_in = d_in if isinstance(d_in, tuple) else (d_in,)
    checks = [(f"input {i}", inputs[i], d) for i, d in enumerate(d_in) if d is not None]
    checks += [(name, p.data, p.grad.copy()) for name, p in m.named_parameters()]
    return _compare(checks, loss, eps, atol, rtol)


def _check_scalar_fn(fn, inputs, eps, atol, rtol) -> bool:
    fn(*inputs)
    analytic = np.array(fn.backward(), dtype=np.float64)
    return _compare([("input 0", inputs[0], analytic)], lambda: float(fn(*inputs)), eps, atol, rtol)


def _compare(checks, loss, eps, atol, rtol) -> bool:
    worst = None  # (excess over tolerance, name, index, analytic, numeric)
    for name, v, analytic in checks:
        if analytic.shape != v.shape:
            raise GradcheckError(f"{name}: analytic gradient has shape {analytic.shape}, expected {v.shape}")
        flat = v.reshape(-1)  # a view: perturbing it perturbs the array the function reads
        numeric = np.empty(flat.size)
        for i in range(flat.size):
            orig = flat[i]
            flat[i] = orig + eps
            up = loss()
            flat[i] = orig - eps
            down = loss()
            flat[i] = orig
            numeric[i] = (up - down) / (2 * eps)
        a = analytic.reshape(-1).astype(np.float64)
        excess = np.abs(a - numeric) - (atol + rtol * np.abs(numeric))
        i = int(np.argmax(excess)) if excess.size else 0
        if excess.size and (worst is None or excess[i] > worst[0]):
            worst = (excess[i], name, np.unravel_index(i, v.shape), a[i], numeric[i])
    if worst is not None and not worst[0] <= 0:
        _, name, idx, a, num = worst
        raise GradcheckError(f"gradcheck failed: {name}{list(map(int, idx))}: analytic {a:.8g} vs numeric "
                             f"{num:.8g} (|diff| {abs(a - num):.3g} > atol {atol} + rtol {rtol} * |numeric|)")
    return True
