"""--plot: a PNG of the loss and accuracy curves (train and validation) per epoch. Needs matplotlib."""
from __future__ import annotations

import os
from typing import Sequence

from cnn_core.cli.errors import UsageError

INSTALL_HINT = 'pip install "cnn_core[plot]"'


def require_matplotlib():
    """Import matplotlib with a file-only backend, or raise UsageError saying how to install it.

    Called before training starts, so a missing extra is reported before any time is spent.
    """
    try:
        import matplotlib
    except ImportError:
        raise UsageError(f"--plot needs matplotlib, which is not installed; install it with: {INSTALL_HINT}") from None
    matplotlib.use("Agg")  # no display needed, and never opens a window
    import matplotlib.pyplot as plt
    return plt


def _curve(ax, values: Sequence[float | None], label: str, style: str) -> bool:
    points = [(i + 1, v) for i, v in enumerate(values) if v is not None]
    if not points:
        return False
    xs, ys = zip(*points)
    ax.plot(xs, ys, style, label=label, marker="o", markersize=3)
    ax.xaxis.get_major_locator().set_params(integer=True)  # epochs are whole numbers
    return True


def plot_history(path: str, title: str, train_loss, val_loss=(), train_acc=(), val_acc=(),
                 loss_label: str = "loss") -> None:
    """Write the curves to `path` as PNG: loss on the left, accuracy on the right (when there is any)."""
    plt = require_matplotlib()
    has_acc = any(v is not None for v in list(train_acc) + list(val_acc))
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(10 if has_acc else 5.5, 4), squeeze=False)
    ax = axes[0][0]
    _curve(ax, train_loss, "train", "-")
    if _curve(ax, val_loss, "validation", "--") or has_acc:
        ax.legend()
    ax.set_xlabel("epoch")
    ax.set_ylabel(loss_label)
    ax.set_title(loss_label)
    ax.grid(alpha=0.3)
    if has_acc:
        ax = axes[0][1]
        _curve(ax, [None if v is None else 100 * v for v in train_acc], "train", "-")
        _curve(ax, [None if v is None else 100 * v for v in val_acc], "validation", "--")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy (%)")
        ax.set_title("accuracy")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    try:
        fig.savefig(os.fspath(path), format="png", dpi=100)
    except OSError as e:
        raise UsageError(f"--plot: cannot write {path}: {e.strerror or e}") from None
    finally:
        plt.close(fig)
