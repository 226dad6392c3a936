"""Pictures where people would rather look than read: the per-epoch loss and accuracy curves of a ``fit`` run
(or an estimator's loss curve), a confusion-matrix heatmap, the first convolution's filters, one image's
feature maps after a layer, and the decision regions of a classifier on 2-D points (the deck's AND, OR and
XOR pictures).

matplotlib is optional (the ``plot`` extra: ``pip install "cnn_core[plot]"``). It is imported inside the
function that draws, so importing cnn_core never needs it, and its absence is one ImportError that says what
to install. The figure is built with matplotlib's object API (a ``Figure`` of its own, no ``pyplot``):
nothing changes the caller's backend or pyplot's open figures, and no display is needed. A PNG goes to disk
through the library's one atomic writer (``cnn_core.serialization``), so the file at the path is always a
whole picture.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from cnn_core._validation import check_int, check_path, not_an_array
from cnn_core.callbacks import History
from cnn_core.nn.conv import Conv2d
from cnn_core.nn.module import Module
from cnn_core.serialization import _write_atomic
from cnn_core.training import predict

__all__ = ["plot_history", "plot_confusion_matrix", "plot_filters", "plot_feature_maps", "plot_decision_boundary",
           "decision_grid", "require_matplotlib", "INSTALL_HINT"]

INSTALL_HINT = 'pip install "cnn_core[plot]"'


def require_matplotlib():
    """The matplotlib module, or an ImportError naming the ``plot`` extra that installs it."""
    try:
        import matplotlib
    except ImportError:
        raise ImportError(f"cnn_core.plotting needs matplotlib, which is not installed; install it with: "
                          f"{INSTALL_HINT}", name="matplotlib") from None
    return matplotlib


def _curves(history) -> tuple[list, list, list, list]:
    """(train_loss, val_loss, train_acc, val_acc) of a History, or of a sequence of loss values."""
    if isinstance(history, History):
        curves = (history.train_loss, history.val_loss, history.train_acc, history.val_acc)
    elif isinstance(history, (Sequence, np.ndarray)) and not isinstance(history, (str, bytes)):
        values = np.asarray(history)
        if values.ndim != 1 or values.dtype.kind not in "iuf":
            raise TypeError(f"history: expected a cnn_core.callbacks.History or a 1-D sequence of loss values, "
                            f"got {values.dtype} of shape {values.shape}")
        curves = ([float(v) for v in values], [], [], [])
    else:
        raise TypeError(f"history: expected a cnn_core.callbacks.History or a sequence of loss values, "
                        f"got {type(history).__name__}")
    if not curves[0]:
        raise ValueError("history: expected at least one finished epoch, got none")
    return curves


def _curve(ax, values: Sequence[float | None], label: str, style: str) -> bool:
    """Draw the epochs that have a value (epochs count from 1); False when none has."""
    points = [(i + 1, v) for i, v in enumerate(values) if v is not None]
    if not points:
        return False
    xs, ys = zip(*points)
    ax.plot(xs, ys, style, label=label, marker="o", markersize=3)
    ax.xaxis.get_major_locator().set_params(integer=True)  # epochs are whole numbers
    return True


def plot_history(history, path: str | os.PathLike | None = None, *, title: str | None = None,
                 loss_label: str = "loss") -> Any:
    """Draw the per-epoch curves of `history` and return the matplotlib ``Figure``; with `path`, also write
    it there as PNG.

    The loss is on the left (train solid, validation dashed); the accuracy, in percent, on the right when
    the history has any. Epochs count from 1; an epoch without a figure (no validation data, targets that give
    no accuracy) is left out of its curve.

    Args:
        history: a ``cnn_core.callbacks.History`` returned by ``fit``, or a sequence of per-epoch loss values
            (e.g. a Perceptron's or LinearSVM's ``loss_curve_``).
        path: where to write the PNG (atomically; an existing file is replaced only by a whole picture), or
            None to only return the figure.
        title: the figure's title (default: none).
        loss_label: the loss axis' name, e.g. ``"cross-entropy loss"``.

    Raises ImportError naming the ``plot`` extra when matplotlib is missing, TypeError or ValueError for
    bad arguments, and OSError when `path` cannot be written.
    """
    train_loss, val_loss, train_acc, val_acc = _curves(history)
    if path is not None:
        path = check_path(path)
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title: expected a str or None, got {type(title).__name__}")
    if not isinstance(loss_label, str):
        raise TypeError(f"loss_label: expected a str, got {type(loss_label).__name__}")
    require_matplotlib()
    from matplotlib.figure import Figure

    has_acc = any(v is not None for v in [*train_acc, *val_acc])
    fig = Figure(figsize=(10 if has_acc else 5.5, 4))
    axes = fig.subplots(1, 2 if has_acc else 1, squeeze=False)[0]
    ax = axes[0]
    _curve(ax, train_loss, "train", "-")
    if _curve(ax, val_loss, "validation", "--") or has_acc:
        ax.legend()
    ax.set(xlabel="epoch", ylabel=loss_label, title=loss_label)
    ax.grid(alpha=0.3)
    if has_acc:
        ax = axes[1]
        _curve(ax, [None if v is None else 100 * v for v in train_acc], "train", "-")
        _curve(ax, [None if v is None else 100 * v for v in val_acc], "validation", "--")
        ax.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
        ax.legend()
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _finish(fig, path, "plot_history")


def _check_common(path, title) -> str | bytes | None:
    """The arguments every drawing function shares, checked before anything is drawn."""
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title: expected a str or None, got {type(title).__name__}")
    return None if path is None else check_path(path)


def _finish(fig, path, who: str) -> Any:
    """Write `fig` to `path` as PNG through the atomic writer (when a path is given); return the figure."""
    if path is not None:
        _write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=100), who=f"cnn_core.plotting.{who}")
    return fig


def _grid(n: int, tile: float = 1.2):
    """A Figure of n small image panels in a near-square grid (no ticks), the unused cells removed, so that
    ``fig.axes`` is exactly the n panels in row-major order."""
    from matplotlib.figure import Figure

    cols = int(np.ceil(np.sqrt(n)))
    rows = -(-n // cols)
    fig = Figure(figsize=(max(3.0, tile * cols), max(2.5, tile * rows + 0.4)))
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        fig.delaxes(ax)
    for ax in axes[:n]:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes[:n]


def plot_confusion_matrix(matrix, path: str | os.PathLike | None = None, *, labels: Sequence | None = None,
                          title: str | None = None) -> Any:
    """Draw a confusion matrix as a heatmap with each cell's count written in it; return the ``Figure``.

    Rows are the true classes and columns the predicted ones, as ``cnn_core.metrics.confusion_matrix``
    returns them (``C[i, j]`` = samples of class i predicted as j); the diagonal holds the correct ones. The
    image's data is the matrix itself.

    Args:
        matrix: the (L, L) array of non-negative counts, e.g. ``confusion_matrix(y_true, y_pred)``.
        path: where to write the PNG (atomically), or None to only return the figure.
        labels: the L class names for the axes (default 0 .. L-1).
        title: the axes' title (default "confusion matrix").

    Raises ImportError naming the ``plot`` extra when matplotlib is missing, TypeError or ValueError for
    bad arguments, and OSError when `path` cannot be written.
    """
    if not isinstance(matrix, np.ndarray):
        raise not_an_array(matrix, "matrix")
    if matrix.dtype.kind not in "iuf":
        raise TypeError(f"matrix: expected an array of counts, got dtype {matrix.dtype}")
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1] or matrix.shape[0] == 0:
        raise ValueError(f"matrix: expected a non-empty square (L, L) array, got shape {matrix.shape}")
    if not np.isfinite(matrix).all() or (matrix < 0).any():
        raise ValueError("matrix: expected non-negative finite counts, got a negative or non-finite entry")
    n = matrix.shape[0]
    if labels is None:
        names = [str(i) for i in range(n)]
    elif isinstance(labels, (str, bytes)) or not isinstance(labels, (Sequence, np.ndarray)):
        raise TypeError(f"labels: expected a sequence of {n} class names, got {type(labels).__name__}")
    elif len(labels) != n:
        raise ValueError(f"labels: expected {n} class names (one per row of matrix), got {len(labels)}")
    else:
        names = [str(v) for v in labels]
    path = _check_common(path, title)
    require_matplotlib()
    from matplotlib.figure import Figure

    size = min(12.0, 2.5 + 0.55 * n)
    fig = Figure(figsize=(size + 1.2, size))
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    threshold = matrix.max() / 2  # white text on the dark cells, black on the light ones
    for i in range(n):
        for j in range(n):
            value = matrix[i, j]
            text = f"{value:.0f}" if matrix.dtype.kind in "iu" or value == int(value) else f"{value:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8 if n > 10 else 10,
                    color="white" if value > threshold else "black")
    ax.set_xticks(range(n), names)
    ax.set_yticks(range(n), names)
    ax.set(xlabel="predicted class", ylabel="true class", title="confusion matrix" if title is None else title)
    fig.tight_layout()
    return _finish(fig, path, "plot_confusion_matrix")


def _first_conv(model) -> Conv2d:
    if not isinstance(model, Module):
        raise TypeError(f"model: expected a cnn_core.nn.Module, got {type(model).__name__}")
    for m in model.modules():
        if isinstance(m, Conv2d):
            return m
    raise ValueError(f"model: expected a network with a Conv2d layer, got {type(model).__name__} without one")


def _filter_image(w: np.ndarray) -> np.ndarray:
    """One filter (C, KH, KW) as a picture: the kernel itself for one input channel, an RGB image scaled to
    [0, 1] for three, the mean over the input channels otherwise."""
    if w.shape[0] == 3:
        lo, hi = w.min(), w.max()
        return np.moveaxis((w - lo) / (hi - lo) if hi > lo else np.full_like(w, 0.5), 0, -1)
    return w[0] if w.shape[0] == 1 else w.mean(axis=0)


def plot_filters(model, path: str | os.PathLike | None = None, *, title: str | None = None) -> Any:
    """Draw the filters of the model's first ``Conv2d`` (the first in ``model.modules()`` order), one panel
    per output channel; return the ``Figure``.

    A filter ``weight[f]`` of shape (C, KH, KW) is drawn as its kernel when C is 1 (grey scale, each panel
    scaled to its own range; the image data is ``weight[f, 0]``), as an RGB picture when C is 3 and as its
    mean over the C input channels otherwise.

    Args:
        model: a ``cnn_core.nn.Module`` containing a Conv2d (or a Conv2d itself).
        path: where to write the PNG (atomically), or None to only return the figure.
        title: the figure's title (default: which layer and its filter shape).

    Raises ImportError naming the ``plot`` extra when matplotlib is missing, TypeError or ValueError for
    bad arguments (ValueError when the model has no Conv2d), and OSError when `path` cannot be written.
    """
    conv = _first_conv(model)
    path = _check_common(path, title)
    require_matplotlib()
    weight = np.asarray(conv.weight.data, dtype=np.float64)
    fig, axes = _grid(weight.shape[0])
    for f, ax in enumerate(axes):
        ax.imshow(_filter_image(weight[f]), cmap="gray", interpolation="nearest")
        ax.set_title(str(f), fontsize=8)
    if title is None:
        title = f"first Conv2d's {weight.shape[0]} filters of {weight.shape[1]}x{weight.shape[2]}x{weight.shape[3]}"
    fig.suptitle(title)
    return _finish(fig, path, "plot_filters")


def _resolve_layer(model: Module, layer) -> Module:
    """`layer` as a module of `model`: the module itself, or its dotted name in the children ("0", "block.1")."""
    if isinstance(layer, str):
        found = model
        for part in layer.split("."):
            children = dict(found.named_children())
            if part not in children:
                raise ValueError(f"layer: expected the name of a submodule of the model (e.g. "
                                 f"{', '.join(repr(k) for k in dict(model.named_children())) or 'none'}), "
                                 f"got {layer!r}")
            found = children[part]
        return found
    if not isinstance(layer, Module):
        raise TypeError(f"layer: expected a cnn_core.nn.Module of the model or its name, got {type(layer).__name__}")
    if not any(m is layer for m in model.modules()):
        raise ValueError(f"layer: expected a module of the model, got a {type(layer).__name__} that is not in it")
    return layer


def plot_feature_maps(model, image: np.ndarray, layer, path: str | os.PathLike | None = None, *,
                      max_maps: int | None = None, title: str | None = None) -> Any:
    """Run one image through the model (in eval mode) and draw the maps that `layer` outputs, one panel per
    channel; return the ``Figure``.

    The output is caught by a forward hook on `layer` (``register_forward_hook``), removed afterwards
    whatever happens; the model is not changed. Each panel's image data is one channel of the layer's
    output for this image, ``out[0, c]`` of shape (H', W').

    Args:
        model: a ``cnn_core.nn.Module`` taking images (N, C, H, W).
        image: one image, (C, H, W), or (H, W) for a single channel; a float array.
        layer: the module whose output to draw (a submodule of `model`, e.g. ``model[1]``) or its dotted
            name among the children (``"1"``, ``"features.0"``). Its output must be maps (1, C', H', W').
        path: where to write the PNG (atomically), or None to only return the figure.
        max_maps: draw only the first `max_maps` channels (default: all).
        title: the figure's title (default: the layer's type and output shape).

    Raises ImportError naming the ``plot`` extra when matplotlib is missing, TypeError or ValueError for
    bad arguments, and OSError when `path` cannot be written.
    """
    if not isinstance(model, Module):
        raise TypeError(f"model: expected a cnn_core.nn.Module, got {type(model).__name__}")
    if not isinstance(image, np.ndarray):
        raise not_an_array(image, "image")
    if image.dtype.kind != "f":
        raise TypeError(f"image: expected a floating-point array, got dtype {image.dtype}")
    if image.ndim not in (2, 3):
        raise ValueError(f"image: expected one image of shape (C, H, W) or (H, W), got shape {image.shape}")
    layer = _resolve_layer(model, layer)
    if max_maps is not None:
        max_maps = check_int(max_maps, "max_maps", 1)
    path = _check_common(path, title)
    require_matplotlib()
    batch = (image[None] if image.ndim == 3 else image[None, None])
    caught: list[np.ndarray] = []
    handle = layer.register_forward_hook(lambda module, inputs, output: caught.append(np.array(output)))
    try:
        predict(model, batch)
    finally:
        handle.remove()
    if not caught:
        raise ValueError(f"layer: the {type(layer).__name__} was not called by the model's forward")
    maps = caught[0]
    if maps.ndim != 4:
        raise ValueError(f"layer: expected a layer whose output is maps (1, C, H, W), got output shape {maps.shape}")
    maps = maps[0, :max_maps]
    fig, axes = _grid(len(maps))
    for c, ax in enumerate(axes):
        ax.imshow(maps[c], cmap="viridis", interpolation="nearest")
        ax.set_title(str(c), fontsize=8)
    fig.suptitle(f"{type(layer).__name__} output {tuple(caught[0].shape[1:])}" if title is None else title)
    return _finish(fig, path, "plot_feature_maps")


def _predict_labels(model, X: np.ndarray) -> np.ndarray:
    """Predicted labels: an estimator's ``predict``; a network's argmax over its outputs, or for one output
    (a probability) class 1 where it exceeds 0.5, as ``fit`` counts accuracy."""
    if isinstance(model, Module):
        out = predict(model, X)
        if out.ndim == 2 and out.shape[1] >= 2:
            return out.argmax(axis=1)
        if out.ndim == 1 or out.shape[1] == 1:
            return (out.reshape(len(out)) > 0.5).astype(np.int64)
        raise ValueError(f"model: expected outputs (n, classes) or (n, 1), got shape {out.shape}")
    return np.asarray(model.predict(X))


def decision_grid(X: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """The grid `plot_decision_boundary` predicts on: `resolution` evenly spaced values along each axis,
    spanning the data plus a margin of 10% of its range (at least 0.5) on every side. Returns (xs, ys)."""
    lo, hi = X.min(axis=0), X.max(axis=0)
    margin = np.maximum(0.1 * (hi - lo), 0.5)
    return (np.linspace(lo[0] - margin[0], hi[0] + margin[0], resolution),
            np.linspace(lo[1] - margin[1], hi[1] + margin[1], resolution))


def plot_decision_boundary(model, X, y, path: str | os.PathLike | None = None, *, resolution: int = 200,
                           title: str | None = None) -> Any:
    """Colour the plane by the class a fitted classifier predicts and draw the points (X, y) over it; return
    the ``Figure``. The deck's pictures: a perceptron's line separates AND and OR but no line separates XOR,
    which a small MLP's curved regions do.

    The regions are the predictions on ``decision_grid(X, resolution)`` (row i, column j at
    ``(xs[j], ys[i])``), drawn as an image whose data is the (resolution, resolution) array of each grid
    point's predicted class as its position among the sorted labels (predicted or in y): the labels
    themselves when they are 0 .. k-1. The image's pixels are centred on the grid points. A network
    predicts the argmax of its outputs, or class 1 where its single output exceeds 0.5.

    Args:
        model: a fitted estimator with ``predict`` (``Perceptron``, ``LinearSVM``) or a trained
            ``cnn_core.nn.Module`` taking (n, 2) inputs.
        X: (n, 2) array of the points, y: their n labels (drawn as the points' colours and markers).
        path: where to write the PNG (atomically), or None to only return the figure.
        resolution: grid points along each axis (at least 2).
        title: the axes' title (default: the model's type).

    Raises ImportError naming the ``plot`` extra when matplotlib is missing, TypeError or ValueError for
    bad arguments, and OSError when `path` cannot be written.
    """
    if not isinstance(model, Module) and not callable(getattr(model, "predict", None)):
        raise TypeError(f"model: expected a fitted estimator with predict() or a cnn_core.nn.Module, "
                        f"got {type(model).__name__}")
    X = np.asarray(X) if isinstance(X, (list, tuple)) else X
    if not isinstance(X, np.ndarray):
        raise not_an_array(X, "X")
    if X.dtype.kind not in "iuf":
        raise TypeError(f"X: expected a numeric array, got dtype {X.dtype}")
    if X.ndim != 2 or X.shape[1] != 2 or len(X) == 0:
        raise ValueError(f"X: expected points in the plane, shape (n, 2) with n >= 1, got shape {X.shape}")
    if not np.isfinite(X).all():
        raise ValueError("X: expected finite values, got NaN or infinity")
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(X):
        raise ValueError(f"y: expected {len(X)} labels (one per row of X), got shape {y.shape}")
    resolution = check_int(resolution, "resolution", 2)
    path = _check_common(path, title)
    require_matplotlib()
    from matplotlib.figure import Figure

    xs, ys = decision_grid(X.astype(np.float64), resolution)
    gx, gy = np.meshgrid(xs, ys)
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    regions = _predict_labels(model, grid).reshape(resolution, resolution)
    classes = np.unique(np.concatenate([np.unique(regions), np.unique(y)]))
    index = np.searchsorted(classes, regions)  # colours by position among the classes, whatever the labels
    fig = Figure(figsize=(5, 4.5))
    ax = fig.subplots()
    dx, dy = (xs[1] - xs[0]) / 2, (ys[1] - ys[0]) / 2
    ax.imshow(index, origin="lower", extent=(xs[0] - dx, xs[-1] + dx, ys[0] - dy, ys[-1] + dy), cmap="coolwarm",
              alpha=0.35, aspect="auto", interpolation="nearest", vmin=0, vmax=max(1, len(classes) - 1))
    markers = "os^vD<>p*h"
    for k, c in enumerate(classes):
        at = y == c
        if at.any():
            ax.scatter(X[at, 0], X[at, 1], marker=markers[k % len(markers)], s=60, edgecolors="black",
                       color=_class_colour(k, len(classes)), label=f"class {c}", zorder=3)
    ax.set(xlim=(xs[0] - dx, xs[-1] + dx), ylim=(ys[0] - dy, ys[-1] + dy), xlabel="$x_1$", ylabel="$x_2$",
           title=type(model).__name__ if title is None else title)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    return _finish(fig, path, "plot_decision_boundary")


def _class_colour(k: int, n: int):
    from matplotlib import colormaps

    return colormaps["coolwarm"](k / max(1, n - 1))
