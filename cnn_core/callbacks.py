"""Training callbacks and the History that `fit` returns.

`fit` calls the hooks in this order: on_train_begin(info); for each epoch: on_epoch_begin(epoch, info),
on_batch_end(batch, logs) after every optimizer step, on_epoch_end(epoch, logs) once the epoch's validation
is done; finally on_train_end(history), also after an interrupt (history.interrupted is then True).
Epoch and batch indices are 0-based (Keras's convention); `info` and `logs` carry the totals for display.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class Callback:
    """Base class: override the hooks you need; each one does nothing by default.

    info (train/epoch begin): epochs, batches (per epoch), samples, batch_size, val_samples (0 without
    validation data).
    logs at batch end: epoch, batch, batches, size (of this batch), loss (of this batch), running_loss and
    running_acc (means over the epoch so far; acc None when the targets give no accuracy), samples (seen this
    epoch), seconds (elapsed this epoch), samples_per_sec.
    logs at epoch end: train_loss, train_acc, val_loss, val_acc (None without validation data), seconds,
    samples_per_sec: the same figures History records.
    """

    def on_train_begin(self, info: dict[str, Any]) -> None:
        pass

    def on_epoch_begin(self, epoch: int, info: dict[str, Any]) -> None:
        pass

    def on_batch_end(self, batch: int, logs: dict[str, Any]) -> None:
        pass

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        pass

    def on_train_end(self, history: "History") -> None:
        pass


class LRSchedulerStep(Callback):
    """Steps a learning-rate scheduler (cnn_core.optim.StepLR, CosineAnnealingLR, ...) once per finished
    epoch, the usual PyTorch loop's `scheduler.step()` for `fit`, which takes no scheduler argument."""

    def __init__(self, scheduler) -> None:
        if not callable(getattr(scheduler, "step", None)):
            raise TypeError(f"scheduler: expected a learning-rate scheduler with a step() method (e.g. "
                            f"cnn_core.optim.StepLR), got {type(scheduler).__name__}")
        self.scheduler = scheduler

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        self.scheduler.step()


HISTORY_KEYS = ("train_loss", "train_acc", "val_loss", "val_acc", "seconds", "samples_per_sec")


@dataclass
class History:
    """Per-epoch figures of a `fit` run, one list entry per finished epoch.

    train_loss: mean loss over the epoch's batches, weighted by batch size (taken as the weights changed).
    train_acc: fraction correct over the same batches, or None when the targets give no accuracy.
    val_loss, val_acc: `evaluate` on validation_data after the epoch (None without validation data).
    seconds: wall time of the whole epoch including validation; samples_per_sec: training samples per
    second of the training part alone.
    interrupted: True when Ctrl-C stopped training; the model then holds the weights of the last finished
    epoch (the initial weights if none finished), which are the ones the lists describe.
    """

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float | None] = field(default_factory=list)
    val_loss: list[float | None] = field(default_factory=list)
    val_acc: list[float | None] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    samples_per_sec: list[float] = field(default_factory=list)
    interrupted: bool = False

    @property
    def epoch(self) -> int:
        """Number of finished epochs."""
        return len(self.train_loss)

    @property
    def history(self) -> dict[str, list]:
        """The per-epoch lists by name, like Keras's History.history."""
        return {k: getattr(self, k) for k in HISTORY_KEYS}

    def append(self, logs: dict[str, Any]) -> None:
        for k in HISTORY_KEYS:
            getattr(self, k).append(logs[k])
