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


# ---- confusion matrix, filters, feature maps, decision boundaries (issue 11) --------------------------------

from cnn_core.metrics import confusion_matrix  # noqa: E402
from cnn_core.models import LinearSVM, lenet5  # noqa: E402
from cnn_core.plotting import (decision_grid, plot_confusion_matrix, plot_decision_boundary,  # noqa: E402
                               plot_feature_maps, plot_filters)

GATE_X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
GATES = {"AND": np.array([0, 0, 0, 1]), "OR": np.array([0, 1, 1, 1]), "XOR": np.array([0, 1, 1, 0])}


def small_conv_net():
    return nn.Sequential(nn.Conv2d(1, 5, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(5, 7, 3, rng=1), nn.ReLU(), nn.Flatten(), nn.Linear(7 * 2 * 2, 3, rng=2))


@needs_mpl
def test_confusion_heatmap_is_the_matrix_with_its_counts_written(tmp_path):
    rng = np.random.default_rng(1)
    y_true, y_pred = rng.integers(0, 4, 60), rng.integers(0, 4, 60)
    cm = confusion_matrix(y_true, y_pred)
    fig = plot_confusion_matrix(cm, tmp_path / "cm.png", labels=["a", "b", "c", "d"], title="four")
    ax = fig.axes[0]  # the heatmap; fig.axes[1] is its colour bar
    assert len(fig.axes) == 2 and len(ax.images) == 1
    np.testing.assert_array_equal(ax.images[0].get_array(), cm)
    assert [t.get_text() for t in ax.texts] == [str(v) for v in cm.ravel()]  # row by row
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c", "d"]
    assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class" and ax.get_title() == "four"
    assert (tmp_path / "cm.png").read_bytes()[:8] == PNG_MAGIC and os.listdir(tmp_path) == ["cm.png"]


@needs_mpl
def test_filters_are_one_panel_per_output_channel_showing_the_kernel(tmp_path):
    model = small_conv_net()
    fig = plot_filters(model, tmp_path / "f.png")
    w = model[0].weight.data
    assert len(fig.axes) == w.shape[0] == 5  # the first Conv2d's, not the second's 7
    for f, ax in enumerate(fig.axes):
        np.testing.assert_allclose(ax.images[0].get_array(), w[f, 0], rtol=1e-6)
    assert (tmp_path / "f.png").read_bytes()[:8] == PNG_MAGIC
    # lenet5's 6 filters; three input channels are drawn as RGB pictures, other counts as the channel mean
    assert len(plot_filters(lenet5(rng=0)).axes) == 6
    rgb = nn.Conv2d(3, 4, 3, rng=0)
    img = plot_filters(rgb).axes[2].images[0].get_array()
    w2 = rgb.weight.data[2].astype(np.float64)
    np.testing.assert_allclose(img, np.moveaxis((w2 - w2.min()) / (w2.max() - w2.min()), 0, -1), rtol=1e-6)
    second = model[3]
    np.testing.assert_allclose(plot_filters(second).axes[6].images[0].get_array(),
                               second.weight.data[6].mean(axis=0), rtol=1e-6)


@needs_mpl
def test_feature_maps_are_the_layer_output_and_the_hook_is_removed(tmp_path):
    model = small_conv_net()
    image = np.random.default_rng(2).standard_normal((1, 8, 8)).astype(np.float32)
    model.train()
    fig = plot_feature_maps(model, image, model[1], tmp_path / "maps.png")
    model.eval()
    expected = model[1](model[0](image[None]))[0]  # the ReLU's output for this image
    assert len(fig.axes) == expected.shape[0] == 5
    for c, ax in enumerate(fig.axes):
        np.testing.assert_allclose(ax.images[0].get_array(), expected[c], rtol=1e-6)
    assert model[1]._forward_hooks == {}  # the hook is gone
    assert (tmp_path / "maps.png").read_bytes()[:8] == PNG_MAGIC
    # a name among the children, a 2-D image, max_maps; the model's mode is left as it was
    model.train()
    fig = plot_feature_maps(model, image[0], "3", max_maps=4)
    assert model.training and model[3].training
    expected = model[3](model[2](model[1](model[0](image[None]))))[0]
    assert len(fig.axes) == 4
    np.testing.assert_allclose(fig.axes[3].images[0].get_array(), expected[3], rtol=1e-6)


@needs_mpl
def test_the_hook_is_removed_when_the_forward_fails():
    model = small_conv_net()
    with pytest.raises(ValueError):
        plot_feature_maps(model, np.zeros((2, 8, 8), np.float32), model[0])  # 2 channels into a 1-channel conv
    assert model[0]._forward_hooks == {}


def _fitted_models():
    """(name, model, X, y): the deck's pictures. Perceptron on AND, the SVM on OR, a 2-8-2 MLP on XOR."""
    X, and_, or_, xor = GATE_X, GATES["AND"], GATES["OR"], GATES["XOR"]
    perceptron = Perceptron(random_state=0).fit(X, and_)
    # C=10: with the default C=1 the regularizer wins on four points and the SVM misclassifies (0, 0)
    svm = LinearSVM(C=10.0, lr=0.1, max_epochs=500, batch_size=4, random_state=0).fit(X, or_)
    cnn_core.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 8, rng=0), nn.Tanh(), nn.Linear(8, 2, rng=1))
    cnn_core.fit(net, nn.CrossEntropyLoss(), optim.Adam(net.parameters(), lr=0.05), X.astype(np.float32), xor,
                 epochs=300, batch_size=4, seed=0)
    return [("perceptron AND", perceptron, X, and_), ("svm OR", svm, X, or_), ("mlp XOR", net, X, xor)]


@needs_mpl
def test_decision_regions_are_the_model_predictions_on_the_grid(tmp_path):
    for name, model, X, y in _fitted_models():
        resolution = 31
        fig = plot_decision_boundary(model, X, y, tmp_path / f"{name}.png", resolution=resolution, title=name)
        (ax,) = fig.axes
        regions = ax.images[0].get_array()
        xs, ys = decision_grid(X, resolution)
        # the image's pixel centres are the grid points
        left, right, bottom, top = ax.images[0].get_extent()
        np.testing.assert_allclose(left + (np.arange(resolution) + 0.5) * (right - left) / resolution, xs)
        np.testing.assert_allclose(bottom + (np.arange(resolution) + 0.5) * (top - bottom) / resolution, ys)
        gx, gy = np.meshgrid(xs, ys)
        grid = np.column_stack([gx.ravel(), gy.ravel()])
        if isinstance(model, nn.Module):
            expected = cnn_core.predict(model, grid.astype(np.float32)).argmax(axis=1)
            assert (cnn_core.predict(model, X.astype(np.float32)).argmax(axis=1) == y).all()
        else:
            assert model.score(X, y) == 1.0  # the gate is learnt: the picture shows a separating line
            expected = model.predict(grid)
        np.testing.assert_array_equal(regions, expected.reshape(resolution, resolution))
        assert len(np.unique(regions)) == 2  # both classes have a region
        assert len(ax.collections) == 2  # the points of each class
        np.testing.assert_array_equal(np.vstack([c.get_offsets() for c in ax.collections]),
                                      np.vstack([X[y == 0], X[y == 1]]))
        assert ax.get_title() == name and (tmp_path / f"{name}.png").read_bytes()[:8] == PNG_MAGIC


@needs_mpl
def test_decision_regions_of_a_single_output_network_threshold_at_one_half():
    cnn_core.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 1, rng=0), nn.Sigmoid())
    ax = plot_decision_boundary(net, GATE_X, GATES["AND"], resolution=9).axes[0]
    xs, ys = decision_grid(GATE_X, 9)
    gx, gy = np.meshgrid(xs, ys)
    p = cnn_core.predict(net, np.column_stack([gx.ravel(), gy.ravel()]).astype(np.float32))[:, 0]
    np.testing.assert_array_equal(ax.images[0].get_array(), (p > 0.5).reshape(9, 9))


@pytest.mark.parametrize("call, exc, match", [
    (lambda: plot_confusion_matrix([[1, 2], [3, 4]]), TypeError, "matrix: expected a numpy.ndarray"),
    (lambda: plot_confusion_matrix(np.ones((2, 3))), ValueError, r"matrix: expected a non-empty square .* \(2, 3\)"),
    (lambda: plot_confusion_matrix(-np.eye(2)), ValueError, "matrix: expected non-negative"),
    (lambda: plot_confusion_matrix(np.eye(2), labels=["a"]), ValueError, "labels: expected 2 class names"),
    (lambda: plot_confusion_matrix(np.eye(2), labels="ab"), TypeError, "labels: expected a sequence"),
    (lambda: plot_confusion_matrix(np.eye(2), 3), TypeError, "path: expected a str or os.PathLike"),
    (lambda: plot_confusion_matrix(np.eye(2), title=1), TypeError, "title: expected a str or None"),
    (lambda: plot_filters("lenet5"), TypeError, "model: expected a cnn_core.nn.Module, got str"),
    (lambda: plot_filters(nn.Sequential(nn.Linear(2, 2))), ValueError, "model: expected a network with a Conv2d"),
    (lambda: plot_feature_maps(small_conv_net(), [[0.0]], "0"), TypeError, "image: expected a numpy.ndarray"),
    (lambda: plot_feature_maps(small_conv_net(), np.zeros(8), "0"), ValueError, "image: expected one image"),
    (lambda: plot_feature_maps(small_conv_net(), np.zeros((8, 8), np.uint8), "0"), TypeError,
     "image: expected a floating-point array, got dtype uint8"),
    (lambda: plot_feature_maps(small_conv_net(), np.zeros((8, 8)), "9"), ValueError, "layer: expected the name"),
    (lambda: plot_feature_maps(small_conv_net(), np.zeros((8, 8)), nn.ReLU()), ValueError,
     "layer: expected a module of the model"),
    (lambda: plot_feature_maps(small_conv_net(), np.zeros((8, 8)), 0), TypeError, "layer: expected a cnn_core"),
    pytest.param(lambda: plot_feature_maps(small_conv_net(), np.zeros((8, 8), np.float32), "6"), ValueError,
                 r"layer: expected a layer whose output is maps .* \(1, 3\)", marks=needs_mpl),
    (lambda: plot_feature_maps(small_conv_net(), np.zeros((8, 8)), "0", max_maps=0), ValueError, "max_maps"),
    (lambda: plot_decision_boundary(object(), GATE_X, GATES["OR"]), TypeError, "model: expected a fitted"),
    (lambda: plot_decision_boundary(Perceptron(), GATE_X[:, :1], GATES["OR"]), ValueError, r"X: .* \(n, 2\)"),
    (lambda: plot_decision_boundary(Perceptron(), "X", GATES["OR"]), TypeError, "X: expected a numpy.ndarray"),
    (lambda: plot_decision_boundary(Perceptron(), GATE_X, [0, 1]), ValueError, "y: expected 4 labels"),
    (lambda: plot_decision_boundary(Perceptron(), GATE_X, GATES["OR"], resolution=1), ValueError, "resolution"),
    (lambda: plot_decision_boundary(Perceptron(), GATE_X, GATES["OR"], resolution=2.0), TypeError, "resolution"),
])
def test_bad_arguments_of_the_pictures(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_every_picture_without_matplotlib_is_the_one_import_error(monkeypatch, tmp_path):
    model = small_conv_net()
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    calls = [lambda: plot_confusion_matrix(np.eye(2, dtype=np.int64), tmp_path / "a.png"),
             lambda: plot_filters(model, tmp_path / "b.png"),
             lambda: plot_feature_maps(model, np.zeros((8, 8), np.float32), "0", tmp_path / "c.png"),
             lambda: plot_decision_boundary(Perceptron().fit(GATE_X, GATES["OR"]), GATE_X, GATES["OR"],
                                            tmp_path / "d.png")]
    for call in calls:
        with pytest.raises(ImportError, match="needs matplotlib") as e:
            call()
        assert INSTALL_HINT in str(e.value)
    assert os.listdir(tmp_path) == [] and model[0]._forward_hooks == {}
