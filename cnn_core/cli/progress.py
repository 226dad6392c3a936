"""Training display as a fit callback: a live bar per epoch on a terminal, one line per epoch otherwise."""
from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from cnn_core.callbacks import Callback

_REFRESH = 0.1  # seconds between bar redraws: smooth to the eye, negligible cost per batch


def format_duration(seconds: float) -> str:
    """1:02:03 / 2:03 / 4.2s: short, fixed meaning."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _pct(acc: float | None) -> str:
    return "n/a" if acc is None else f"{100 * acc:.2f}%"


def epoch_line(epoch: int, epochs: int, logs: dict[str, Any]) -> str:
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


class EpochPrinter(Callback):
    """One line per finished epoch (logs, pipes, CI)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.epochs = 0

    def on_train_begin(self, info: dict[str, Any]) -> None:
        self.epochs = info["epochs"]

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        print(epoch_line(epoch, self.epochs, logs), file=self.stream, flush=True)


class ProgressBar(EpochPrinter):
    """A bar redrawn in place while an epoch runs (batches, running loss/acc, samples/s, ETA), replaced by the
    epoch's summary line when it ends. For terminals only: it relies on carriage returns."""

    def __init__(self, stream: TextIO | None = None, width: int = 24) -> None:
        super().__init__(stream)
        self.width = width
        self._last = 0.0
        self._shown = 0  # length of the bar currently on screen, to blank it out

    def on_epoch_begin(self, epoch: int, info: dict[str, Any]) -> None:
        self._last = 0.0
        self._draw(f"epoch {epoch + 1}/{self.epochs} [{'.' * self.width}] 0/{info['batches']}")

    def on_batch_end(self, batch: int, logs: dict[str, Any]) -> None:
        now = time.monotonic()
        done, total = batch + 1, logs["batches"]
        if done < total and now - self._last < _REFRESH:
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
        super().on_epoch_end(epoch, logs)

    def on_train_end(self, history) -> None:
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
