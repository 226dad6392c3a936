"""cnn_core.plotting (issue 9: moved out of the CLI): matplotlib imported lazily with one error naming the
plot extra, the drawn curves are the history's figures, the PNG is written atomically, the caller's matplotlib
state is left alone, and bad arguments."""
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

import cnn_core
from cnn_core import nn, optim
from cnn_core.callbacks import History
from cnn_core.models import Perceptron
from cnn_core.plotting import INSTALL_HINT, plot_history, require_matplotlib

HAS_MPL = importlib.util.find_spec("matplotlib") is not None
needs_mpl = pytest.mark.skipif(not HAS_MPL, reason="matplotlib (the plot extra) is not installed")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_importing_cnn_core_and_plotting_does_not_import_matplotlib(tmp_path):
    code = "import sys, cnn_core, cnn_core.plotting, cnn_core.cli.main; print('matplotlib' in sys.modules)"
    # cwd: `python -c` puts the current directory first on sys.path, where the unbuilt source tree would
    # shadow the installed package.
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tmp_path).stdout
    assert out.strip() == "False"


def test_missing_matplotlib_is_one_import_error_naming_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what `import matplotlib` sees when it is absent
    for call in (require_matplotlib, lambda: plot_history([1.0, 0.5], tmp_path / "c.png")):
        with pytest.raises(ImportError, match="needs matplotlib") as e:
            call()
        assert INSTALL_HINT in str(e.value) and INSTALL_HINT == 'pip install "cnn_core[plot]"'
        assert e.value.name == "matplotlib"
    assert os.listdir(tmp_path) == []


def fitted_history(epochs: int = 3) -> History:
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 4)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = nn.Sequential(nn.Linear(4, 6, rng=0), nn.ReLU(), nn.Linear(6, 2, rng=1))
    return cnn_core.fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), X[:30], y[:30],
                        epochs=epochs, batch_size=10, validation_data=(X[30:], y[30:]), seed=0)


@needs_mpl
def test_the_curves_are_the_history_and_the_png_is_written(tmp_path):
    import matplotlib
    backend = matplotlib.get_backend()
    pyplot_before = "matplotlib.pyplot" in sys.modules
    h = fitted_history()
    fig = plot_history(h, tmp_path / "curves.png", title="tiny", loss_label="cross-entropy loss")
    loss_ax, acc_ax = fig.axes
    epochs = [1, 2, 3]
    for ax, (train, val) in ((loss_ax, (h.train_loss, h.val_loss)),
                             (acc_ax, ([100 * v for v in h.train_acc], [100 * v for v in h.val_acc]))):
        assert [list(line.get_xdata()) for line in ax.lines] == [epochs, epochs]
        np.testing.assert_allclose(ax.lines[0].get_ydata(), train, rtol=1e-12)
        np.testing.assert_allclose(ax.lines[1].get_ydata(), val, rtol=1e-12)
    assert loss_ax.get_ylabel() == "cross-entropy loss" and acc_ax.get_ylabel() == "accuracy (%)"
    assert fig._suptitle.get_text() == "tiny"
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG_MAGIC
    assert os.listdir(tmp_path) == ["curves.png"]  # no temporary left
    # the caller's matplotlib is as it was: same backend, pyplot not pulled in
    assert matplotlib.get_backend() == backend
    assert ("matplotlib.pyplot" in sys.modules) == pyplot_before


@needs_mpl
def test_an_estimator_loss_curve_is_one_panel_and_no_path_writes_nothing(tmp_path):
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    est = Perceptron(max_epochs=6, random_state=0).fit(X, np.array([0, 1, 1, 1]))
    fig = plot_history(est.loss_curve_, loss_label="perceptron loss L(w, b)")
    (ax,) = fig.axes
    assert list(ax.lines[0].get_xdata()) == list(range(1, len(est.loss_curve_) + 1))
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), est.loss_curve_)
    assert ax.get_legend() is None  # one curve: nothing to tell apart
    assert os.listdir(tmp_path) == []


@needs_mpl
def test_validation_free_history_leaves_out_the_missing_points():
    h = History()
    for loss in (0.9, 0.5):
        h.append({"train_loss": loss, "train_acc": None, "val_loss": None, "val_acc": None, "seconds": 1.0,
                  "samples_per_sec": 1.0})
    (ax,) = plot_history(h).axes  # no accuracy anywhere: the loss panel alone
    assert len(ax.lines) == 1 and list(ax.lines[0].get_ydata()) == [0.9, 0.5]


@needs_mpl
def test_a_failed_write_keeps_the_old_picture(tmp_path, monkeypatch):
    from matplotlib.figure import Figure
    path = tmp_path / "c.png"
    plot_history([1.0, 0.5], path)
    before = path.read_bytes()

    def half_then_fail(self, f, **kwargs):
        f.write(PNG_MAGIC + b"half a picture")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        plot_history([2.0, 1.0], path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["c.png"]
    with pytest.raises(FileNotFoundError, match="plot_history: no such directory"):
        plot_history([1.0], tmp_path / "no" / "c.png")


@pytest.mark.parametrize("args, kwargs, exc, match", [
    (({"loss": [1.0]},), {}, TypeError, "history: expected a cnn_core.callbacks.History or a sequence"),
    (("1.0",), {}, TypeError, "history: expected"),
    (([[1.0, 2.0]],), {}, TypeError, r"history: .* 1-D sequence of loss values, got float64 of shape \(1, 2\)"),
    (([],), {}, ValueError, "history: expected at least one finished epoch"),
    ((History(),), {}, ValueError, "history: expected at least one finished epoch"),
    (([1.0], 5), {}, TypeError, "path: expected a str or os.PathLike"),
    (([1.0],), {"title": 5}, TypeError, "title: expected a str or None, got int"),
    (([1.0],), {"loss_label": None}, TypeError, "loss_label: expected a str, got NoneType"),
])
def test_bad_arguments(args, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        plot_history(*args, **kwargs)
