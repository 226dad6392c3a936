"""Fuzzing the file readers (issue 8, class 4): random bytes and mutations of real files fed to cnn_core.load,
to load_idx and (issue 9) to serialization.read_npy. Nothing but ValueError or OSError may come out, and the memory a file costs stays bounded
(tracemalloc sees Python's and NumPy's allocations; every input here is at most a few KiB, so a reader that
allocates by a header's claim instead of the file's contents would blow far past the bound)."""
import gzip
import io
import json
import struct
import tempfile
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnn_core import nn
from cnn_core.datasets import load_idx
from cnn_core.serialization import load, read_npy, save

PEAK_LIMIT = 4 << 20  # bytes; the checked readers stay under 1 MiB on these inputs (the old load needed 16 MiB)
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def workdir():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


def _model_bytes() -> bytes:
    model = nn.Sequential(nn.Conv2d(1, 2, 3, rng=0), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3, rng=1),
                          nn.Tanh(), nn.Linear(3, 2, bias=False, rng=2))
    with tempfile.TemporaryDirectory() as d:
        save(model, Path(d) / "m.npz")
        return (Path(d) / "m.npz").read_bytes()


MODEL = _model_bytes()


def _members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def _zip(members: dict[str, bytes], compress: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compress) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _npy(a) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def check_reader(read, path: Path, data: bytes) -> None:
    """`read(path)` either succeeds or raises ValueError/OSError, within PEAK_LIMIT bytes."""
    path.write_bytes(data)
    tracemalloc.start()
    try:
        try:
            read(path)
        except (ValueError, OSError):
            pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < PEAK_LIMIT, f"{read.__name__} peaked at {peak} bytes on a {len(data)}-byte input"


# ---- mutations of a real model file ---------------------------------------------------------------------

def flips(data: bytes):
    return st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 7)), min_size=1, max_size=8).map(
        lambda fl: bytes(_flip(bytearray(data), fl)))


def _flip(buf: bytearray, fl):
    for pos, bit in fl:
        buf[pos] ^= 1 << bit
    return buf


def splices(data: bytes):
    return st.tuples(st.integers(0, len(data)), st.integers(0, 64), st.binary(max_size=64)).map(
        lambda t: data[:t[0]] + t[2] + data[t[0] + t[1]:])


def truncations(data: bytes):
    return st.integers(0, len(data) - 1).map(lambda n: data[:n])


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)


@st.composite
def changed_configs(draw):
    """The real archive with one config value replaced (or a key added) and maybe re-compressed."""
    members = _members(MODEL)
    text = np.lib.format.read_array(io.BytesIO(members["__config__.npy"])).item()
    cfg = json.loads(text)
    layer = draw(st.integers(0, len(cfg["modules"]) - 1))
    target = cfg["modules"][layer].setdefault("config", {})
    keys = sorted(target) + ["type", "modules", "extra"]
    key = draw(st.sampled_from(keys))
    value = draw(JSON_VALUES | st.integers(1, 10**6) | st.sampled_from(["Linear", "Conv2d", "RNN", "float64"]))
    if key == "type":
        cfg["modules"][layer]["type"] = value
    elif key == "modules":
        cfg["modules"] = value if draw(st.booleans()) else [json.loads(text)] * draw(st.integers(0, 3))
    else:
        target[key] = value
    members["__config__.npy"] = _npy(json.dumps(cfg))
    return _zip(members, draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])))


@st.composite
def spliced_headers(draw):
    """A parameter member whose .npy header claims another shape or dtype than its data holds."""
    members = _members(MODEL)
    name = draw(st.sampled_from(sorted(n for n in members if n.startswith("param."))))
    shape = tuple(draw(st.lists(st.integers(0, 2**40), max_size=4)))
    descr = draw(st.sampled_from(["<f4", "<f8", ">f4", "<f2", "<i8", "|b1", "|O", "<c8", "<U3", "|V8"]))
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": draw(st.booleans()),
                                               "shape": shape})
    old = members[name]
    header_len = 10 + struct.unpack("<H", old[8:10])[0]
    members[name] = buf.getvalue() + old[header_len:][:draw(st.integers(0, len(old)))]
    return _zip(members, draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])))


@st.composite
def weird_values(draw):
    """Real shapes, hostile values: NaN, inf, float64 beyond float32's range."""
    members = _members(MODEL)
    name = draw(st.sampled_from(sorted(n for n in members if n.startswith("param."))))
    a = np.lib.format.read_array(io.BytesIO(members[name])).astype(np.float64)
    a.flat[draw(st.integers(0, a.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 1e300, -3.5e38]))
    members[name] = _npy(a)
    return _zip(members, zipfile.ZIP_STORED)


MODEL_INPUTS = (st.binary(max_size=2048) | st.binary(max_size=256).map(lambda b: b"PK\x03\x04" + b)
                | flips(MODEL) | splices(MODEL) | truncations(MODEL) | changed_configs() | spliced_headers()
                | weird_values())


@FUZZ
@given(data=MODEL_INPUTS)
def test_load_survives_random_and_mutated_files(workdir, data):
    check_reader(load, workdir / "fuzz.npz", data)


def test_the_base_model_file_loads(workdir):
    (workdir / "base.npz").write_bytes(MODEL)
    assert load(workdir / "base.npz")[3].weight.shape == (3, 8)


@FUZZ
@given(data=weird_values())
def test_non_finite_or_overflowing_weights_are_always_refused(workdir, data):
    (workdir / "w.npz").write_bytes(data)
    with pytest.raises(ValueError, match="NaN or infinity|beyond the range"):
        load(workdir / "w.npz")


# ---- IDX --------------------------------------------------------------------------------------------------

def _idx(a: np.ndarray, code: int) -> bytes:
    head = struct.pack(">HBB", 0, code, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
    return head + a.astype(a.dtype.newbyteorder(">")).tobytes()


IDX_FILES = [_idx(np.arange(60, dtype=np.uint8).reshape(3, 4, 5), 0x08),
             _idx(np.arange(10, dtype=np.int32), 0x0C),
             _idx(np.linspace(0, 9, 12).reshape(3, 4), 0x0E)]
IDX_FILES += [gzip.compress(b) for b in IDX_FILES]


def mutations(files: list[bytes]):
    """A flip, splice or truncation of one of `files`."""
    return st.sampled_from(files).flatmap(lambda data: flips(data) | splices(data) | truncations(data))


@st.composite
def idx_headers(draw):
    """A header declaring any type code and dimensions, followed by at most 512 bytes, raw or gzipped."""
    dims = draw(st.lists(st.integers(0, 2**32 - 1), min_size=0, max_size=6))
    head = struct.pack(">HBB", 0, draw(st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E, 0x07])), len(dims))
    body = head + struct.pack(f">{len(dims)}I", *dims) + draw(st.binary(max_size=512))
    return gzip.compress(body) if draw(st.booleans()) else body


@FUZZ
@given(data=st.binary(max_size=2048) | mutations(IDX_FILES) | idx_headers())
def test_load_idx_survives_random_and_mutated_files(workdir, data):
    check_reader(load_idx, workdir / "fuzz.idx", data)


# ---- .npy (issue 9: the one bounded reader, which the CLI's predict INPUT uses too) -------------------------

NPY_FILES = [_npy(np.arange(60, dtype=np.uint8).reshape(3, 4, 5)),
             _npy(np.asfortranarray(np.linspace(0, 1, 12).reshape(3, 4))),
             _npy(np.arange(6, dtype=">i2")), _npy(np.array(["ab", "c"])), _npy(np.float32(0.5))]


@st.composite
def npy_headers(draw):
    """A .npy header declaring any shape and dtype (pickled objects and records included), then at most 512
    bytes."""
    buf = io.BytesIO()
    shape = tuple(draw(st.lists(st.integers(0, 2**40), max_size=4)))
    descr = draw(st.sampled_from(["<f4", ">f8", "|u1", "<i8", "|b1", "|O", "<c8", "<U3", "|V8", "<M8[s]"]))
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": draw(st.booleans()),
                                               "shape": shape})
    return buf.getvalue() + draw(st.binary(max_size=512))


NPY_INPUTS = mutations(NPY_FILES) | npy_headers()


@FUZZ
@given(data=st.binary(max_size=2048) | NPY_INPUTS)
def test_read_npy_survives_random_and_mutated_files(workdir, data):
    check_reader(read_npy, workdir / "fuzz.npy", data)


@FUZZ
@given(data=NPY_INPUTS)
def test_what_read_npy_accepts_np_load_reads_the_same(workdir, data):
    """A differential oracle: a file read_npy accepts is one np.load(allow_pickle=False) reads to the same
    array (dtype, byte order and values)."""
    path = workdir / "same.npy"
    path.write_bytes(data)
    try:
        got = read_npy(path)
    except ValueError:
        return
    want = np.load(path, allow_pickle=False)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes(order="A") == want.tobytes(order="A")
