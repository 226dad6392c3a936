"""Training callbacks and the History that `fit` returns.

`fit` calls the hooks in this order: set_model(model); on_train_begin(info); for each epoch:
on_epoch_begin(epoch, info), on_batch_end(batch, logs) after every optimizer step, on_epoch_end(epoch, logs)
once the epoch's validation is done; finally on_train_end(history) on every exit path: a finished run, an
interrupt (history.interrupted is then True), a diverging run (NonFiniteLossError, raised after the hooks ran).
A callback stops training as Keras's do: `self.model.stop_training = True` ends the run after the current
epoch. Epoch and batch indices are 0-based (Keras's convention); `info` and `logs` carry the totals for display.

Built in: ProgressBar, LRSchedulerStep, EarlyStopping, ModelCheckpoint, CSVLogger. Monitored names are
History's: train_loss, train_acc, val_loss, val_acc.
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

from cnn_core._validation import check_bool, check_choice, check_int, check_path, check_real, check_size
from cnn_core.optim.lr_scheduler import ReduceLROnPlateau
from cnn_core.serialization import save

MONITORS = ("train_loss", "train_acc", "val_loss", "val_acc")


class Callback:
    """Base class: override the hooks you need; each one does nothing by default.

    info (train/epoch begin): epochs, batches (per epoch), samples, batch_size, val_samples (0 without
    validation data), initial_epoch (fit's: the first epoch this run trains).
    logs at batch end: epoch, batch, batches, size (of this batch), loss (of this batch), running_loss and
    running_acc (means over the epoch so far; acc None when the targets give no accuracy), samples (seen this
    epoch), seconds (elapsed this epoch), samples_per_sec.
    logs at epoch end: train_loss, train_acc, val_loss, val_acc (None without validation data), seconds,
    samples_per_sec: the same figures History records.
    `self.model` is the model being trained (set by fit through set_model before on_train_begin).
    """

    model: Any = None

    def set_model(self, model) -> None:
        self.model = model

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
    """Steps a learning-rate scheduler inside `fit` (which takes no scheduler argument): the usual PyTorch
    loop's `scheduler.step()`.

    interval: 'epoch' (after each finished epoch, e.g. StepLR, CosineAnnealingLR) or 'batch' (after each
    optimizer step, e.g. OneCycleLR). monitor: a History name ('val_loss', ...) whose value the epoch's step
    is given, for ReduceLROnPlateau (`scheduler.step(logs[monitor])`); required for it, epoch interval only.
    """

    def __init__(self, scheduler, interval: str = "epoch", monitor: str | None = None) -> None:
        if not callable(getattr(scheduler, "step", None)):
            raise TypeError(f"scheduler: expected a learning-rate scheduler with a step() method (e.g. "
                            f"cnn_core.optim.StepLR), got {type(scheduler).__name__}")
        self.scheduler = scheduler
        self.interval = check_choice(interval, "interval", ("epoch", "batch"))
        if monitor is not None:
            monitor = check_choice(monitor, "monitor", MONITORS)
            if self.interval != "epoch":
                raise ValueError("monitor: a monitored value exists once per epoch; use interval='epoch'")
        elif isinstance(scheduler, ReduceLROnPlateau):
            raise ValueError("monitor: ReduceLROnPlateau steps on a metric; pass e.g. monitor='val_loss'")
        self.monitor = monitor

    def on_train_begin(self, info: dict[str, Any]) -> None:
        _check_monitor_available(self.monitor, info)

    def on_batch_end(self, batch: int, logs: dict[str, Any]) -> None:
        if self.interval == "batch":
            self.scheduler.step()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        if self.interval == "epoch":
            if self.monitor is None:
                self.scheduler.step()
            else:
                self.scheduler.step(_monitored(self.monitor, logs))


def _check_monitor_available(monitor: str | None, info: dict[str, Any]) -> None:
    if monitor is not None and monitor.startswith("val_") and not info.get("val_samples"):
        raise ValueError(f"monitor: {monitor!r} needs validation data (fit's validation_data or "
                         "validation_split)")


def _monitored(monitor: str, logs: dict[str, Any]) -> float:
    value = logs.get(monitor)
    if value is None:
        raise ValueError(f"monitor: {monitor!r} has no value in this run (accuracy needs class labels)")
    return value


def _mode(mode: str, monitor: str) -> str:
    mode = check_choice(mode, "mode", ("auto", "min", "max"))
    return ("max" if monitor.endswith("acc") else "min") if mode == "auto" else mode


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


class EarlyStopping(Callback):
    """Stop training when the monitored figure stops improving (Keras's EarlyStopping).

    An epoch improves when its value beats the best so far by more than min_delta (mode 'min': value <
    best - min_delta; 'max': value > best + min_delta; 'auto': 'max' for accuracies, else 'min'); with a
    baseline, the best starts there. After `patience` epochs in a row without improvement, it sets
    model.stop_training. restore_best_weights: when the run ends (stopped or not, on any exit path) the model
    gets back the weights of its best epoch, if that was not the last one. stopped_epoch and best_epoch are
    0-based epoch indices (stopped_epoch None when it did not stop the run).
    """

    def __init__(self, monitor: str = "val_loss", *, min_delta: float = 0.0, patience: int = 0,
                 mode: str = "auto", baseline: float | None = None, restore_best_weights: bool = False) -> None:
        self.monitor = check_choice(monitor, "monitor", MONITORS)
        self.min_delta = abs(check_real(min_delta, "min_delta"))
        self.patience = check_int(patience, "patience", 0)
        self.mode = _mode(mode, self.monitor)
        self.baseline = None if baseline is None else check_real(baseline, "baseline")
        self.restore_best_weights = check_bool(restore_best_weights, "restore_best_weights")

    def _improves(self, value: float, best: float) -> bool:
        return value < best - self.min_delta if self.mode == "min" else value > best + self.min_delta

    def on_train_begin(self, info: dict[str, Any]) -> None:
        _check_monitor_available(self.monitor, info)
        self.wait = 0
        self.best = self.baseline if self.baseline is not None else (math.inf if self.mode == "min" else -math.inf)
        self.best_epoch = self.stopped_epoch = self.best_weights = self._last_epoch = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        value = _monitored(self.monitor, logs)
        self._last_epoch = epoch
        if self._improves(value, self.best):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = self.model.state_dict()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, history: "History") -> None:
        if self.restore_best_weights and self.best_weights is not None and self.best_epoch != self._last_epoch:
            self.model.load_state_dict(self.best_weights)


class ModelCheckpoint(Callback):
    """Save the model (cnn_core.save: architecture and weights, written atomically) after each epoch, or
    only when the monitored figure improved (save_best_only; mode as EarlyStopping's). `filepath` may hold
    format fields: {epoch} (1-based, as Keras) and the History names, e.g. "ckpt-{epoch:02d}-{val_loss:.3f}.npz".
    best: the best monitored value so far.
    """

    def __init__(self, filepath: str | os.PathLike, monitor: str = "val_loss", *, save_best_only: bool = False,
                 mode: str = "auto") -> None:
        self.filepath = os.fsdecode(check_path(filepath, "filepath"))
        self.monitor = check_choice(monitor, "monitor", MONITORS)
        self.save_best_only = check_bool(save_best_only, "save_best_only")
        self.mode = _mode(mode, self.monitor)

    def on_train_begin(self, info: dict[str, Any]) -> None:
        if self.save_best_only:
            _check_monitor_available(self.monitor, info)
        self.best = math.inf if self.mode == "min" else -math.inf

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        if self.save_best_only:
            value = _monitored(self.monitor, logs)
            if not (value < self.best if self.mode == "min" else value > self.best):
                return
            self.best = value
        path = self.filepath.format(epoch=epoch + 1, **{k: logs.get(k) for k in MONITORS})
        save(self.model, path)  # atomic: a crash mid-write leaves the previous file


class CSVLogger(Callback):
    """Write one CSV row per finished epoch: epoch (0-based, as Keras), then History's figures (empty for None).
    The header is written when the file is new or append is False; each row is flushed as it is written, and
    the file is closed on every exit path."""

    COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "seconds", "samples_per_sec")

    def __init__(self, filename: str | os.PathLike, separator: str = ",", append: bool = False) -> None:
        self.filename = os.fsdecode(check_path(filename, "filename"))
        if not isinstance(separator, str) or len(separator) != 1 or separator in "\r\n\"":
            raise ValueError(f"separator: expected one character (not a quote or newline), got {separator!r}")
        self.separator = separator
        self.append = check_bool(append, "append")
        self._file = None

    def on_train_begin(self, info: dict[str, Any]) -> None:
        header = not (self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0)
        self._file = open(self.filename, "a" if self.append else "w", encoding="utf-8")
        if header:
            self._write(self.COLUMNS)

    def _write(self, cells) -> None:
        self._file.write(self.separator.join(cells) + "\n")
        self._file.flush()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        cells = [str(epoch)] + ["" if logs.get(k) is None else repr(float(logs[k])) for k in self.COLUMNS[1:]]
        self._write(cells)

    def on_train_end(self, history: "History") -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


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
