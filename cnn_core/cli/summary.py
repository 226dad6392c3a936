"""A Keras-like model summary: each layer, its output shape, its parameter count, and the total."""
from __future__ import annotations

import numpy as np


def _leaves(model) -> list[tuple[str, object]]:
    """(dotted name, module) for every module without submodules, depth first; the model itself if it has none."""
    out = []

    def walk(prefix: str, module) -> None:
        children = list(module.named_children())
        if not children:
            out.append((prefix or type(module).__name__.lower(), module))
        for name, child in children:
            walk(f"{prefix}.{name}" if prefix else name, child)

    walk("", model)
    return out


def _shape_text(out) -> str:
    if isinstance(out, np.ndarray):
        return "(" + ", ".join(["N"] + [str(d) for d in out.shape[1:]]) + ")"
    if isinstance(out, (tuple, list)):
        return ", ".join(_shape_text(o) for o in out)
    return "?"


def output_shapes(model, x: np.ndarray) -> dict[int, str]:
    """Output shape text of every leaf module, recorded during one eval-mode forward pass of the sample x.

    Each leaf's `forward` is wrapped for this one pass by an instance attribute (which Python looks up
    before the class method, so containers calling `m(x)` or `m.forward(x)` both go through it) and the
    class's method is back in place afterwards; the model's train/eval mode is restored too.
    """
    shapes: dict[int, str] = {}
    leaves = [m for _, m in _leaves(model)]

    def recorder(module):
        method = type(module).forward

        def forward(*args, **kwargs):
            out = method(module, *args, **kwargs)
            shapes[id(module)] = _shape_text(out)
            return out
        return forward

    was_training = model.training
    model.eval()
    try:
        for m in leaves:
            object.__setattr__(m, "forward", recorder(m))
        model(x[:1].astype(model.dtype))
    finally:
        for m in leaves:
            if "forward" in vars(m):
                object.__delattr__(m, "forward")
        model.train(was_training)
    return shapes


def summary(model, x: np.ndarray, title: str | None = None) -> str:
    """The summary table of `model` for inputs shaped like x (samples first), as text."""
    shapes = output_shapes(model, x)
    rows = [("Layer (type)", "Output shape", "Param #")]
    for name, m in _leaves(model):
        n_params = sum(p.data.size for p in m.parameters())
        rows.append((f"{name} ({type(m).__name__})", shapes.get(id(m), "-"), f"{n_params:,}"))
    w0 = max(len(r[0]) for r in rows) + 2
    w1 = max(len(r[1]) for r in rows) + 2
    w2 = max(len(r[2]) for r in rows)
    rule = "=" * (w0 + w1 + w2)
    total = sum(p.data.size for p in model.parameters())
    head = title or f"Model: {type(model).__name__}"
    lines = [f"{head} ({np.dtype(model.dtype).name}, input {_shape_text(x)})", rule,
             f"{rows[0][0]:<{w0}}{rows[0][1]:<{w1}}{rows[0][2]:>{w2}}", rule]
    lines += [f"{a:<{w0}}{b:<{w1}}{c:>{w2}}" for a, b, c in rows[1:]]
    lines += [rule, f"Total params: {total:,}"]
    return "\n".join(lines)
