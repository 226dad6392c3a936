"""Hostile and corrupt files (issue 8, classes 4, 5 and the IDX part of 6).

Class 4: cnn_core.load checks the config, the zip entries and every member's .npy header against each other
before it builds anything; tracemalloc (which sees NumPy's allocations) bounds what a hostile file costs.
Class 5: save's temporaries, permissions, symlinks and error messages.
Class 6: IDX files of every element type give correct labels and images, or a ValueError naming the file.
"""
import io
import json
import os
import signal
import stat
import struct
import subprocess
import sys
import textwrap
import tracemalloc
import zipfile

import numpy as np
import pytest

from cnn_core import nn, serialization
from cnn_core.datasets import load_idx, load_mnist
from cnn_core.models import lenet5
from cnn_core.models.rnn import RNNClassifier
from cnn_core.serialization import load, save

MiB = 1 << 20


# ---- helpers: archives written member by member ---------------------------------------------------------

def npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, a, allow_pickle=False)
    return buf.getvalue()


def lying_npy(shape, descr="<f8", data=b"\0" * 64) -> bytes:
    """A .npy header declaring `shape`, followed by only `data`."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": tuple(shape)})
    return buf.getvalue() + data


def meta(config, version=1) -> dict:
    text = config if isinstance(config, str) else json.dumps(config)
    return {"__format__": npy_bytes(np.array("cnn_core.model")), "__version__": npy_bytes(np.array(version)),
            "__config__": npy_bytes(np.array(text)), "__cnn_core__": npy_bytes(np.array("test"))}


def write_zip(path, members: dict, compress=zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(path, "w", compression=compress, allowZip64=True) as zf:
        for name, data in members.items():
            zf.writestr(name + ".npy", data)


def linear_cfg(n_in, n_out, bias=True, dtype="float32", **extra):
    return {"type": "Linear", "config": {"in_features": n_in, "out_features": n_out, "bias": bias,
                                         "init": "default", "dtype": dtype, **extra}}


def members_of(model) -> dict:
    return {"param." + k: npy_bytes(v) for k, v in model.state_dict().items()}


def load_bounded(path, limit=8 * MiB):
    """load(path), asserting that Python and NumPy together never held more than `limit` bytes."""
    tracemalloc.start()
    try:
        return load(path)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < limit, f"load peaked at {peak / MiB:.1f} MiB"


# ---- class 4: the config is checked before anything is built -------------------------------------------

def test_huge_declared_layer_with_tiny_weights_is_refused_before_allocation(tmp_path):
    # The audit's 1 KB file declaring Linear(50000, 50000): 9.3 GiB of float32 weights it cannot back.
    small = nn.Linear(2, 2)
    path = tmp_path / "big.npz"
    write_zip(path, {**meta(linear_cfg(50000, 50000)), **members_of(small)})
    assert path.stat().st_size < 2048
    with pytest.raises(ValueError, match=r"big\.npz.*'weight'.*config implies shape \(50000, 50000\).*\(2, 2\)"):
        load_bounded(path)


def test_member_header_claiming_800_terabytes_is_refused_before_reading(tmp_path):
    path = tmp_path / "tb.npz"
    write_zip(path, {**meta(linear_cfg(10**6, 10**8, bias=False, dtype="float64")),
                     "param.weight": lying_npy((10**8, 10**6))})
    with pytest.raises(ValueError, match=r"tb\.npz.*param\.weight.*shape \(100000000, 1000000\).*"
                                         r"800,000,000,000,000 bytes.*holds 64 bytes"):
        load_bounded(path)


def stream_zeros_member(zf, name, header, n_bytes):
    with zf.open(name, "w", force_zip64=True) as f:
        f.write(header)
        chunk = bytes(MiB)
        for _ in range(n_bytes // MiB):
            f.write(chunk)


def test_zip_bomb_is_refused_before_it_expands(tmp_path):
    # 64 MiB of zeros deflate to about 64 KiB: a 1000:1 member (the audit's bomb was 0.5 MB -> 447 MB).
    n = 4096
    path = tmp_path / "bomb.npz"
    header = lying_npy((n, n), "<f4", b"")
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for k, v in meta(linear_cfg(n, n, bias=False)).items():
            zf.writestr(k + ".npy", v)
        stream_zeros_member(zf, "param.weight.npy", header, n * n * 4)
    assert path.stat().st_size < MiB
    with pytest.raises(ValueError, match=r"bomb\.npz.*param\.weight.*would expand from \d+ to 67108\d+ bytes"
                                         r".*limit of 20x"):
        load_bounded(path, limit=2 * MiB)


def test_compressed_member_whose_size_disagrees_with_its_header(tmp_path):
    path = tmp_path / "m.npz"
    model = nn.Linear(30, 20, rng=0)
    members = members_of(model)
    members["param.weight"] = lying_npy((20, 30), "<f4", np.ones(20 * 29, np.float32).tobytes())
    write_zip(path, {**meta(linear_cfg(30, 20)), **members}, compress=zipfile.ZIP_DEFLATED)
    with pytest.raises(ValueError, match=r"m\.npz.*param\.weight.*shape \(20, 30\).*2,400 bytes.*2,320"):
        load(path)


def test_savez_compressed_model_still_loads(tmp_path):
    model = lenet5(rng=0)
    path = tmp_path / "c.npz"
    arrays = {"__format__": np.array("cnn_core.model"), "__version__": np.array(1),
              "__config__": np.array(json.dumps(nn.module_to_config(model)))}
    arrays.update({"param." + k: v for k, v in model.state_dict().items()})
    np.savez_compressed(path, **arrays)
    back = load(path)
    for k, v in model.state_dict().items():
        assert back.state_dict()[k].tobytes() == v.tobytes()


def nested(depth):
    cfg = linear_cfg(2, 2)
    for _ in range(depth):
        cfg = {"type": "Sequential", "modules": [cfg]}
    return cfg


def test_deeply_nested_config_is_refused_without_recursion_error(tmp_path):
    path = tmp_path / "deep.npz"
    write_zip(path, meta("[" * 100_000 + "]" * 100_000))
    with pytest.raises(ValueError, match=r"deep\.npz.*config nested 100000 deep, more than the limit of 64"):
        load(path)
    write_zip(path, meta(nested(40)))  # 40 Sequential levels: 82 JSON levels
    with pytest.raises(ValueError, match=r"deep\.npz.*config nested 82 deep"):
        load(path)


def test_moderately_nested_config_loads(tmp_path):
    # 20 Sequential levels (42 JSON levels) are within the limit and round-trip.
    model = nn.module_from_config(nested(20))
    path = tmp_path / "n.npz"
    save(model, path)
    back = load(path)
    inner = back
    for _ in range(20):
        inner = inner[0]
    assert type(inner) is nn.Linear


def test_brackets_inside_strings_do_not_count_as_nesting(tmp_path):
    path = tmp_path / "s.npz"
    cfg = linear_cfg(2, 2)
    cfg["config"]["init"] = "[[[[" * 100  # not a valid init: refused by the layer, not by the depth check
    write_zip(path, {**meta(cfg), **members_of(nn.Linear(2, 2))})
    with pytest.raises(ValueError, match=r"s\.npz.*init: expected one of"):
        load(path)


def test_too_many_modules(tmp_path):
    path = tmp_path / "many.npz"
    cfg = {"type": "Sequential", "modules": [{"type": "ReLU"}] * (serialization.MAX_MODULES + 1)}
    write_zip(path, meta(cfg))
    with pytest.raises(ValueError, match=r"many\.npz.*10002 modules, more than the limit of 10000"):
        load(path)


def test_config_longer_than_the_limit_is_refused_before_reading(tmp_path):
    path = tmp_path / "long.npz"
    members = meta(linear_cfg(2, 2))
    members["__config__"] = lying_npy((), "<U2000000", b"")
    write_zip(path, members)
    with pytest.raises(ValueError, match=r"long\.npz.*__config__.*holds 0 bytes"):
        load(path)
    text = json.dumps(linear_cfg(2, 2)) + " " * serialization.MAX_CONFIG_CHARS
    write_zip(path, {**meta(text), **members_of(nn.Linear(2, 2))})
    with pytest.raises(ValueError, match=r"long\.npz.*config of \d+ characters, more than the limit"):
        load(path)


@pytest.mark.parametrize("cfg, match", [
    (linear_cfg(2, 2, rng=0), r"unknown arguments \['rng'\] for Linear"),
    (linear_cfg(2, 2, evil=1), r"unknown arguments \['evil'\] for Linear"),
    ({**linear_cfg(2, 2), "extra": 1}, r"unknown keys \['extra'\]"),
    ({"type": "Sequential", "modules": [], "config": {}}, r"unknown keys \['config'\]"),
    ({"type": "os.system"}, "unknown module type 'os.system'"),
    ({"type": ["Linear"]}, r"cfg\['type'\]: expected a registered class name"),
    (linear_cfg("2", 2), r"in_features: expected a positive int < 2\*\*31, got '2' \(str\)"),
    (linear_cfg(2, -2), r"out_features: expected a positive int < 2\*\*31, got -2"),
    (linear_cfg(2, 2.5), r"out_features: expected a positive int < 2\*\*31, got 2.5 \(float\)"),
    (linear_cfg(2, 2, bias="yes"), "bias: expected a bool, got 'yes'"),
    (linear_cfg(2, 2, dtype="float16"), "dtype: expected dtype float32 or float64"),
    ({"type": "Sequential", "modules": {"0": {}}}, r"cfg\['modules'\]: expected a list"),
    ([1, 2], "expected a dict with a 'type' key"),
])
def test_bad_configs_are_refused_naming_what_is_wrong(tmp_path, cfg, match):
    path = tmp_path / "cfg.npz"
    write_zip(path, {**meta(cfg), **members_of(nn.Linear(2, 2))})
    with pytest.raises(ValueError, match=r"cfg\.npz': the architecture and weights do not form a model.*" + match):
        load(path)


def test_missing_and_unexpected_members(tmp_path):
    path = tmp_path / "m.npz"
    members = members_of(nn.Linear(2, 2))
    members["param.extra"] = npy_bytes(np.zeros(3, np.float32))
    del members["param.bias"]
    write_zip(path, {**meta(linear_cfg(2, 2)), **members})
    with pytest.raises(ValueError, match=r"missing \['bias'\], unexpected \['extra'\]"):
        load(path)
    write_zip(path, {**meta(linear_cfg(2, 2)), **members_of(nn.Linear(2, 2)), "junk": npy_bytes(np.zeros(1))})
    with pytest.raises(ValueError, match=r"unexpected members \['junk'\]"):
        load(path)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_weights_are_refused(tmp_path, value):
    model = nn.Linear(4, 3, rng=0)
    model.weight.data[1, 2] = value
    path = tmp_path / "nan.npz"
    save(model, path)
    with pytest.raises(ValueError, match=r"nan\.npz.*parameter 'weight' holds NaN or infinity"):
        load(path)


def test_float64_weights_beyond_float32_range_are_refused(tmp_path):
    w = np.full((3, 4), 1e300)
    path = tmp_path / "big.npz"
    write_zip(path, {**meta(linear_cfg(4, 3, bias=False)), "param.weight": npy_bytes(w)})
    with pytest.raises(ValueError, match=r"big\.npz.*'weight' holds values up to 1e\+300, beyond the range of "
                                         r"the model's dtype float32"):
        load(path)


def test_float64_weights_within_range_are_cast_and_float32_into_float64_is_exact(tmp_path):
    rng = np.random.default_rng(0)
    w64 = rng.normal(size=(3, 4))
    path = tmp_path / "w.npz"
    write_zip(path, {**meta(linear_cfg(4, 3, bias=False)), "param.weight": npy_bytes(w64)})
    assert load(path).weight.data.tobytes() == w64.astype(np.float32).tobytes()
    w32 = rng.normal(size=(3, 4)).astype(np.float32)
    write_zip(path, {**meta(linear_cfg(4, 3, bias=False, dtype="float64")), "param.weight": npy_bytes(w32)})
    np.testing.assert_array_equal(load(path).weight.data, w32.astype(np.float64))


def test_big_endian_and_fortran_order_members_are_read_correctly(tmp_path):
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = tmp_path / "w.npz"
    write_zip(path, {**meta(linear_cfg(4, 3, bias=False)), "param.weight": npy_bytes(np.asfortranarray(w))})
    np.testing.assert_array_equal(load(path).weight.data, w)
    write_zip(path, {**meta(linear_cfg(4, 3, bias=False)), "param.weight": npy_bytes(w.astype(">f4"))})
    np.testing.assert_array_equal(load(path).weight.data, w)


@pytest.mark.parametrize("dtype", [np.int64, np.float16, np.complex64, np.bool_])
def test_non_float_weight_members_are_refused(tmp_path, dtype):
    path = tmp_path / "t.npz"
    write_zip(path, {**meta(linear_cfg(4, 3, bias=False)), "param.weight": npy_bytes(np.ones((3, 4), dtype))})
    with pytest.raises(ValueError, match=rf"t\.npz.*'weight': expected float32 or float64 values, got "
                                         rf"{np.dtype(dtype)}"):
        load(path)


def test_duplicate_member_names(tmp_path):
    path = tmp_path / "d.npz"
    with pytest.warns(UserWarning, match="Duplicate name"):
        with zipfile.ZipFile(path, "w") as zf:
            for k, v in {**meta(linear_cfg(2, 2)), **members_of(nn.Linear(2, 2))}.items():
                zf.writestr(k + ".npy", v)
            zf.writestr("param.weight.npy", npy_bytes(np.zeros((2, 2), np.float32)))
    with pytest.raises(ValueError, match=r"d\.npz' is not a readable.*duplicate member 'param.weight'"):
        load(path)


def patch_central_directory(data: bytes, name: bytes, offset: int, fmt: str, value) -> bytes:
    """Rewrite one field of `name`'s central directory entry (offset from the entry's signature)."""
    at = data.index(b"PK\x01\x02")
    while data[at + 46:at + 46 + len(name)] != name:
        at = data.index(b"PK\x01\x02", at + 4)
    out = bytearray(data)
    struct.pack_into(fmt, out, at + offset, value)
    return bytes(out)


@pytest.mark.parametrize("offset, fmt, value, match", [
    (8, "<H", 0x1, "encrypted"),
    (10, "<H", 99, "compression method 99"),
    (20, "<I", 10**9, "past the end of the"),
])
def test_implausible_zip_entries(tmp_path, offset, fmt, value, match):
    path = tmp_path / "z.npz"
    save(nn.Linear(3, 2, rng=0), path)
    path.write_bytes(patch_central_directory(path.read_bytes(), b"param.weight.npy", offset, fmt, value))
    with pytest.raises(ValueError, match=r"z\.npz' is not a readable cnn_core model file.*" + match):
        load_bounded(path)


def test_too_many_members_refused_from_the_end_record(tmp_path):
    path = tmp_path / "z.npz"
    save(nn.Linear(3, 2, rng=0), path)
    data = bytearray(path.read_bytes())
    eocd = data.rindex(b"PK\x05\x06")
    struct.pack_into("<HH", data, eocd + 8, 60000, 60000)
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"z\.npz.*60000 members, more than the limit of 50000"):
        load(path)


def all_layers():
    return [nn.Linear(5, 3), nn.Linear(5, 3, bias=False), nn.Conv2d(2, 4, 3), nn.Conv2d(2, 4, (3, 1), bias=False),
            nn.RNN(4, 6), nn.ReLU(), nn.Sigmoid(), nn.Tanh(), nn.ELU(0.5), nn.MaxPool2d(2), nn.AvgPool2d(3, 1),
            nn.Flatten(), RNNClassifier(7, 5, 3), lenet5(rng=0),
            nn.Sequential(nn.Sequential(nn.Linear(2, 3)), nn.ReLU(), nn.RNN(3, 2)),
            nn.LSTM(4, 6, num_layers=2), nn.GRU(4, 6, bias=False), nn.RNN(3, 5, 3, "relu", batch_first=True),
            nn.LastStep(), RNNClassifier(7, 5, 3, cell="lstm", num_layers=2), RNNClassifier(7, 5, 3, cell="gru")]


@pytest.mark.parametrize("layer", all_layers(), ids=lambda m: type(m).__name__)
def test_parameter_shapes_from_config_match_the_built_layer(layer):
    cfg = json.loads(json.dumps(nn.module_to_config(layer)))
    shapes = nn.module.parameter_shapes_from_config(cfg)
    assert shapes == {name: p.shape for name, p in layer.named_parameters()}


def test_custom_module_without_parameter_shapes_still_round_trips(tmp_path):
    @nn.register_module
    class Scale(nn.Module):
        def __init__(self, n, dtype=None):
            super().__init__(dtype)
            self.n = n
            self.s = nn.Parameter(np.full(n, 2.0, self.dtype))

        def get_config(self):
            return {"n": self.n, **super().get_config()}

    model = nn.Sequential(nn.Linear(2, 3), Scale(3))
    model[1].s.data[:] = [1, 2, 3]
    assert nn.module.parameter_shapes_from_config(nn.module_to_config(model)) is None
    path = tmp_path / "c.npz"
    save(model, path)
    np.testing.assert_array_equal(load(path)[1].s.data, [1, 2, 3])
    write_zip(path, {**meta(nn.module_to_config(Scale(4))), "param.s": npy_bytes(np.ones(3, np.float32))})
    with pytest.raises(ValueError, match=r"'s': the config implies shape \(4,\), the file holds shape \(3,\)"):
        load(path)


# ---- class 5: temporaries, permissions, symlinks, messages ----------------------------------------------

STALLED_SAVER = textwrap.dedent("""
    import os, sys, time
    from cnn_core import nn, serialization
    def stall(fd):  # the whole archive is written; stop just before the rename
        print("writing", flush=True)
        time.sleep(600)
    serialization.os.fsync = stall
    serialization.save(nn.Linear(2000, 2000, rng=0), sys.argv[1])  # 16 MB
""")


def start_stalled_saver(path):
    # cwd: `python -c` puts the current directory first on sys.path, where an unbuilt source tree would shadow
    # the installed package.
    proc = subprocess.Popen([sys.executable, "-c", STALLED_SAVER, str(path)], stdout=subprocess.PIPE, text=True,
                            cwd=path.parent)
    assert proc.stdout.readline().strip() == "writing"
    return proc


def temporaries(directory):
    return sorted(n for n in os.listdir(directory) if n.endswith(".tmp"))


def test_temporary_of_a_killed_saver_is_removed_by_the_next_save(tmp_path):
    path = tmp_path / "m.npz"
    save(nn.Linear(2, 2, rng=1), path)
    proc = start_stalled_saver(path)
    (tmp,) = temporaries(tmp_path)
    assert f"-{proc.pid}-" in tmp and os.path.getsize(tmp_path / tmp) > 16_000_000
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert temporaries(tmp_path) == [tmp]  # nothing could run in the killed process
    np.testing.assert_array_equal(load(path).weight.data, nn.Linear(2, 2, rng=1).weight.data)  # old file intact
    save(nn.Linear(2, 2, rng=2), path)
    assert temporaries(tmp_path) == []
    np.testing.assert_array_equal(load(path).weight.data, nn.Linear(2, 2, rng=2).weight.data)


def test_temporary_of_a_live_saver_is_kept(tmp_path):
    path = tmp_path / "m.npz"
    proc = start_stalled_saver(path)
    try:
        (tmp,) = temporaries(tmp_path)
        save(nn.Linear(2, 2, rng=1), path)  # another rank saving to the same path meanwhile
        assert temporaries(tmp_path) == [tmp]
        assert load(path).weight.shape == (2, 2)
    finally:
        proc.kill()
        proc.wait()


def test_other_hosts_and_other_files_temporaries_are_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    keep = [f".m.npz.00000000-{dead}-abcdef.tmp", f".other.npz.{serialization._host_tag()}-{dead}-abcdef.tmp",
            "m.npz.tmp"]
    stale = f".m.npz.{serialization._host_tag()}-{dead}-abcdef.tmp"
    for name in keep + [stale]:
        (tmp_path / name).write_bytes(b"x")
    save(nn.Linear(2, 2), tmp_path / "m.npz")
    assert sorted(os.listdir(tmp_path)) == sorted(keep + ["m.npz"])


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o444])
def test_saving_over_a_file_keeps_its_permissions(tmp_path, mode):
    path = tmp_path / "m.npz"
    save(nn.Linear(2, 2), path)
    os.chmod(path, mode)
    save(nn.Linear(2, 2, rng=3), path)
    assert stat.S_IMODE(os.stat(path).st_mode) == mode
    np.testing.assert_array_equal(load(path).weight.data, nn.Linear(2, 2, rng=3).weight.data)


def test_new_file_honours_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        save(nn.Linear(2, 2), tmp_path / "m.npz")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "m.npz").st_mode) == 0o640


def test_saving_to_a_symlink_writes_through_to_its_target(tmp_path):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "model.npz"
    save(nn.Linear(2, 2, rng=0), target)
    os.chmod(target, 0o600)
    link = tmp_path / "link.npz"
    link.symlink_to(os.path.join("real", "model.npz"))
    save(nn.Linear(2, 2, rng=5), link)
    assert link.is_symlink() and os.readlink(link) == os.path.join("real", "model.npz")
    np.testing.assert_array_equal(load(target).weight.data, nn.Linear(2, 2, rng=5).weight.data)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert temporaries(tmp_path) == [] and temporaries(tmp_path / "real") == []
    dangling = tmp_path / "dangling.npz"
    dangling.symlink_to(tmp_path / "real" / "new.npz")
    save(nn.Linear(2, 2), dangling)
    assert dangling.is_symlink() and (tmp_path / "real" / "new.npz").is_file()


def test_missing_directory_is_reported_by_the_given_path(tmp_path):
    path = tmp_path / "no" / "such" / "m.npz"
    with pytest.raises(FileNotFoundError) as info:
        save(nn.Linear(2, 2), path)
    assert info.value.filename == str(path) and str(path) in str(info.value)
    assert ".tmp" not in str(info.value) and "no such directory" in str(info.value)


def test_directory_as_target_is_refused(tmp_path):
    with pytest.raises(IsADirectoryError) as info:
        save(nn.Linear(2, 2), tmp_path)
    assert info.value.filename == str(tmp_path) and temporaries(tmp_path.parent) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_unwritable_directory_is_reported_by_the_given_path(tmp_path):
    os.chmod(tmp_path, 0o500)
    try:
        with pytest.raises(PermissionError) as info:
            save(nn.Linear(2, 2), tmp_path / "m.npz")
    finally:
        os.chmod(tmp_path, 0o700)
    assert info.value.filename == str(tmp_path / "m.npz") and ".tmp" not in str(info.value)


def test_temporary_removed_when_save_raises(tmp_path, monkeypatch):
    def fail(*a, **k):
        raise SystemExit(3)

    monkeypatch.setattr(serialization.np, "savez", fail)
    with pytest.raises(SystemExit):
        save(nn.Linear(2, 2), tmp_path / "m.npz")
    assert os.listdir(tmp_path) == []


# ---- class 6 (IDX part): element types, ranges, claimed sizes ------------------------------------------

_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


def write_idx(path, a):
    a = np.asarray(a)
    head = struct.pack(">HBB", 0, _CODES[a.dtype.type], a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
    path.write_bytes(head + a.astype(a.dtype.newbyteorder(">")).tobytes())


def mnist_dir(tmp_path, images, labels):
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    write_idx(tmp_path / "train-labels-idx1-ubyte", labels)
    return tmp_path


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.float32, np.float64])
def test_labels_of_any_element_type_come_back_exact(tmp_path, dtype):
    labels = np.array([0, 9, 3, 7], dtype)
    _, y = load_mnist(mnist_dir(tmp_path, np.zeros((4, 2, 2), np.uint8), labels))
    assert y.dtype == np.int64 and y.tolist() == [0, 9, 3, 7]


@pytest.mark.parametrize("labels, match", [
    (np.array([1, -5], np.int32), r"expected labels 0-9, got a -5 \(int32\) at index 1"),
    (np.array([1, -5], np.int8), r"got a -5 \(int8\)"),
    (np.array([1.7, 2], np.float32), r"got a 1.7\d* \(float32\) at index 0"),
    (np.array([2, np.nan], np.float64), r"got a nan \(float64\) at index 1"),
    (np.array([2, 10], np.int16), r"got a 10 \(int16\)"),
    (np.array([2, 2**31 - 1], np.int32), r"got a 2147483647"),
])
def test_bad_labels_are_refused_naming_the_file(tmp_path, labels, match):
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte: .*" + match):
        load_mnist(mnist_dir(tmp_path, np.zeros((2, 2, 2), np.uint8), labels))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32])
def test_integer_images_of_any_element_type_are_scaled_from_0_255(tmp_path, dtype):
    pixels = np.array([[[0, 51], [127, 102]]], dtype)
    X, _ = load_mnist(mnist_dir(tmp_path, pixels, np.array([1], np.uint8)))
    np.testing.assert_allclose(X[0, 0], [[0, 0.2], [127 / 255, 0.4]], rtol=1e-7)
    assert X.dtype == np.float32


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_images_already_in_0_1_are_taken_as_they_are(tmp_path, dtype):
    pixels = np.array([[[0, 0.2], [1, 0.4]]], dtype)
    X, _ = load_mnist(mnist_dir(tmp_path, pixels, np.array([1], np.uint8)))
    np.testing.assert_array_equal(X[0, 0], pixels[0].astype(np.float32))
    assert X.dtype == np.float32


@pytest.mark.parametrize("pixels, match", [
    (np.array([[[0, 256]]], np.int16), r"expected integer pixels 0..255 .*got int16 values in \[0, 256\], "
                                       r"the first outside being 256 at index \(0, 0, 1\)"),
    (np.array([[[-1, 3]]], np.int16), r"got int16 values in \[-1, 3\], the first outside being -1"),
    (np.array([[[0, 255.0]]], np.float32), r"got float32 values in \[0, 255\].*a / 255"),  # 0..255 floats: not guessed
    (np.array([[[0, 300.5]]], np.float32), r"the first outside being 300.5"),
    (np.array([[[np.inf, 1]]], np.float64), r"got NaN or infinity \(inf at index \(0, 0, 0\)\)"),
])
def test_images_outside_the_pixel_rule_are_refused_naming_the_file(tmp_path, pixels, match):
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: .*" + match):
        load_mnist(mnist_dir(tmp_path, pixels, np.array([1], np.uint8)))


def test_idx_header_claiming_more_than_the_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "a"
    path.write_bytes(struct.pack(">HBBIII", 0, 0x0E, 3, 60000, 28, 2**31) + bytes(100))
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"a: truncated IDX data: dimensions \(60000, 28, 2147483648\) need "
                                             r"28862180229120000 bytes, found 100"):
            load_idx(path)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < MiB


def test_gzip_idx_claiming_more_than_deflate_can_hold_is_refused(tmp_path):
    import gzip
    path = tmp_path / "a.gz"
    path.write_bytes(gzip.compress(struct.pack(">HBBII", 0, 0x08, 2, 2**20, 2**20) + bytes(1000)))
    with pytest.raises(ValueError, match=r"a\.gz: IDX dimensions \(1048576, 1048576\) need 1099511627776 bytes, "
                                         r"more than a \d+-byte gzip file can hold"):
        load_idx(path)
