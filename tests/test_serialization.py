"""save / load: bit-exact round trips, a clear error for every kind of bad file, atomic writes."""
import json
import os
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


def test_interrupted_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    save(mlp(np.float32), path)
    before = path.read_bytes()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(serialization.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        save(mlp(np.float32, seed=3), path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.npz"]
