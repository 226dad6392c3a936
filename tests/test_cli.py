"""The cnn-core command line, run as a user runs it: `python -m cnn_core ...` in a subprocess.

Each run uses cwd=tmp_path (so a source tree in the current directory cannot shadow the package under test)
and PYTHONPATH pointing at the directory holding the imported cnn_core, so these tests exercise an in-place
build and an installed wheel alike. Training runs are tiny (--limit, 1-2 epochs).
"""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import struct
import subprocess
import sys
import time

import numpy as np
import pytest

import cnn_core
import cnn_core.models  # noqa: F401  (registers RNNClassifier, so cnn_core.load can rebuild it here)
from cnn_core.datasets import load_mnist

PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(cnn_core.__file__)))
HAS_MPL = importlib.util.find_spec("matplotlib") is not None
TINY = ["--limit", "300", "--epochs", "2"]
posix_only = pytest.mark.skipif(sys.platform == "win32", reason="needs a POSIX terminal and SIGINT")


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=PKG_PARENT, OMP_NUM_THREADS="1")


def cli(cwd, *args, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cnn_core", *map(str, args)], cwd=cwd, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def assert_user_error(r: subprocess.CompletedProcess, *words: str) -> None:
    """Exit 2, exactly one line on stderr naming what is wrong, no traceback, nothing on stdout."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("cnn-core: error: ")
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert r.stdout == ""


def write_idx_images(path, images: np.ndarray) -> None:
    """An IDX3 uint8 file: magic 0x00000803, the three sizes big-endian, then the pixels."""
    with open(path, "wb") as f:
        f.write(struct.pack(">I", 0x0803) + struct.pack(">3I", *images.shape) + images.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def test_images():
    X, y = load_mnist(split="test")
    return (X[:6, 0] * 255).round().astype(np.uint8), y[:6]


@pytest.fixture(scope="module")
def mlp_file(tmp_path_factory):
    """An MLP trained for 2 epochs on 300 digits, saved, with the metrics train reported."""
    d = tmp_path_factory.mktemp("mlp")
    r = cli(d, "train", "mlp", *TINY, "--save", d / "mlp.npz", "--json")
    assert r.returncode == 0, r.stderr
    return d / "mlp.npz", json.loads(r.stdout)


# ---- happy paths ------------------------------------------------------------------------------------------

def test_info(tmp_path):
    r = cli(tmp_path, "info")
    assert r.returncode == 0, r.stderr
    assert f"cnn_core {cnn_core.__version__}" in r.stdout and "OpenMP" in r.stdout
    r = cli(tmp_path, "info", "--json")
    info = json.loads(r.stdout)
    assert info["version"] == cnn_core.__version__
    assert info["openmp"] == cnn_core.openmp_enabled()
    assert os.path.isfile(os.path.join(info["embedded_data"], "t10k-images-idx3-ubyte.gz"))


def test_train_mlp_json_and_epoch_lines(mlp_file, tmp_path):
    _, result = mlp_file
    assert result["model"] == "mlp" and result["epochs"] == 2 and not result["interrupted"]
    assert len(result["history"]["train_loss"]) == 2 and len(result["history"]["val_acc"]) == 2
    assert result["test_samples"] == 300 and result["parameters"] == 784 * 100 + 100 + 100 * 10 + 10
    assert result["history"]["train_loss"][1] < result["history"]["train_loss"][0]
    assert result["test_accuracy"] > 0.5  # 10 classes: chance is 0.1
    # without --json: summary and results on stdout, one line per epoch on stderr (not a terminal)
    r = cli(tmp_path, "train", "mlp", *TINY)
    assert r.returncode == 0, r.stderr
    assert "Total params: 79,510" in r.stdout and "Test accuracy" in r.stdout
    epochs = [line for line in r.stderr.splitlines() if line.startswith("epoch")]
    assert len(epochs) == 2 and "val_acc" in epochs[0] and "samples/s" in epochs[0]
    assert "\r" not in r.stderr


def test_quiet_prints_only_the_json(tmp_path):
    r = cli(tmp_path, "train", "mlp", "--limit", "100", "--epochs", "1", "--quiet", "--json")
    assert r.returncode == 0 and r.stderr == ""
    assert json.loads(r.stdout)["epochs"] == 1


@pytest.mark.parametrize("model, extra, params", [
    ("lenet5", ["--limit", "200", "--epochs", "1"], 61706),
    ("rnn", ["--limit", "200", "--epochs", "1"], 28 * 128 + 128 * 128 + 128 + 128 + 128 * 10 + 10),
    ("rnn", ["--limit", "200", "--epochs", "1", "--cell", "lstm"], 4 * (28 * 128 + 128 * 128 + 2 * 128) + 1290),
    ("rnn", ["--limit", "200", "--epochs", "1", "--cell", "gru", "--dtype", "float64"],
     3 * (28 * 128 + 128 * 128 + 2 * 128) + 1290),
    ("mlp", ["--limit", "200", "--epochs", "1", "--optimizer", "sgd", "--lr", "0.05", "--dtype", "float64"], 79510),
])
def test_train_save_evaluate_predict_networks(tmp_path, test_images, model, extra, params):
    r = cli(tmp_path, "train", model, *extra, "--save", "m.npz", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["parameters"] == params and "Total params" in r.stderr
    # evaluate on the same test samples reproduces train's figures from the saved weights
    r = cli(tmp_path, "evaluate", "m.npz", "--limit", "200", "--json")
    assert r.returncode == 0, r.stderr
    ev = json.loads(r.stdout)
    assert ev["accuracy"] == pytest.approx(result["test_accuracy"], abs=1e-12)
    assert ev["loss"] == pytest.approx(result["test_loss"], rel=1e-6)
    m = np.array(ev["confusion_matrix"])
    assert m.shape == (10, 10) and m.sum() == 200 and np.trace(m) / 200 == pytest.approx(ev["accuracy"])
    # predict: .npy and IDX inputs agree with the model loaded in this process
    images, _ = test_images
    np.save(tmp_path / "x.npy", images)
    write_idx_images(tmp_path / "x-idx3-ubyte", images)
    loaded = cnn_core.load(tmp_path / "m.npz")
    X = images.astype(np.float32)[:, None] / np.float32(255)
    X = {"lenet5": X, "rnn": X[:, 0], "mlp": X.reshape(len(X), -1)}[model]
    logits = cnn_core.predict(loaded, X.astype(loaded.dtype)).astype(np.float64)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    for source in ("x.npy", "x-idx3-ubyte"):
        r = cli(tmp_path, "predict", "m.npz", source, "--json")
        assert r.returncode == 0, r.stderr
        rows = json.loads(r.stdout)["predictions"]
        assert [row["class"] for row in rows] == p.argmax(axis=1).tolist()
        assert [row["probability"] for row in rows] == pytest.approx(p.max(axis=1), rel=1e-5)
    r = cli(tmp_path, "predict", "m.npz", "x.npy")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == len(images) and "probability" in r.stdout


def test_evaluate_text_output(mlp_file, tmp_path):
    path, _ = mlp_file
    r = cli(tmp_path, "evaluate", path)
    assert r.returncode == 0, r.stderr
    assert "accuracy:" in r.stdout and "loss (cross-entropy)" in r.stdout and "confusion matrix" in r.stdout
    assert "2,000 samples" in r.stdout


@pytest.mark.parametrize("model, extra", [
    ("perceptron", ["--classes", "3,8"]),
    ("perceptron", ["--algorithm", "pocket", "--epochs", "2"]),
    ("svm", []),
    ("svm", ["--classes", "0,1", "--algorithm", "gd"]),
])
def test_train_save_evaluate_predict_estimators(tmp_path, test_images, model, extra):
    r = cli(tmp_path, "train", model, "--limit", "300", *extra, "--save", "e.npz", "--json")
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["epochs"] >= 1 and len(result["loss_curve"]) == result["epochs"]
    assert result["test_accuracy"] > 0.5
    if model == "perceptron":
        assert result["updates"] >= 1 and isinstance(result["converged"], bool)
    assert (result["classes"] == [3, 8]) if "3,8" in extra else len(result["classes"]) >= 2
    r = cli(tmp_path, "evaluate", "e.npz", "--limit", "300", "--json")
    assert r.returncode == 0, r.stderr
    ev = json.loads(r.stdout)
    assert ev["accuracy"] == pytest.approx(result["test_accuracy"], abs=1e-12)
    assert ev["samples"] == result["test_samples"]
    np.save(tmp_path / "x.npy", test_images[0])
    r = cli(tmp_path, "predict", "e.npz", "x.npy", "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["predictions"]
    assert len(rows) == 6 and all(row["class"] in result["classes"] for row in rows)


@posix_only
def test_progress_bar_on_a_terminal(tmp_path):
    """stderr a terminal: the bar redraws in place with batches, loss, samples/s and ETA."""
    import pty

    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "cnn_core", "train", "mlp", "--limit", "2000", "--epochs", "2",
                          "--batch-size", "4"], cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL,
                         stderr=slave)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert p.wait(timeout=60) == 0
    out = b"".join(chunks).decode()
    assert "\r" in out and "ETA" in out and "samples/s" in out and "/450" in out
    assert "epoch 2/2" in out and "val_acc" in out


@pytest.mark.skipif(not HAS_MPL, reason="matplotlib (the plot extra) is not installed")
@pytest.mark.parametrize("model", ["mlp", "svm"])
def test_plot_writes_png(tmp_path, model):
    r = cli(tmp_path, "train", model, *TINY, "--plot", "curves.png")
    assert r.returncode == 0, r.stderr
    data = (tmp_path / "curves.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


@pytest.mark.skipif(HAS_MPL, reason="matplotlib is installed")
def test_plot_without_matplotlib_says_how_to_install(tmp_path):
    r = cli(tmp_path, "train", "mlp", *TINY, "--plot", "curves.png")
    assert_user_error(r, "matplotlib", 'pip install "cnn_core[plot]"')
    assert not (tmp_path / "curves.png").exists()


@posix_only
def test_ctrl_c_stops_cleanly_and_keeps_the_last_epoch(tmp_path):
    p = subprocess.Popen([sys.executable, "-m", "cnn_core", "train", "mlp", "--limit", "2000", "--epochs", "1000",
                          "--batch-size", "4", "--save", "m.npz", "--json"], cwd=tmp_path, env=_env(),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         # a terminal's Ctrl-C: default SIGINT handling in the child even when the suite runs
                         # as a background job of a shell without job control, which ignores SIGINT (and
                         # Python then installs no KeyboardInterrupt handler)
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = p.stderr.readline()
        if not line:
            break
        lines.append(line)
        if line.split()[:2] == ["epoch", "1/1000"]:
            break
    assert lines and lines[-1].split()[:2] == ["epoch", "1/1000"], lines
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    err = "".join(lines) + err
    assert p.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err
    result = json.loads(out)
    assert result["interrupted"] and result["epochs"] >= 1 and result["saved"] == "m.npz"
    model = cnn_core.load(tmp_path / "m.npz")
    # the saved weights are the ones the reported test accuracy was measured on
    r = cli(tmp_path, "evaluate", "m.npz", "--limit", "2000", "--json")
    assert json.loads(r.stdout)["accuracy"] == pytest.approx(result["test_accuracy"], abs=1e-12)
    assert sum(p.data.size for p in model.parameters()) == 79510


# ---- user errors: exit 2, one line, no traceback ----------------------------------------------------------

@pytest.mark.parametrize("args, words", [
    (["train", "resnet"], ["invalid choice", "resnet"]),
    (["train"], ["MODEL"]),
    (["fly"], ["invalid choice"]),
    (["train", "mlp", "--epochs", "abc"], ["--epochs", "abc"]),
    (["train", "mlp", "--epochs", "0"], ["--epochs", "positive"]),
    (["train", "mlp", "--lr", "-1"], ["--lr", "positive"]),
    (["train", "mlp", "--lr", "nan"], ["--lr"]),
    (["train", "mlp", "--batch-size", "2.5"], ["--batch-size"]),
    (["train", "mlp", "--momentum", "1.5", "--optimizer", "sgd"], ["--momentum"]),
    (["train", "mlp", "--threads", "-2"], ["--threads"]),
    (["train", "mlp", "--optimizer", "rmsprop"], ["--optimizer"]),
    (["train", "mlp", "--dtype", "float16"], ["--dtype"]),
    (["train", "mlp", "--momentum", "0.5"], ["--momentum", "sgd"]),
    (["train", "mlp", "--classes", "3,8"], ["--classes", "perceptron"]),
    (["train", "lenet5", "--algorithm", "pocket"], ["--algorithm"]),
    (["train", "perceptron", "--optimizer", "adam"], ["--optimizer", "perceptron"]),
    (["train", "perceptron", "--batch-size", "8"], ["--batch-size"]),
    (["train", "perceptron", "--algorithm", "magic"], ["--algorithm", "primal"]),
    (["train", "svm", "--dtype", "float32"], ["--dtype", "float64"]),
    (["train", "perceptron", "--classes", "3"], ["--classes", "'3'"]),
    (["train", "perceptron", "--classes", "3,x"], ["--classes"]),
    (["train", "svm", "--classes", "4,4"], ["--classes", "different"]),
    (["train", "svm", "--classes", "3,42"], ["--classes", "42"]),
    (["train", "mlp", "--data", "no/such/dir"], ["no/such/dir"]),
    (["train", "mlp", "--save", "no/such/dir/m.npz"], ["--save", "does not exist"]),
    (["evaluate", "missing.npz"], ["MODEL_FILE", "missing.npz"]),
    (["evaluate"], ["MODEL_FILE"]),
    (["predict", "missing.npz", "x.npy"], ["MODEL_FILE", "missing.npz"]),
])
def test_user_errors(tmp_path, args, words):
    assert_user_error(cli(tmp_path, *args), *words)


def test_empty_data_directory(tmp_path):
    (tmp_path / "data").mkdir()
    assert_user_error(cli(tmp_path, "train", "mlp", "--data", "data"), "--data", "train-images-idx3-ubyte")


def test_corrupt_model_files(tmp_path, mlp_file):
    path, _ = mlp_file
    (tmp_path / "junk.npz").write_bytes(b"this is not a model" * 10)
    assert_user_error(cli(tmp_path, "evaluate", "junk.npz"), "MODEL_FILE", "junk.npz")
    (tmp_path / "cut.npz").write_bytes(path.read_bytes()[:300])
    assert_user_error(cli(tmp_path, "evaluate", "cut.npz"), "MODEL_FILE", "cut.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    assert_user_error(cli(tmp_path, "predict", "other.npz", "x.npy"), "MODEL_FILE", "other.npz")
    (tmp_path / "dir.npz").mkdir()
    assert_user_error(cli(tmp_path, "evaluate", "dir.npz"), "MODEL_FILE", "directory")


def test_corrupt_estimator_file(tmp_path):
    r = cli(tmp_path, "train", "perceptron", "--limit", "100", "--classes", "0,1", "--save", "p.npz", "--quiet")
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "p.npz") as npz:
        fields = dict(npz)
    fields["coef_"] = np.zeros((3, 784))  # two classes need one row of weights
    np.savez(tmp_path / "bad.npz", **fields)
    assert_user_error(cli(tmp_path, "evaluate", "bad.npz"), "MODEL_FILE", "bad.npz", "shapes")


def test_bad_predict_inputs(tmp_path, mlp_file):
    path, _ = mlp_file
    assert_user_error(cli(tmp_path, "predict", path, "none.npy"), "INPUT", "none.npy")
    np.save(tmp_path / "small.npy", np.zeros((3, 20, 20), dtype=np.uint8))
    assert_user_error(cli(tmp_path, "predict", path, "small.npy"), "INPUT", "(20, 20)", "784")
    np.save(tmp_path / "flat.npy", np.zeros(784, dtype=np.float32))
    assert_user_error(cli(tmp_path, "predict", path, "flat.npy"), "INPUT", "(784,)")
    np.save(tmp_path / "nan.npy", np.full((2, 28, 28), np.nan, dtype=np.float32))
    assert_user_error(cli(tmp_path, "predict", path, "nan.npy"), "INPUT", "NaN")
    (tmp_path / "junk.npy").write_bytes(b"\x93NUMPY garbage")
    assert_user_error(cli(tmp_path, "predict", path, "junk.npy"), "INPUT", "junk.npy")
    (tmp_path / "junk-idx").write_bytes(b"\x00\x00\x08\x03\x00\x00")
    assert_user_error(cli(tmp_path, "predict", path, "junk-idx"), "INPUT", "junk-idx")


def test_cell_is_only_for_rnn(tmp_path):
    assert_user_error(cli(tmp_path, "train", "mlp", "--cell", "lstm"), "--cell", "rnn")
    r = cli(tmp_path, "train", "rnn", "--cell", "transformer")
    assert r.returncode == 2 and "--cell" in r.stderr and "lstm" in r.stderr


def test_wrong_image_shape_for_lenet5_and_rnn(tmp_path):
    for model in ("lenet5", "rnn"):
        r = cli(tmp_path, "train", model, "--limit", "50", "--epochs", "1", "--save", f"{model}.npz", "--quiet")
        assert r.returncode == 0, r.stderr
    np.save(tmp_path / "big.npy", np.zeros((2, 32, 32), dtype=np.uint8))  # LeNet's flatten gets 576, not 400
    assert_user_error(cli(tmp_path, "predict", "lenet5.npz", "big.npy"), "INPUT", "(32, 32)")
    assert_user_error(cli(tmp_path, "predict", "rnn.npz", "big.npy"), "INPUT", "28 pixels")
    np.save(tmp_path / "rgb.npy", np.zeros((2, 3, 28, 28), dtype=np.float32))
    assert_user_error(cli(tmp_path, "predict", "lenet5.npz", "rgb.npy"), "INPUT", "1 channel")


def test_divergence_is_one_line_and_exit_1(tmp_path):
    r = cli(tmp_path, "train", "mlp", "--optimizer", "sgd", "--momentum", "0", "--lr", "1e30", "--limit", "300",
            "--epochs", "3", "--save", "m.npz", "--quiet")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "diverged" in r.stderr and "epoch 1/3" in r.stderr
    assert not (tmp_path / "m.npz").exists()


# ---- issue 8: hostile or corrupt files and inputs, every file argument (one line, exit 2) --------------------

def run_main(capsys, *args) -> tuple[int, str, str]:
    """The CLI in this process (fast for the many file cases): exit status, stdout, stderr.

    An exception escaping main() is exactly the traceback a user would see, so it fails the test.
    """
    from cnn_core.cli import main
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_main_user_error(capsys, args, *words: str) -> None:
    code, out, err = run_main(capsys, *args)
    assert_user_error(subprocess.CompletedProcess(args, code, out, err), *words)


def npy_bytes(a: np.ndarray | None = None, header: dict | None = None, payload: bytes = b"") -> bytes:
    """A .npy file's bytes: np.save of `a`, or a hand-written 1.0 header followed by `payload`."""
    import io
    f = io.BytesIO()
    if a is not None:
        np.save(f, a, allow_pickle=True)
    else:
        np.lib.format.write_array_header_1_0(f, header)
        f.write(payload)
    return f.getvalue()


def write_npz(path, members: dict[str, bytes], compress: bool = False) -> None:
    import zipfile
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name + ".npy", data)


HUGE_HEADER = {"descr": "<f4", "fortran_order": False, "shape": (1_000_000, 1000, 196)}  # 730 GiB of float32


@pytest.fixture(scope="module")
def estimator_members(tmp_path_factory):
    """The members (name -> .npy bytes) of a valid two-class perceptron file, for mutating."""
    from cnn_core.models import Perceptron
    X, y = load_mnist(split="test")
    keep = np.isin(y, (0, 1))
    est = Perceptron(max_epochs=3, random_state=0).fit(X[keep][:100].reshape(-1, 784), y[keep][:100])
    path = tmp_path_factory.mktemp("est") / "p.npz"
    cnn_core.save(est, str(path))
    with np.load(path) as npz:
        return {k: npy_bytes(npz[k]) for k in npz.files}


@pytest.mark.parametrize("args, words", [
    (["train", "mlp", "--threads", "70000"], ["--threads", "70000"]),  # above the library's cap: its ValueError
    (["train", "mlp", "--threads", "0"], ["--threads", "0"]),
])
def test_threads_out_of_range(tmp_path, args, words):
    assert_user_error(cli(tmp_path, *args), *words)


def test_issue_examples_are_one_line_errors(tmp_path, mlp_file, estimator_members):
    """The five tracebacks of issue 8 class 7, as a user runs them."""
    path, _ = mlp_file
    np.save(tmp_path / "x.npy", np.zeros((2, 28, 28), dtype=np.uint8))
    assert_user_error(cli(tmp_path, "evaluate", "x.npy"), "MODEL_FILE", "x.npy", ".npy array")
    write_npz(tmp_path / "str_coef.npz", {**estimator_members, "coef_": npy_bytes(np.array([["a"] * 784]))})
    assert_user_error(cli(tmp_path, "evaluate", "str_coef.npz"), "MODEL_FILE", "str_coef.npz", "coef_")
    (tmp_path / "huge.npy").write_bytes(npy_bytes(header=HUGE_HEADER, payload=b"\0" * 100))
    assert_user_error(cli(tmp_path, "predict", path, "huge.npy"), "INPUT", "huge.npy", "declares")
    data = tmp_path / "data"
    data.mkdir()
    images = np.zeros((20, 28, 28), dtype=np.uint8)
    labels = np.arange(20, dtype=">i4") % 10
    labels[3] = -5
    for prefix in ("train", "t10k"):
        write_idx_images(data / f"{prefix}-images-idx3-ubyte", images)
        with open(data / f"{prefix}-labels-idx1-ubyte", "wb") as f:  # IDX1 of int32 (type code 0x0C)
            f.write(struct.pack(">I", 0x0C01) + struct.pack(">I", 20) + labels.tobytes())
    assert_user_error(cli(tmp_path, "train", "mlp", "--data", "data", "--epochs", "1"), "--data")
    assert_user_error(cli(tmp_path, "evaluate", path, "--data", "data"), "--data")


@pytest.mark.parametrize("field, value, words", [
    ("coef_", np.array([["a"] * 784]), ["coef_", "<U1"]),
    ("classes_", np.array(["zero", "one"]), ["classes_", "<U4"]),
    ("classes_", np.array([0.0, 1.0]), ["classes_", "float64"]),
    ("classes_", np.array([1, 0]), ["classes_", "increasing"]),
    ("classes_", np.array([3]), ["classes_", "two"]),
    ("coef_", np.full((1, 784), np.nan), ["coef_", "finite"]),
    ("coef_", np.zeros(784), ["coef_", "2-D"]),
    ("intercept_", np.zeros(2), ["shapes"]),
    ("coef_", np.array([None] * 784, dtype=object).reshape(1, -1), ["coef_", "object"]),
    ("__version__", np.array(99), ["version 99"]),
    ("__version__", np.array("1"), ["__version__"]),
    ("__estimator__", np.array("os.system"), ["__estimator__", "os.system"]),
    ("__params__", np.array("{not json"), ["MODEL_FILE"]),
    ("__params__", np.array("[" * 100_000 + "]" * 100_000), ["__params__"]),
    ("__params__", np.array('{"evil": 1}'), ["__params__", "evil"]),
    ("__params__", np.array("[1, 2]"), ["__params__"]),
    ("__params__", np.array(" " * 70_000 + "{}"), ["__params__", "characters"]),
])
def test_corrupt_estimator_fields(tmp_path, capsys, estimator_members, field, value, words):
    write_npz(tmp_path / "bad.npz", {**estimator_members, field: npy_bytes(value)})
    assert_main_user_error(capsys, ["evaluate", tmp_path / "bad.npz"], "MODEL_FILE", "bad.npz", *words)
    np.save(tmp_path / "x.npy", np.zeros((1, 28, 28), dtype=np.uint8))
    assert_main_user_error(capsys, ["predict", tmp_path / "bad.npz", tmp_path / "x.npy"], "MODEL_FILE")


def test_hostile_estimator_archives(tmp_path, capsys, estimator_members):
    np.save(tmp_path / "x.npy", np.zeros((1, 28, 28), dtype=np.uint8))
    cases = {
        # a member whose header claims 730 GiB: refused from the header, nothing of that size allocated
        "huge.npz": ({**estimator_members, "coef_": npy_bytes(header=HUGE_HEADER, payload=b"\0" * 64)}, False,
                     ["coef_", "declares"]),
        "missing.npz": ({k: v for k, v in estimator_members.items() if k != "coef_"}, False, ["missing coef_"]),
        "trailing.npz": ({**estimator_members, "intercept_": estimator_members["intercept_"] + b"xx"}, False,
                         ["intercept_", "holds"]),
        # a 300 MB member that deflates from a few hundred KB: refused from the zip directory, before inflating
        "bomb.npz": ({**estimator_members, "coef_": npy_bytes(np.zeros((1, 300 << 20), dtype=np.uint8))}, True,
                     ["declares", "bytes of arrays"]),
    }
    for name, (members, compress, words) in cases.items():
        write_npz(tmp_path / name, members, compress=compress)
        assert_main_user_error(capsys, ["predict", tmp_path / name, tmp_path / "x.npy"], "MODEL_FILE", name, *words)


def test_model_file_that_is_not_an_archive(tmp_path, capsys):
    (tmp_path / "huge.npy").write_bytes(npy_bytes(header=HUGE_HEADER, payload=b"\0" * 100))
    assert_main_user_error(capsys, ["evaluate", tmp_path / "huge.npy"], "MODEL_FILE", ".npy array")
    (tmp_path / "text.npz").write_text("hello\n")
    # issue 9: the library's reader says it (the CLI no longer sniffs the file itself before cnn_core.load)
    assert_main_user_error(capsys, ["evaluate", tmp_path / "text.npz"], "MODEL_FILE",
                           "not a readable cnn_core model file", "no zip header")
    (tmp_path / "empty.npz").write_bytes(b"")
    assert_main_user_error(capsys, ["evaluate", tmp_path / "empty.npz"], "MODEL_FILE",
                           "not a readable cnn_core model file", "an empty file")


def test_hostile_npy_inputs(tmp_path, capsys, mlp_file):
    path, _ = mlp_file
    cases = {
        "huge.npy": (npy_bytes(header=HUGE_HEADER, payload=b"\0" * 100),
                     ["declares", "784,000,000,000 bytes", "holds 100 bytes"]),
        "short.npy": (npy_bytes(np.zeros((2, 28, 28), np.uint8))[:-5], ["declares"]),
        "long.npy": (npy_bytes(np.zeros((2, 28, 28), np.uint8)) + b"extra", ["declares"]),
        "object.npy": (npy_bytes(np.array([None, 1], dtype=object)), ["dtype object"]),
        "struct.npy": (npy_bytes(np.zeros(3, dtype=[("a", "<f4")])), ["dtype"]),
        "strings.npy": (npy_bytes(np.array([["a", "b"], ["c", "d"]])), ["numeric images"]),
        "complex.npy": (npy_bytes(np.zeros((2, 28, 28), np.complex64)), ["numeric images"]),
        "badheader.npy": (b"\x93NUMPY\x01\x00\x10\x00{'descr': <f4'}   \n", ["not a readable .npy"]),
        "v9.npy": (b"\x93NUMPY\x09\x00" + b"\0" * 20, ["not a readable .npy"]),
        "scalar.npy": (npy_bytes(np.float32(0.5)), ["shape ()"]),
        "fivedim.npy": (npy_bytes(np.zeros((1, 1, 1, 28, 28), np.float32)), ["(1, 1, 1, 28, 28)"]),
        "empty.npy": (npy_bytes(np.zeros((0, 28, 28), np.uint8)), ["numeric images"]),
    }
    for name, (data, words) in cases.items():
        (tmp_path / name).write_bytes(data)
        assert_main_user_error(capsys, ["predict", path, tmp_path / name], "INPUT", name, *words)


# ---- issue 8 class 6: one pixel rule for predict ------------------------------------------------------------

def write_idx(path, a: np.ndarray, code: int) -> None:
    dtype = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    with open(path, "wb") as f:
        f.write(struct.pack(">HBB", 0, code, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) +
                a.astype(dtype).tobytes())


def _predictions(capsys, model, path) -> list[dict]:
    code, out, err = run_main(capsys, "predict", model, path, "--json")
    assert code == 0, err
    return json.loads(out)["predictions"]


def test_predict_pixel_rule_accepted_dtypes(tmp_path, capsys, mlp_file, test_images):
    """Integers 0..255 are scaled by 1/255 and floats in [0, 1] are used as they are: the same images in any
    accepted form (dtype, Fortran order, IDX or .npy, any file name) give the same classes and probabilities."""
    path, _ = mlp_file
    images, _ = test_images
    scaled = images.astype(np.float64) / 255
    np.save(tmp_path / "u8.npy", images)
    reference = _predictions(capsys, path, tmp_path / "u8.npy")
    probs = [r["probability"] for r in reference]
    assert len(set(r["class"] for r in reference)) > 1 and max(probs) < 1.0
    forms = {"f32.npy": scaled.astype(np.float32), "f64.npy": scaled, "f16.npy": scaled.astype(np.float16),
             "fortran.npy": np.asfortranarray(scaled.astype(np.float32)),
             "i16.npy": images.astype(np.int16), "u16.npy": images.astype(np.uint16), "i64.npy": images.astype(np.int64)}
    for name, a in forms.items():
        np.save(tmp_path / name, a)
    (tmp_path / "named.dat").write_bytes((tmp_path / "f32.npy").read_bytes())  # recognised by its magic
    write_idx(tmp_path / "f32-idx3-ubyte", scaled, 0x0D)
    write_idx(tmp_path / "i16-idx3-ubyte", images, 0x0B)
    for name in [*forms, "named.dat", "f32-idx3-ubyte", "i16-idx3-ubyte"]:
        rows = _predictions(capsys, path, tmp_path / name)
        assert [r["class"] for r in rows] == [r["class"] for r in reference], name
        tol = 2e-3 if name == "f16.npy" else 1e-5  # float16 keeps 11 bits: pixels move by up to 2**-12
        assert [r["probability"] for r in rows] == pytest.approx(probs, abs=tol), name


@pytest.mark.parametrize("convert, words", [
    (lambda u8: u8.astype(np.float32), ["float32", "[0, 255]", "a / 255"]),  # the issue's example: float 0..255
    (lambda u8: u8.astype(np.float64), ["float64", "[0, 255]", "a / 255"]),
    (lambda u8: u8.astype(np.float32) - 255, ["float32", "[-255, 0]"]),
    (lambda u8: u8.astype(np.float32) / 255 + 0.5, ["float32", "[0.5, 1.5]"]),
    (lambda u8: u8.astype(np.int16) * 4, ["int16", "[0, 1020]", "uint8"]),   # the issue's other example: int16
    (lambda u8: u8.astype(np.int32) - 1, ["int32", "[-1, 254]"]), (lambda u8: u8.astype(np.uint16) * 257, ["uint16"]),
    (lambda u8: u8 > 127, ["bool"]),
])
def test_predict_pixel_rule_refused_dtypes(tmp_path, capsys, mlp_file, test_images, convert, words):
    path, _ = mlp_file
    images, _ = test_images
    np.save(tmp_path / "x.npy", convert(images))
    assert_main_user_error(capsys, ["predict", path, tmp_path / "x.npy"], "INPUT", "x.npy", *words)


@pytest.mark.parametrize("code, scale, words", [(0x0D, 1.0, ["[0, 255]"]), (0x0E, 1.0, ["[0, 255]"]),
                                                (0x0B, 2, ["int16"]), (0x0C, -1, ["int32"])])
def test_predict_pixel_rule_idx(tmp_path, capsys, mlp_file, test_images, code, scale, words):
    path, _ = mlp_file
    images, _ = test_images
    write_idx(tmp_path / "x-idx3-ubyte", images.astype(np.float64) * scale, code)
    assert_main_user_error(capsys, ["predict", path, tmp_path / "x-idx3-ubyte"], "INPUT", *words)


def test_predict_pixel_rule_for_estimators(tmp_path, capsys, estimator_members, test_images):
    write_npz(tmp_path / "p.npz", estimator_members)
    images, _ = test_images
    np.save(tmp_path / "u8.npy", images)
    np.save(tmp_path / "f.npy", images.astype(np.float32) / np.float32(255))
    np.save(tmp_path / "f255.npy", images.astype(np.float32))
    rows, rows_f = (_predictions(capsys, tmp_path / "p.npz", tmp_path / f) for f in ("u8.npy", "f.npy"))
    assert [r["class"] for r in rows] == [r["class"] for r in rows_f] and len({r["class"] for r in rows}) == 2
    assert [r["score"] for r in rows] == pytest.approx([r["score"] for r in rows_f], rel=1e-6)
    assert_main_user_error(capsys, ["predict", tmp_path / "p.npz", tmp_path / "f255.npy"], "INPUT", "a / 255")


@pytest.mark.parametrize("weight, words", [(1e38, ["MODEL_FILE", "overflow"]), (np.nan, ["MODEL_FILE"])])
def test_model_with_non_finite_outputs(tmp_path, capsys, weight, words):
    """Logits that overflow (or NaN weights) are refused, not printed as a class at probability NaN."""
    from cnn_core import nn
    model = nn.Sequential(nn.Linear(784, 10))
    model[0].weight.data[:] = weight
    cnn_core.save(model, tmp_path / "m.npz")
    np.save(tmp_path / "x.npy", np.full((2, 28, 28), 200, dtype=np.uint8))
    assert_main_user_error(capsys, ["predict", tmp_path / "m.npz", tmp_path / "x.npy"], *words)
    assert_main_user_error(capsys, ["evaluate", tmp_path / "m.npz", "--limit", "20"], *words)


@pytest.mark.parametrize("shape", [(0, 28, 28), (20, 0, 28)])
def test_empty_images_in_data(tmp_path, capsys, shape):
    """IDX files that parse but hold no pixels: refused by --data before a model is built from them."""
    for prefix in ("train", "t10k"):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte", np.zeros(shape, np.uint8), 0x08)
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte", np.zeros(shape[0], np.uint8), 0x08)
    for model in ("mlp", "perceptron"):
        assert_main_user_error(capsys, ["train", model, "--data", tmp_path], "--data", "at least one image")


def _mutations(data: bytes, seed: int, count: int):
    """`count` copies of `data` with 1-8 random bytes overwritten, one in ten also cut short."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        b = bytearray(data)
        for _ in range(rng.integers(1, 9)):
            b[rng.integers(len(b))] = rng.integers(256)
        yield bytes(b[:rng.integers(len(b))] if rng.random() < 0.1 else b)


@pytest.mark.parametrize("target", ["estimator", "network", "input"])
def test_mutated_files_never_escape(tmp_path, capsys, mlp_file, estimator_members, target):
    """Random byte damage to each file argument ends in a result (exit 0) or one line (exit 2), never in an
    exception escaping main(): the hostile-file class as a whole, not only the examples above."""
    write_npz(tmp_path / "est.npz", estimator_members)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((2, 28, 28)).astype(np.float32))
    original = {"estimator": tmp_path / "est.npz", "network": mlp_file[0], "input": tmp_path / "x.npy"}[target]
    codes = []
    for data in _mutations(original.read_bytes(), seed=len(target), count=150):
        (tmp_path / "fuzz").write_bytes(data)
        args = ["predict", tmp_path / "fuzz", tmp_path / "x.npy"] if target != "input" else \
            ["predict", tmp_path / "est.npz", tmp_path / "fuzz"]
        code, _, err = run_main(capsys, *args)
        assert code in (0, 2) and (code == 0 or len(err.strip().splitlines()) == 1), (code, err)
        codes.append(code)
    assert codes.count(2) >= 10  # the damage was noticed (most mutations break the archive or header)


def test_archive_directory_checks(tmp_path, capsys, estimator_members, mlp_file):
    """Members zipfile would choke on (RuntimeError for an encrypted one, NotImplementedError for a patched
    one) or that np.savez never writes are refused from the archive's directory, for both file kinds."""
    import zipfile
    np.save(tmp_path / "x.npy", np.zeros((1, 28, 28), dtype=np.uint8))
    with zipfile.ZipFile(tmp_path / "bz2.npz", "w", zipfile.ZIP_BZIP2) as zf:
        for name, data in estimator_members.items():
            zf.writestr(name + ".npy", data)
    assert_main_user_error(capsys, ["predict", tmp_path / "bz2.npz", tmp_path / "x.npy"], "compression method 12")
    for flag, name in ((0x1, "encrypted.npz"), (0x20, "patched.npz")):
        data = bytearray(mlp_file[0].read_bytes())
        # set the flag in every central-directory record (signature PK\1\2, flags at offset 8)
        at = data.find(b"PK\x01\x02")
        while at >= 0:
            data[at + 8] |= flag
            at = data.find(b"PK\x01\x02", at + 4)
        (tmp_path / name).write_bytes(bytes(data))
        assert_main_user_error(capsys, ["predict", tmp_path / name, tmp_path / "x.npy"], "MODEL_FILE", name,
                               "encrypted or patched")
    with zipfile.ZipFile(tmp_path / "extra.npz", "w") as zf:
        zf.writestr("readme.txt", "hello")
    assert_main_user_error(capsys, ["evaluate", tmp_path / "extra.npz"], "MODEL_FILE", "readme.txt")


@posix_only
def test_special_files_are_refused_without_opening(tmp_path, capsys, mlp_file):
    """A FIFO would block on open and /dev/zero never ends: both refused as file arguments, at once."""
    os.mkfifo(tmp_path / "fifo")
    for special in (tmp_path / "fifo", "/dev/zero"):
        assert_main_user_error(capsys, ["evaluate", special], "MODEL_FILE", "special file")
        assert_main_user_error(capsys, ["predict", mlp_file[0], special], "INPUT", "special file")


def test_estimator_overflow_is_one_line_and_exit_1(tmp_path):
    """--lr 1e308 overflows the perceptron's weights: reported like a diverging network (exit 1, one line)."""
    r = cli(tmp_path, "train", "perceptron", "--lr", "1e308", "--limit", "300", "--epochs", "3", "--save", "p.npz",
            "--quiet")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "diverged" in r.stderr and "eta" in r.stderr
    assert not (tmp_path / "p.npz").exists()


# ---- issue 11: --plot DIR writes the curves, the test confusion matrix and a conv net's filters ---------------

needs_mpl = pytest.mark.skipif(not HAS_MPL, reason="matplotlib (the plot extra) is not installed")
PNG = b"\x89PNG\r\n\x1a\n"


@needs_mpl
@pytest.mark.parametrize("model, files", [("lenet5", ["confusion.png", "curves.png", "filters.png"]),
                                          ("mlp", ["confusion.png", "curves.png"]),
                                          ("perceptron", ["confusion.png", "curves.png"])])
def test_plot_dir_writes_the_pictures(tmp_path, model, files):
    args = ["--limit", "200"] + (["--epochs", "1"] if model != "perceptron" else ["--epochs", "2"])
    r = cli(tmp_path, "train", model, *args, "--plot", "pics", "--json")  # pics/ does not exist yet
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(tmp_path / "pics")) == files  # filters only for the conv net, no temporaries
    for name in files:
        assert (tmp_path / "pics" / name).read_bytes()[:8] == PNG
    result = json.loads(r.stdout)
    assert result["plot"] == "pics"
    assert sorted(os.path.basename(p) for p in result["plot_files"]) == files


@needs_mpl
def test_plot_dir_confusion_matrix_is_the_saved_model_on_the_test_set(tmp_path, capsys, monkeypatch):
    import cnn_core.cli.train as train
    from cnn_core.cli.data import fit_model_input, load_split
    from cnn_core.metrics import confusion_matrix

    drawn = {}
    real_cm, real_filters = train.plot_confusion_matrix, train.plot_filters

    def spy_cm(cm, path, **kw):
        drawn["cm"] = cm.copy()
        return real_cm(cm, path, **kw)

    def spy_filters(model, path, **kw):
        drawn["filters"] = model[0].weight.data.copy()
        return real_filters(model, path, **kw)

    monkeypatch.setattr(train, "plot_confusion_matrix", spy_cm)
    monkeypatch.setattr(train, "plot_filters", spy_filters)
    code, out, err = run_main(capsys, "train", "lenet5", "--limit", "150", "--epochs", "1", "--quiet",
                              "--save", tmp_path / "m.npz", "--plot", tmp_path / "pics")
    assert code == 0, err
    model = cnn_core.load(tmp_path / "m.npz")
    X_test, y_test = load_split(None, "test")
    X_test, y_test = X_test[:150], y_test[:150]
    pred = cnn_core.predict(model, fit_model_input(model, X_test, "X")).argmax(axis=1)
    expected = confusion_matrix(y_test, pred, labels=np.arange(10))
    np.testing.assert_array_equal(drawn["cm"], expected)
    assert drawn["cm"].sum() == 150
    np.testing.assert_array_equal(drawn["filters"], model[0].weight.data)  # the trained first conv's


def test_plot_dir_that_is_a_file_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "taken").write_text("x")
    assert_main_user_error(capsys, ["train", "mlp", *TINY, "--plot", tmp_path / "taken"], "--plot",
                           "is not a directory")
    assert_main_user_error(capsys, ["train", "mlp", *TINY, "--plot", tmp_path / "no" / "pics"], "--plot",
                           "does not exist")
    assert os.listdir(tmp_path) == ["taken"]
