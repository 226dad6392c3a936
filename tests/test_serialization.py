"""save / load: bit-exact round trips, a clear error for every kind of bad file, atomic writes."""
import errno
import json
import os
import re
import zipfile

import numpy as np
import pytest

from cnn_core import serialization
from cnn_core.nn import Linear, ReLU, Sequential, Tanh
from cnn_core.serialization import FORMAT_VERSION, load, save
from cnn_core.training import predict


def mlp(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return Sequential(Linear(3, 5, rng=rng, dtype=dtype), Tanh(dtype=dtype), Linear(5, 4, rng=rng, dtype=dtype),
                      ReLU(dtype=dtype), Linear(4, 2, bias=False, rng=rng, dtype=dtype))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_trip_is_bit_exact(tmp_path, dtype):
    model = mlp(dtype)
    path = tmp_path / "model.npz"
    save(model, path)
    back = load(path)
    assert type(back) is Sequential and len(back) == len(model) and back.dtype == dtype
    want, got = model.state_dict(), back.state_dict()
    assert list(got) == list(want)
    for k in want:
        assert got[k].dtype == want[k].dtype
        assert got[k].tobytes() == want[k].tobytes()
    X = np.random.default_rng(1).normal(size=(9, 3)).astype(dtype)
    assert predict(back, X).tobytes() == predict(model, X).tobytes()


def test_file_is_a_plain_npz_with_header(tmp_path):
    path = tmp_path / "m.npz"
    save(mlp(np.float32), str(path))
    with np.load(path, allow_pickle=False) as npz:
        assert npz["__format__"].item() == "cnn_core.model"
        assert npz["__version__"].item() == FORMAT_VERSION
        cfg = json.loads(npz["__config__"].item())
        assert cfg["type"] == "Sequential" and len(cfg["modules"]) == 5
        assert {"param.0.weight", "param.0.bias", "param.4.weight"} <= set(npz.files)
    assert not [p for p in os.listdir(tmp_path) if p != "m.npz"]  # no temporary left behind


def test_save_overwrites(tmp_path):
    path = tmp_path / "m.npz"
    save(mlp(np.float32, seed=0), path)
    save(mlp(np.float32, seed=1), path)
    np.testing.assert_array_equal(load(path)[0].weight.data, mlp(np.float32, seed=1)[0].weight.data)


# ---- bad files -------------------------------------------------------------------------------------------

def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file.*nope.npz"):
        load(tmp_path / "nope.npz")


def test_truncated_file(tmp_path):
    path = tmp_path / "m.npz"
    save(mlp(np.float32), path)
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10, 10):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match=r"m\.npz.*not a readable cnn_core model file"):
            load(path)


def test_flipped_byte_in_weights(tmp_path):
    path = tmp_path / "m.npz"
    save(mlp(np.float64), path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("param.2.weight.npy")
    data[info.header_offset + 30 + len(info.filename) + 150] ^= 0xFF  # inside the stored array bytes
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"m\.npz.*(CRC|corrupt)"):
        load(path)


@pytest.mark.parametrize("content", [b"", os.urandom(2000), b"PK\x03\x04" + os.urandom(500)])
def test_random_bytes(tmp_path, content):
    path = tmp_path / "junk.npz"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"junk\.npz.*not a readable cnn_core model file"):
        load(path)


def test_foreign_npz(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, weights=np.ones(3), labels=np.arange(4))
    with pytest.raises(ValueError, match=r"other\.npz.*not a cnn_core model file.*\['labels', 'weights'\]"):
        load(path)


def test_plain_npy(tmp_path):
    path = tmp_path / "arr.npy"
    np.save(path, np.ones(3))
    with pytest.raises(ValueError, match=r"arr\.npy.*not an \.npz archive"):
        load(path)


def test_pickled_object_is_refused(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, __format__=np.array("cnn_core.model"), __config__=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match=r"obj\.npz.*not a readable"):
        load(path)


def _rewrite(path, **changes):
    with np.load(path, allow_pickle=False) as npz:
        fields = {k: npz[k] for k in npz.files}
    fields.update(changes)
    for k in [k for k, v in changes.items() if v is None]:
        del fields[k]
    np.savez(path, **fields)


def test_newer_format_version(tmp_path):
    path = tmp_path / "m.npz"
    save(mlp(np.float32), path)
    _rewrite(path, __version__=np.array(FORMAT_VERSION + 1), __cnn_core__=np.array("9.0"))
    with pytest.raises(ValueError, match=rf"m\.npz.*format version {FORMAT_VERSION + 1}.*cnn_core 9\.0.*upgrade"):
        load(path)


@pytest.mark.parametrize("change, match", [
    ({"__version__": None}, "corrupt header"),
    ({"__version__": np.array("1")}, "corrupt header"),
    ({"__config__": np.array("{not json")}, "do not form a model"),
    ({"__config__": np.array('{"type": "NoSuchLayer"}')}, "do not form a model.*NoSuchLayer"),
    ({"param.0.weight": None}, "do not form a model.*0.weight"),
    ({"param.0.weight": np.ones((2, 2), dtype=np.float32)}, r"do not form a model.*0.weight.*shape"),
])
def test_inconsistent_contents(tmp_path, change, match):
    path = tmp_path / "m.npz"
    save(mlp(np.float32), path)
    _rewrite(path, **change)
    with pytest.raises(ValueError, match=r"m\.npz.*" + match):
        load(path)


def test_directory_is_refused(tmp_path):
    with pytest.raises(IsADirectoryError, match="directory"):
        load(tmp_path)


def test_unregistered_module_is_refused_before_writing(tmp_path):
    from cnn_core.nn import Module

    class Custom(Module):
        pass

    path = tmp_path / "m.npz"
    with pytest.raises(ValueError, match="not registered"):
        save(Custom(), path)
    assert os.listdir(tmp_path) == []


# ---- atomic write ----------------------------------------------------------------------------------------

def test_failed_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    save(mlp(np.float32, seed=0), path)
    before = path.read_bytes()

    def savez_then_fail(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", savez_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save(mlp(np.float32, seed=1), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]  # the temporary file was removed
    monkeypatch.undo()
    np.testing.assert_array_equal(load(path)[0].weight.data, mlp(np.float32, seed=0)[0].weight.data)


@pytest.mark.parametrize("old, new", [(lambda: mlp(np.float32), lambda: mlp(np.float32, seed=3)),
                                      (lambda: fitted("svm", 3)[0], lambda: fitted("perceptron", 2)[0])],
                         ids=["network", "estimator"])
def test_interrupted_write_leaves_the_old_file_intact(tmp_path, monkeypatch, old, new):
    path = tmp_path / "m.npz"
    save(old(), path)
    before = path.read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(serialization.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save(new(), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]


# ---- linear estimators (issue 9: the CLI's estimator files, now cnn_core.save / load) ---------------------

def fitted(kind: str, n_classes: int, labels_dtype=np.int64, numpy_params: bool = True):
    """A fitted estimator and its X; the SVM's batch_size and lr NumPy scalars unless numpy_params is False."""
    from cnn_core.models import LinearSVM, Perceptron
    rng = np.random.default_rng(n_classes)
    X = rng.normal(size=(60, 5))
    y = (np.argmax(X[:, :n_classes], axis=1) * 3 + 1).astype(labels_dtype)  # labels 1, 4, 7, ...
    number = (lambda v: np.array(v)[()]) if numpy_params else (lambda v: v)
    est = Perceptron(max_epochs=5, random_state=0) if kind == "perceptron" else \
        LinearSVM(C=0.5, max_epochs=5, batch_size=number(16), lr=number(0.05), random_state=1)
    return est.fit(X, y), X


@pytest.mark.parametrize("kind", ["perceptron", "svm"])
@pytest.mark.parametrize("n_classes, labels_dtype", [(2, np.int64), (3, np.int64), (4, np.uint8)])
def test_estimator_round_trip(tmp_path, kind, n_classes, labels_dtype):
    est, X = fitted(kind, n_classes, labels_dtype)
    path = tmp_path / "e.npz"
    save(est, path)
    back = load(path)
    assert type(back) is type(est) and back.get_params() == est.get_params()
    assert back.coef_.tobytes() == est.coef_.tobytes() and back.intercept_.tobytes() == est.intercept_.tobytes()
    assert back.classes_.dtype == est.classes_.dtype and back.classes_.tolist() == est.classes_.tolist()
    assert back.decision_function(X).tobytes() == est.decision_function(X).tobytes()
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    with np.load(path, allow_pickle=False) as npz:
        assert npz["__format__"].item() == "cnn_core.estimator" and npz["__estimator__"].item() == type(est).__name__
        assert json.loads(npz["__params__"].item()) == est.get_params()
    assert os.listdir(tmp_path) == ["e.npz"]


def save_estimator_as_the_cli_did(est, path: str) -> None:
    """The writer of cnn_core/cli/estimator_file.py before issue 9 (its file layout, byte for byte)."""
    arrays = {"__format__": np.array("cnn_core.estimator"), "__version__": np.array(1),
              "__estimator__": np.array(type(est).__name__), "__params__": np.array(json.dumps(est.get_params())),
              "coef_": est.coef_, "intercept_": est.intercept_, "classes_": est.classes_}
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


@pytest.mark.parametrize("kind, n_classes", [("perceptron", 2), ("svm", 3)])
def test_estimator_files_of_the_former_cli_still_load(tmp_path, kind, n_classes):
    est, X = fitted(kind, n_classes, numpy_params=False)  # the CLI passed Python numbers
    save_estimator_as_the_cli_did(est, str(tmp_path / "old.npz"))
    back = load(tmp_path / "old.npz")
    assert type(back) is type(est) and back.get_params() == est.get_params()
    assert back.decision_function(X).tobytes() == est.decision_function(X).tobytes()
    np.testing.assert_array_equal(back.predict(X), est.predict(X))


def test_estimators_that_cannot_be_stored_are_refused_before_writing(tmp_path):
    from cnn_core.models import LinearSVM, Perceptron
    path = tmp_path / "e.npz"
    with pytest.raises(ValueError, match="model: this Perceptron is not fitted yet"):
        save(Perceptron(), path)
    X = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ValueError, match="model: LinearSVM.classes_: the file stores integer class labels, got "
                                         "dtype <U3"):
        save(LinearSVM(max_epochs=2).fit(X, np.where(X[:, 0] > 0, "yes", "no")), path)
    with pytest.raises(ValueError, match="model: Perceptron hyperparameter random_state=Generator"):
        save(Perceptron(max_epochs=2, random_state=np.random.default_rng(0)).fit(X, (X[:, 0] > 0) * 1), path)
    with pytest.raises(TypeError, match="model: expected a cnn_core.nn.Module, Perceptron or LinearSVM, got dict"):
        save({"coef_": 1}, path)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("change, match", [
    ({"coef_": np.zeros((2, 5))}, r"inconsistent shapes coef_ \(2, 5\)"),
    ({"coef_": np.array([[np.inf] * 5])}, "coef_: expected finite values"),
    ({"classes_": np.array([4, 1])}, "classes_: expected at least two distinct labels in increasing order"),
    ({"classes_": np.array([1.0, 4.0])}, "classes_: expected a non-empty 1-D array of integers, got float64"),
    ({"intercept_": None}, "missing intercept_"),
    ({"extra": np.zeros(2)}, r"unexpected members \['extra'\]"),
    ({"__estimator__": np.array("Pickle")}, "__estimator__: expected one of .'LinearSVM', 'Perceptron'."),
    ({"__params__": np.array('{"eta": 1, "nope": 2}')}, "__params__: expected an object with keys among"),
    ({"__params__": np.array("[" * 100 + "]" * 100)}, "__params__ nested 100 deep, more than the limit of 64"),
    ({"__params__": np.array("{" * 3)}, "__params__ is not valid JSON"),
    ({"__params__": np.array(" " * 70_000 + "{}")}, "__params__: expected at most 65536 characters of JSON, got "
                                                     "70002"),
    ({"__version__": np.array(2)}, "format version 2.*reads up to version 1"),
    ({"__version__": np.array("1")}, "corrupt header .__version__: expected a 0-d integer >= 1"),
])
def test_damaged_estimator_files_are_refused_naming_the_field(tmp_path, change, match):
    path = tmp_path / "e.npz"
    save(fitted("perceptron", 2)[0], path)
    _rewrite(path, **change)
    with pytest.raises(ValueError, match=r"e\.npz.*" + match):
        load(path)


def test_estimator_archive_declaring_too_many_bytes_is_refused_from_the_directory(tmp_path):
    """A deflated member that would expand to 300 MB: refused by the estimator limit before anything is read."""
    path = tmp_path / "e.npz"
    save(fitted("perceptron", 2)[0], path)
    with np.load(path) as npz:
        fields = {k: npz[k] for k in npz.files}
    fields["coef_"] = np.zeros((1, 300 << 20), dtype=np.uint8)
    np.savez_compressed(path, **fields)
    with pytest.raises(ValueError, match=r"e\.npz.*declares 314,5\d\d,\d+ bytes of arrays, more than the "
                                         r"268,435,456 an estimator file may hold"):
        load(path)


@pytest.mark.parametrize("offset, value, match", [
    (8, 0x20, r"encrypted or patched \(flags 0x20\)"),   # flag bit 5, compressed patched data
    (6, 99, "NotImplementedError: zip file version 9.9"),  # version needed to extract: zipfile cannot
])
def test_zip_features_zipfile_cannot_read_are_a_value_error(tmp_path, offset, value, match):
    """Before issue 9 these escaped cnn_core.load as NotImplementedError (the CLI checked them itself)."""
    path = tmp_path / "m.npz"
    save(mlp(np.float32), path)
    data = bytearray(path.read_bytes())
    at = data.find(b"PK\x01\x02")
    while at >= 0:  # every central directory entry
        data[at + offset] = value
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"m\.npz' is not a readable cnn_core model file.*" + match):
        load(path)


# ---- issue 9: the one bounded reader (special files, read_npy) ---------------------------------------------

posix_only = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs and /dev/zero")


def returns_within(seconds: float, call):
    """call()'s exception (or None), failing the test when it does not return in time: a FIFO's reader
    would block forever, so it runs in a daemon thread that cannot keep the test process alive."""
    import threading
    outcome = []

    def run():
        try:
            call()
            outcome.append(None)
        except BaseException as e:  # handed to the test thread
            outcome.append(e)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert outcome, f"{call} still blocked after {seconds} s"
    return outcome[0]


@posix_only
@pytest.mark.parametrize("reader", [load, serialization.read_npy, serialization.is_npy])
def test_special_files_are_an_oserror_not_a_hang(tmp_path, reader):
    """Before issue 9 cnn_core.load(fifo) blocked until a writer came (only the CLI refused special files)."""
    os.mkfifo(tmp_path / "fifo")
    for special, kind in ((str(tmp_path / "fifo"), "a FIFO"), ("/dev/zero", "a device")):
        e = returns_within(10, lambda: reader(special))
        assert type(e) is OSError and e.errno == errno.EINVAL and e.filename == special, repr(e)
        assert f"got a special file ({kind})" in str(e)


@posix_only
def test_a_path_that_turns_into_a_fifo_after_stat_is_still_refused(tmp_path, monkeypatch):
    """The check on the opened file (non-blocking open, then fstat) covers a path swapped after os.stat."""
    regular = os.stat(__file__)
    fifo = str(tmp_path / "fifo")
    os.mkfifo(fifo)
    real_stat = os.stat
    monkeypatch.setattr(serialization.os, "stat", lambda p, *a, **k: regular if p == fifo else real_stat(p, *a, **k))
    e = returns_within(10, lambda: load(fifo))
    assert type(e) is OSError and "special file (a FIFO)" in str(e)


def test_missing_file_and_directory_errors_name_the_path(tmp_path):
    for reader in (load, serialization.read_npy, serialization.is_npy):
        with pytest.raises(FileNotFoundError) as e:
            reader(tmp_path / "nope.npy")
        assert e.value.errno == errno.ENOENT and e.value.filename == str(tmp_path / "nope.npy")
        with pytest.raises(IsADirectoryError) as e:
            reader(tmp_path)
        assert e.value.filename == str(tmp_path)


@pytest.mark.parametrize("a", [np.arange(60, dtype=np.uint8).reshape(3, 4, 5), np.arange(6, dtype=">i2"),
                               np.asfortranarray(np.linspace(0, 1, 12).reshape(3, 4)), np.float32(0.5),
                               np.zeros((0, 28, 28), np.float32), np.array([[1 + 2j]], np.complex64),
                               np.array(["ab", "c"]), np.array([True, False])],
                         ids=["u8", "i2-big-endian", "f8-fortran", "scalar", "empty", "complex", "str", "bool"])
def test_read_npy_reads_what_np_save_wrote(tmp_path, a):
    path = tmp_path / "a.data"  # any name: the contents decide
    np.save(path, a, allow_pickle=False)
    path = path.with_suffix(".data.npy")
    got = serialization.read_npy(path)
    assert got.dtype == np.asarray(a).dtype and got.shape == np.shape(a) and got.flags.writeable
    assert got.flags.f_contiguous == np.asarray(a).flags.f_contiguous
    np.testing.assert_array_equal(got, a)
    assert serialization.is_npy(path)


def npy_with_header(header: dict, payload: bytes = b"", version=(1, 0)) -> bytes:
    import io
    buf = io.BytesIO()
    write = np.lib.format.write_array_header_1_0 if version == (1, 0) else np.lib.format.write_array_header_2_0
    write(buf, header)
    return buf.getvalue() + payload


@pytest.mark.parametrize("data, match", [
    (npy_with_header({"descr": "<f8", "fortran_order": False, "shape": (10**6, 1000, 196)}, b"\0" * 100),
     r"declares shape \(1000000, 1000, 196\) of float64 \(1,568,000,000,000 bytes\) but it holds 100 bytes"),
    (npy_with_header({"descr": "<f4", "fortran_order": False, "shape": (2, 2)}, b"\0" * 17), "holds 17 bytes"),
    (npy_with_header({"descr": "|O", "fortran_order": False, "shape": (2,)}, b"\0" * 16), "got dtype object"),
    (npy_with_header({"descr": [("a", "<f4")], "fortran_order": False, "shape": (2,)}, b"\0" * 8),
     r"numbers or fixed-size strings, got dtype \[\('a', '<f4'\)\]"),
    (npy_with_header({"descr": "<f4", "fortran_order": False, "shape": (2,)}, b"\0" * 8, (2, 0))[:12],
     r"truncated header"),
    (b"\x93NUMPY\x03\x00" + b"\0" * 20, r"format version 3\.0"),
    (b"\x93NUMPY\x01\x00\xff\xff" + b" " * 100, "a header of 65,535 bytes, more than 10,000"),
    (b"\x93NUMPY\x01\x00\x10\x00{'descr': <f4'}   \n", "bad header"),
    (b"PK\x03\x04 not an array", "no .npy magic"),
    (b"", "no .npy magic"),
])
def test_read_npy_refuses_bad_files_before_allocating(tmp_path, data, match):
    import tracemalloc
    path = tmp_path / "bad.npy"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=f"^{re.escape(str(path))}: .*{match}"):
            serialization.read_npy(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20
    assert serialization.is_npy(path) == data.startswith(b"\x93NUMPY")
