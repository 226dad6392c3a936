"""callbacks.ProgressBar: the epoch lines carry History's figures, the live bar draws and clears in place on a
terminal and stays out of logs; format_duration; bad arguments."""
import io
import re

import numpy as np
import pytest

import cnn_core
from cnn_core import nn, optim
from cnn_core.callbacks import ProgressBar, format_duration


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def train(bar: ProgressBar, classify: bool = True, epochs: int = 2):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64) if classify else X[:, :2].copy()
    model = nn.Sequential(nn.Linear(4, 2, rng=0))
    loss = nn.CrossEntropyLoss() if classify else nn.MSELoss()
    return cnn_core.fit(model, loss, optim.SGD(model.parameters(), lr=0.1), X[:50], y[:50], epochs=epochs,
                        batch_size=8, validation_data=(X[50:], y[50:]), seed=0, callbacks=[bar])


def on_screen(text: str) -> list[str]:
    """What a terminal shows: each carriage return sends the cursor back to column 0 of the line."""
    shown = []
    for line in text.split("\n"):
        screen = ""
        for part in line.split("\r"):
            screen = part + screen[len(part):]
        shown.append(screen.rstrip())
    return [s for s in shown if s]


def test_epoch_lines_carry_the_history_figures():
    out = io.StringIO()
    history = train(ProgressBar(out))
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == 2
    for epoch, line in enumerate(lines):
        m = re.fullmatch(r"epoch (\d)/2  loss (\S+)  acc (\S+)%  val_loss (\S+)  val_acc (\S+)%  (\S+)s  "
                         r"([\d,]+) samples/s", line)
        assert m, line
        assert int(m[1]) == epoch + 1
        assert m[2] == f"{history.train_loss[epoch]:.4f}" and m[3] == f"{100 * history.train_acc[epoch]:.2f}"
        assert m[4] == f"{history.val_loss[epoch]:.4f}" and m[5] == f"{100 * history.val_acc[epoch]:.2f}"
        assert m[7] == f"{history.samples_per_sec[epoch]:,.0f}"


def test_without_accuracy_the_acc_columns_are_left_out():
    out = io.StringIO()
    train(ProgressBar(out, live=False), classify=False, epochs=1)
    line = out.getvalue().strip()
    assert line.startswith("epoch 1/1  loss ") and "  val_loss " in line
    assert "acc" not in line


def test_live_bar_on_a_terminal_is_replaced_by_the_epoch_lines():
    tty = TTY()
    ProgressBar.REFRESH, saved = 0.0, ProgressBar.REFRESH  # draw after every batch
    try:
        train(ProgressBar(tty, width=10))
    finally:
        ProgressBar.REFRESH = saved
    text = tty.getvalue()
    assert "\r" in text and "ETA" in text
    for done in range(1, 8):  # 50 samples in batches of 8: 7 batches
        assert f"] {done}/7  loss " in text
    assert "epoch 2/2 [==========] 7/7" in text and "epoch 1/2 [..........] 0/7" in text
    # once each epoch ends, the terminal shows exactly the lines a log gets
    log = io.StringIO()
    train(ProgressBar(log, live=False))
    assert without_times(on_screen(text)) == without_times(log.getvalue().splitlines())


def without_times(lines: list[str]) -> list[str]:
    return [re.sub(r"  \S+s  [\d,]+ samples/s$", "", s) for s in lines]


def test_the_bar_is_live_only_on_a_terminal_by_default():
    assert ProgressBar(TTY()).live and not ProgressBar(io.StringIO()).live
    assert not ProgressBar(TTY(), live=False).live and ProgressBar(io.StringIO(), live=True).live


def test_an_interrupted_epoch_leaves_no_half_drawn_bar():
    tty = TTY()
    bar = ProgressBar(tty, width=4)
    bar.on_train_begin({"epochs": 3})
    bar.on_epoch_begin(0, {"batches": 5})
    bar.on_batch_end(0, {"epoch": 0, "batches": 5, "running_loss": 1.5, "running_acc": None, "seconds": 0.5,
                         "samples_per_sec": 64.0})
    bar.on_train_end(None)
    assert on_screen(tty.getvalue()) == [] and tty.getvalue().endswith("\r")


@pytest.mark.parametrize("seconds, text", [(0, "0.0s"), (4.24, "4.2s"), (59.94, "59.9s"), (123, "2:03"),
                                           (3723, "1:02:03"), (36000, "10:00:00")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"stream": 5}, TypeError, "stream: expected a text stream with write"),
    ({"width": 0}, ValueError, r"width: expected a positive int < 2\*\*31, got 0"),
    ({"width": 2.5}, TypeError, "width: expected a positive int"),
    ({"live": "yes"}, TypeError, "live: expected True, False or None, got 'yes'"),
])
def test_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ProgressBar(**kwargs)
