"""Data-parallel training on MPI (cnn_core.distributed, fit(distributed=...), `train --distributed`).

Real jobs: `mpiexec -n 2` and `-n 3` run tests/mpi_worker.py (or the CLI) in a temporary directory, with a
timeout; the single-process reference is trained here, in the test process, on the same global batches.
Skipped where mpi4py or mpiexec is missing (the [mpi] extra; CI installs it through [test]).
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import mpi_worker
from cnn_core.distributed import shard

WORKER = os.path.abspath(mpi_worker.__file__)
TIMEOUT = 120  # seconds for one job, far above its few seconds: only a hang reaches it
# Relative tolerance of the equivalence: the ranks' summed gradients differ from one process's only in the
# summation order (a few float64 ulps per step); 20 steps of SGD with momentum keep that near 1e-15.
EQUAL = 1e-12


def _mpiexec() -> str | None:
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return here if os.access(here, os.X_OK) else shutil.which("mpiexec")


def _mpi_available() -> str | None:
    try:
        import mpi4py  # noqa: F401  (the package only: MPI itself is not started in the test process)
    except ImportError:
        return "mpi4py is not installed (the [mpi] extra)"
    if _mpiexec() is None:
        return "no mpiexec next to the interpreter or on PATH (the mpich wheel of the [mpi] extra)"
    return None


needs_mpi = pytest.mark.skipif(_mpi_available() is not None, reason=_mpi_available() or "")


def _run(n: int, args: list[str], cwd, timeout: float = TIMEOUT, **kw) -> subprocess.CompletedProcess:
    cmd = [_mpiexec(), "-n", str(n), sys.executable] + args
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, **kw)


def _load(out: str, rank: int) -> tuple[dict, dict]:
    with np.load(f"{out}.{rank}.npz") as f:
        arrays = {k: f[k] for k in f.files}
    with open(f"{out}.{rank}.json") as f:
        return arrays, json.load(f)


def _rel_diff(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float(np.abs(a[k] - b[k]).max()) for k in a) / max(float(np.abs(b[k]).max()) for k in b)


def test_shard_partitions_every_batch():
    for n in range(0, 40):
        for size in range(1, 9):
            parts = [shard(n, r, size) for r in range(size)]
            assert [i for p in parts for i in p] == list(range(n))   # contiguous, in rank order, complete
            assert max(map(len, parts)) - min(map(len, parts)) <= 1  # as even as possible
    with pytest.raises(ValueError, match="rank"):
        shard(10, 3, 3)
    with pytest.raises(TypeError):
        shard(10.0, 0, 2)


def test_missing_mpi4py_names_the_extra(tmp_path):
    code = ("import sys; sys.modules['mpi4py'] = None\n"
            "import numpy as np, cnn_core\n"
            "from cnn_core import nn, optim\n"
            "m = nn.Linear(3, 2)\n"
            "try:\n"
            "    cnn_core.fit(m, nn.MSELoss(), optim.SGD(m.parameters(), lr=0.1), np.zeros((4, 3), np.float32),\n"
            "                 np.zeros((4, 2), np.float32), distributed=True)\n"
            "except ImportError as e:\n"
            "    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "cnn_core[mpi]" in r.stdout


@needs_mpi
@pytest.mark.parametrize("kind, ranks, batch, buckets, overlap", [
    ("mlp", 2, 15, None, None),    # shards 8 + 7, last batch 13: 7 + 6
    ("mlp", 3, 16, None, None),    # 6 + 5 + 5
    ("lenet", 2, 9, None, None),   # 5 + 4
    ("lenet", 3, 10, 4, "1"),      # 4 + 3 + 3, four buckets, all-reduce overlapped with backward
], ids=["mlp-2", "mlp-3", "lenet5-2", "lenet5-3-overlap"])
def test_equals_single_process_training(tmp_path, kind, ranks, batch, buckets, overlap):
    out = str(tmp_path / "run")
    extra = [] if buckets is None else [str(buckets), overlap]
    r = _run(ranks, [WORKER, "train", out, kind, str(batch)] + extra, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    model, history = mpi_worker.train(kind, batch)
    ref = model.state_dict()
    results = [_load(out, rank) for rank in range(ranks)]
    for rank, (weights, record) in enumerate(results):
        assert record["size"] == ranks
        assert _rel_diff(weights, ref) <= EQUAL, rank
        for k in weights:  # every rank holds the same weights, bit for bit
            assert np.array_equal(weights[k], results[0][0][k]), (rank, k)
        h = record["history"]  # the logs are global: the single process's, up to rounding
        assert h["train_acc"] == history.history["train_acc"]
        assert h["val_acc"] == history.history["val_acc"]
        np.testing.assert_allclose(h["train_loss"], history.history["train_loss"], rtol=EQUAL)
        np.testing.assert_allclose(h["val_loss"], history.history["val_loss"], rtol=EQUAL)
    # the ranks started from different initializations: equality means rank 0's was broadcast
    assert _rel_diff(mpi_worker.build(kind, 12).state_dict(), mpi_worker.build(kind, 11).state_dict()) > 0.1


@needs_mpi
def test_batchnorm_buffers_are_rank_0s_everywhere(tmp_path):
    out = str(tmp_path / "run")
    r = _run(2, [WORKER, "train", out, "bn", "12"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    (w0, _), (w1, _) = _load(out, 0), _load(out, 1)
    assert {"1.running_mean", "1.running_var", "1.num_batches_tracked"} <= w0.keys()
    for k in w0:
        assert np.array_equal(w0[k], w1[k]), k
    assert int(w0["1.num_batches_tracked"]) == 20
    assert np.abs(w0["1.running_mean"]).max() > 0  # the statistics were updated, not left at their start


@needs_mpi
def test_api_allreduce_and_broadcast(tmp_path):
    out = str(tmp_path / "api")
    r = _run(3, [WORKER, "api", out], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    results = [_load(out, rank) for rank in range(3)]
    for rank, (arrays, record) in enumerate(results):
        assert record["size"] == 3 and record["is_main"] == (rank == 0)
        # weighted sum of 3 terms: each term rounded once, two additions: at most 3 eps x sum |terms|
        assert max(record["errors"].values()) <= 3, record["errors"]
        assert any(k.startswith("adam.") for k in arrays)  # rank 0's optimizer state reached every rank
        for k in arrays:
            assert np.array_equal(arrays[k], results[0][0][k]), (rank, k)


@needs_mpi
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # the deliberate overflow
def test_diverging_loss_on_one_rank_stops_every_rank(tmp_path):
    out = str(tmp_path / "run")
    r = _run(3, [WORKER, "diverge", out], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    model, stop = mpi_worker.diverge()
    assert stop[:2] == [0, 2] and "loss became inf" in stop[2]
    results = [_load(out, rank) for rank in range(3)]
    for rank, (weights, record) in enumerate(results):
        assert record["stop"][:2] == stop[:2], rank  # the same batch on every rank, as in one process
        assert _rel_diff(weights, model.state_dict()) <= EQUAL
    assert "loss became inf" in results[2][1]["stop"][2]      # the rank that saw it says what it saw,
    assert "another rank" in results[0][1]["stop"][2]          # the others that it came from elsewhere


@needs_mpi
def test_a_raising_rank_ends_the_job_quickly(tmp_path):
    start = time.monotonic()
    r = _run(2, [WORKER, "raise", str(tmp_path / "run")], tmp_path, timeout=60)
    seconds = time.monotonic() - start
    assert r.returncode != 0
    assert "deliberate failure on rank 1" in r.stderr
    assert "rank 1 of 2 failed; aborting the job" in r.stderr
    assert seconds < 30, seconds  # not a hang in the next collective (it takes ~2 s)


@needs_mpi
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_stops_every_rank_at_the_same_epoch(tmp_path):
    out = str(tmp_path / "run")
    cmd = [_mpiexec(), "-n", "2", sys.executable, WORKER, "interrupt", out]
    p = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(glob.glob(out + ".started.*")) < 2 and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.05)
        p.send_signal(signal.SIGINT)  # mpiexec forwards Ctrl-C to every rank
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err[-3000:]
    (w0, r0), (w1, r1) = _load(out, 0), _load(out, 1)
    assert r0["interrupted"] and r1["interrupted"]
    assert r0["epochs"] == r1["epochs"] >= 1
    for k in w0:
        assert np.array_equal(w0[k], w1[k]), k


@needs_mpi
def test_cli_trains_saves_on_rank_0_and_the_file_loads(tmp_path):
    import cnn_core
    from cnn_core.cli.data import fit_model_input, load_split

    path = tmp_path / "mlp.npz"
    r = _run(2, ["-m", "cnn_core", "train", "mlp", "--distributed", "--limit", "400", "--epochs", "2",
                 "--save", str(path), "--json"], tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    assert len(lines) == 1  # one JSON object: rank 0 alone prints
    result = json.loads(lines[0])
    assert result["world_size"] == 2 and result["saved"] == str(path)
    assert r.stderr.count("world size 2") == 1
    model = cnn_core.load(str(path))
    X, y = load_split(None, "test")
    X, y = X[:400], y[:400]
    acc = float((cnn_core.predict(model, fit_model_input(model, X, "X")).argmax(axis=1) == y).mean())
    assert acc == pytest.approx(result["test_accuracy"], abs=1e-12)
    assert acc > 0.5  # it learned (10 classes)
