"""Pictures of training: the per-epoch loss and accuracy curves of a ``fit`` run, or an estimator's loss curve.

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

from cnn_core._validation import check_path
from cnn_core.callbacks import History
from cnn_core.serialization import _write_atomic

__all__ = ["plot_history", "require_matplotlib", "INSTALL_HINT"]

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
    if path is not None:
        _write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=100), who="cnn_core.plotting.plot_history")
    return fig
