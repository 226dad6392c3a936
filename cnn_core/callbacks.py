"""Training callbacks and the History that `fit` returns.

`fit` calls the hooks in this order: on_train_begin(info); for each epoch: on_epoch_begin(epoch, info),
on_batch_end(batch, logs) after every optimizer step, on_epoch_end(epoch, logs) once the epoch's validation
is done; finally on_train_end(history), also after an interrupt (history.interrupted is then True).
Epoch and batch indices are 0-based (Keras's convention); `info` and `logs` carry the totals for display.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from cnn_core._validation import check_size


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


def format_duration(seconds: float) -> str:
    """1:02:03 / 2:03 / 4.2s: short, fixed meaning."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _pct(acc: float | None) -> str:
    return "n/a" if acc is None else f"{100 * acc:.2f}%"


class ProgressBar(Callback):
    """Training progress on a text stream: one summary line per finished epoch, and on a terminal a bar
    redrawn in place while the epoch runs.

    The epoch line: ``epoch 3/10  loss 0.1234  acc 96.10%  val_loss 0.1456  val_acc 95.50%  4.2s  12,345
    samples/s`` (acc and the validation figures when fit has them). The bar, replaced by that line when
    the epoch ends: ``epoch 3/10 [=========.......] 180/450  loss 0.1301  acc 95.80%  12,000 samples/s  ETA
    2.1s``, redrawn at most every REFRESH seconds (and at the last batch).

    stream: where to write, default sys.stderr. width: characters of the bar. live: draw the bar (it
    relies on carriage returns, so it is for terminals); default None draws it when stream.isatty(), so that
    logs, pipes and CI get the epoch lines alone.
    """

    REFRESH = 0.1  # seconds between bar redraws: smooth to the eye, negligible cost per batch

    def __init__(self, stream: TextIO | None = None, width: int = 24, live: bool | None = None) -> None:
        if stream is not None and not callable(getattr(stream, "write", None)):
            raise TypeError(f"stream: expected a text stream with write() or None, got {type(stream).__name__}")
        if live is not None and not isinstance(live, bool):
            raise TypeError(f"live: expected True, False or None, got {live!r}")
        self.stream = stream or sys.stderr
        self.width = check_size(width, "width")
        if live is None:
            isatty = getattr(self.stream, "isatty", None)
            live = bool(isatty()) if callable(isatty) else False
        self.live = live
        self.epochs = 0
        self._last = 0.0
        self._shown = 0  # length of the bar currently on screen, to blank it out

    @staticmethod
    def _epoch_line(epoch: int, epochs: int, logs: dict[str, Any]) -> str:
        """The end-of-epoch summary: train and validation figures, time, throughput."""
        width = len(str(epochs))
        parts = [f"epoch {epoch + 1:>{width}}/{epochs}", f"loss {logs['train_loss']:.4f}"]
        if logs.get("train_acc") is not None:
            parts.append(f"acc {_pct(logs['train_acc'])}")
        if logs.get("val_loss") is not None:
            parts.append(f"val_loss {logs['val_loss']:.4f}")
        if logs.get("val_acc") is not None:
            parts.append(f"val_acc {_pct(logs['val_acc'])}")
        parts.append(format_duration(logs["seconds"]))
        parts.append(f"{logs['samples_per_sec']:,.0f} samples/s")
        return "  ".join(parts)

    def on_train_begin(self, info: dict[str, Any]) -> None:
        self.epochs = info["epochs"]

    def on_epoch_begin(self, epoch: int, info: dict[str, Any]) -> None:
        if self.live:
            self._last = 0.0
            self._draw(f"epoch {epoch + 1}/{self.epochs} [{'.' * self.width}] 0/{info['batches']}")

    def on_batch_end(self, batch: int, logs: dict[str, Any]) -> None:
        if not self.live:
            return
        now = time.monotonic()
        done, total = batch + 1, logs["batches"]
        if done < total and now - self._last < self.REFRESH:
            return
        self._last = now
        filled = self.width * done // total
        bar = "=" * filled + ("." * (self.width - filled))
        rate = logs["samples_per_sec"]
        remaining = (total - done) * logs["seconds"] / done
        text = (f"epoch {logs['epoch'] + 1}/{self.epochs} [{bar}] {done}/{total}  "
                f"loss {logs['running_loss']:.4f}")
        if logs.get("running_acc") is not None:
            text += f"  acc {_pct(logs['running_acc'])}"
        text += f"  {rate:,.0f} samples/s  ETA {format_duration(remaining)}"
        self._draw(text)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        self._clear()
        print(self._epoch_line(epoch, self.epochs, logs), file=self.stream, flush=True)

    def on_train_end(self, history: "History") -> None:
        self._clear()  # an interrupt leaves a half-drawn bar

    def _draw(self, text: str) -> None:
        pad = max(0, self._shown - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._shown = len(text)

    def _clear(self) -> None:
        if self._shown:
            self.stream.write("\r" + " " * self._shown + "\r")
            self.stream.flush()
            self._shown = 0


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
