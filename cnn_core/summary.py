"""A Keras-like model summary: each layer, its output shape, its parameter count, and the total."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from cnn_core._validation import as_shape
from cnn_core.nn import Module
from cnn_core.nn.module import takes_integer_input, temporary_mode

__all__ = ["summary"]


def _leaves(model: Module) -> list[tuple[str, Module]]:
    """(dotted name, module) for every module without submodules, depth first; the model itself if it has none."""
    out = []

    def walk(prefix: str, module: Module) -> None:
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


def _output_shapes(model: Module, x: np.ndarray) -> dict[int, str]:
    """Output shape text of every leaf module, recorded during one eval-mode forward pass of the batch x.

    A forward hook on each leaf records its output (containers call their modules as ``m(x)``, which runs
    the hooks); the hooks are removed afterwards, and every module's train/eval mode is restored too.
    """
    shapes: dict[int, str] = {}

    def record(module, inputs, out) -> None:
        shapes[id(module)] = _shape_text(out)

    with temporary_mode(model, False):
        handles = []
        try:
            for _, m in _leaves(model):
                handles.append(m.register_forward_hook(record))
            model(x)
        finally:
            for h in handles:
                h.remove()
    return shapes


def summary(model: Module, input_shape: Sequence[int], dtype=None, *, title: str | None = None) -> str:
    """The summary table of `model` for inputs of shape ``(N, *input_shape)``, as text.

    One row per layer (each module without submodules, by dotted name): its type, its output shape with N for
    the batch, and its number of parameters; then the total. Output shapes are recorded from one eval-mode
    forward pass of a batch of one zero input; each module's train/eval mode and the weights are left as they were.

    model: a ``cnn_core.nn.Module``. input_shape: the shape of one sample, without the batch dimension (for example
    (1, 28, 28) for LeNet-5, (784,) for an MLP on flattened digits). dtype: of that dummy input, default the
    model's dtype, or int64 for a model that reads indices (one starting with an Embedding). title: the first line's name, default
    "Model: <class name>".

    >>> from cnn_core import nn, summary
    >>> print(summary(nn.Sequential(nn.Linear(4, 3), nn.ReLU()), (4,)))
    Model: Sequential (float32, input (N, 4))
    ===================================
    Layer (type)  Output shape  Param #
    ===================================
    0 (Linear)    (N, 3)             15
    1 (ReLU)      (N, 3)              0
    ===================================
    Total params: 15
    """
    if not isinstance(model, Module):
        raise TypeError(f"model: expected a cnn_core.nn.Module, got {type(model).__name__}")
    if not isinstance(input_shape, (tuple, list)):
        raise TypeError(f"input_shape: expected a tuple of ints (the shape of one sample, without the batch), "
                        f"got {input_shape!r}")
    if len(input_shape) == 0:
        raise ValueError("input_shape: expected the shape of one sample (at least one int), got ()")
    shape = as_shape(input_shape, "input_shape", len(input_shape))
    try:
        in_dtype = ((np.dtype(np.int64) if takes_integer_input(model) else model.dtype) if dtype is None
                    else np.dtype(dtype))
    except TypeError:
        raise TypeError(f"dtype: expected a NumPy dtype (e.g. 'float32' or 'int64'), got {dtype!r}") from None
    if in_dtype.kind not in "biuf":
        raise TypeError(f"dtype: expected a numeric dtype, got {in_dtype}")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title: expected a str or None, got {type(title).__name__}")
    x = np.zeros((1, *shape), dtype=in_dtype)
    try:
        shapes = _output_shapes(model, x)
    except ValueError as e:
        raise ValueError(f"input_shape: the model does not take inputs of shape (N, {', '.join(map(str, shape))})"
                         f" ({e})") from None
    except TypeError as e:
        raise TypeError(f"dtype: the model does not take inputs of dtype {in_dtype} ({e})") from None
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
    input_text = _shape_text(x) + ("" if in_dtype == model.dtype else f" {in_dtype}")
    lines = [f"{head} ({np.dtype(model.dtype).name}, input {input_text})", rule,
             f"{rows[0][0]:<{w0}}{rows[0][1]:<{w1}}{rows[0][2]:>{w2}}", rule]
    lines += [f"{a:<{w0}}{b:<{w1}}{c:>{w2}}" for a, b, c in rows[1:]]
    lines += [rule, f"Total params: {total:,}"]
    return "\n".join(lines)
