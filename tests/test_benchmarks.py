"""The benchmarks' harness (benchmarks/_timing.py), not their figures: the timer's arithmetic on a fake clock,
the interleaving of peers, the clean BLAS environment, and every script starting from any directory."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import cnn_core

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if not p.name.startswith("_"))


@pytest.fixture
def timing(monkeypatch):
    """benchmarks/_timing.py with a fake clock that advances 1 ms per call of the timed function."""
    spec = importlib.util.spec_from_file_location("_timing", BENCH / "_timing.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    clock = [0.0]
    monkeypatch.setattr(mod.time, "perf_counter", lambda: clock[0])
    mod.SETTLE = mod.WARMUP_SECONDS = 0.0   # the arithmetic below counts calls; warm-up time has its own test

    def tick(ms=1.0):
        clock[0] += ms * 1e-3
    mod.tick = tick
    return mod


def test_scripts_found():
    assert {"bench_kernels.py", "bench_train.py", "bench_layers.py", "accuracy.py"} <= set(SCRIPTS)


def test_calls_per_block_doubles_until_the_block_is_long_enough(timing):
    calls = []
    n = timing.calls_per_block(lambda: (calls.append(1), timing.tick()), min_time=3e-3)
    assert n == 4
    assert len(calls) == 1 + 1 + 2 + 4   # warm-up, then blocks of 1, 2, 4


def test_median_time_is_seconds_per_call(timing):
    durations = iter([1.0] * 8 + [5.0, 1.0, 2.0] * 4)   # ms: calibration (1 + 1 + 2 + 4), then 3 blocks of 4
    t = timing.median_time(lambda: timing.tick(next(durations)), repeats=3, min_time=3e-3)
    # blocks of 4 calls each take (5+1+2+5)=13, (1+2+5+1)=9, (2+5+1+2)=10 ms: per call 3.25, 2.25, 2.5 ms
    assert t == pytest.approx(2.5e-3)


def test_median_time_with_a_fixed_number_and_warmup(timing):
    calls = []
    t = timing.median_time(lambda: (calls.append(1), timing.tick(2.0)), repeats=5, number=3, warmup=4)
    assert len(calls) == 4 + 5 * 3
    assert t == pytest.approx(2e-3)


def test_interleaved_alternates_peers_round_by_round(timing):
    order = []
    a = lambda: (order.append("a"), timing.tick(1.0))  # noqa: E731
    b = lambda: (order.append("b"), timing.tick(3.0))  # noqa: E731
    samples = timing.interleaved_samples([a, b], repeats=2, rounds=2, warmup=1)
    assert "".join(order) == "aaa" "bbb" "aaa" "bbb"
    assert samples == [[pytest.approx(1e-3)] * 4, [pytest.approx(3e-3)] * 4]
    assert timing.interleaved([a, b], repeats=1, rounds=1, warmup=0) == [pytest.approx(1e-3), pytest.approx(3e-3)]


def test_paired_ratio_pairs_each_rounds_two_blocks(timing):
    # a takes twice b's time. A slow phase (x1.6) over round 0's a-block and both of round 1's blocks: the
    # overall medians (3.2 ms, 1.0 ms) say 3.2x; each round's pair says 3.2, 2.0, 2.0, median 2.0.
    speed = iter([1.6] * 2 + [1.0] * 2 + [1.6] * 4 + [1.0] * 4)   # 2 calls a block, no warm-up
    base = {"a": 2.0, "b": 1.0}
    fn = lambda name: lambda: timing.tick(base[name] * next(speed))  # noqa: E731
    t_a, t_b, ratio = timing.paired_ratio([fn("a"), fn("b")], repeats=2, rounds=3, warmup=0)
    assert t_a == pytest.approx(3.2e-3) and t_b == pytest.approx(1.0e-3)
    assert ratio == pytest.approx(2.0)
    assert next(speed, None) is None


def test_children_serve_timed_actions_round_by_round(tmp_path):
    # Peers in processes of their own (_timing.Child running _timing.serve) alternate as functions of this
    # process do, and answer calls for results.
    spec = importlib.util.spec_from_file_location("_timing", BENCH / "_timing.py")
    timing = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(timing)
    timing.SETTLE = timing.WARMUP_SECONDS = 0.0
    log = tmp_path / "calls"

    def child(letter: str):
        code = (f"import sys\nsys.path.insert(0, {str(BENCH)!r})\nimport _timing\n_timing.WARMUP_SECONDS = 0\n"
                f"def step():\n    open({str(log)!r}, 'a').write({letter!r})\n"
                f"_timing.serve({{'step': step, 'name': lambda: {letter!r} * 2}})\n")
        return timing.Child([sys.executable, "-c", code])

    with child("a") as a, child("b") as b:
        medians = timing.interleaved([(a, "step"), (b, "step")], repeats=2, rounds=2, warmup=1)
        assert log.read_text() == "aaa" "bbb" "aaa" "bbb"
        assert len(medians) == 2 and all(0 < t < 1 for t in medians)
        assert b.call("name") == "bb"
    # The constructor waits for the peer's start-up (its imports and data) to end, so that nothing of it runs
    # beside the first timed call.
    ready = tmp_path / "ready"
    code = (f"import sys, time\nsys.path.insert(0, {str(BENCH)!r})\nimport _timing\ntime.sleep(0.3)\n"
            f"open({str(ready)!r}, 'w').write('set up')\n_timing.serve({{}})\n")
    with timing.Child([sys.executable, "-c", code]):
        assert ready.read_text() == "set up"
    with pytest.raises(RuntimeError, match="exited with 3"):
        timing.Child([sys.executable, "-c", "raise SystemExit(3)"])


def test_warmup_lasts_warmup_seconds(timing):
    calls = []
    timing.WARMUP_SECONDS = 10e-3
    timing.median_time(lambda: (calls.append(1), timing.tick(2.0)), repeats=1, number=1, warmup=2)
    assert len(calls) == 5 + 1   # warm-up calls until 10 ms have passed (2 ms each), then the timed one
    calls.clear()
    timing.interleaved([lambda: (calls.append(1), timing.tick(2.0))], repeats=1, rounds=1, warmup=0)
    assert len(calls) == 1       # no warm-up asked: none


def test_openblas_overrides_are_dropped_before_numpy_loads(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(f"import sys\nsys.path.insert(0, {str(BENCH)!r})\nimport _timing\nimport os\n"
                      "print(os.environ.get('OPENBLAS_CORETYPE'), os.environ.get('OPENBLAS_L2_SIZE'), sys.argv[1:])\n")
    env = {**os.environ, "OPENBLAS_CORETYPE": "Prescott", "OPENBLAS_L2_SIZE": "1024"}
    out = subprocess.run([sys.executable, str(script), "x", "--y"], env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.split() == ["None", "None", "['x',", "'--y']"]


def test_machine_names_cpu_simd_and_blas():
    spec = importlib.util.spec_from_file_location("_timing", BENCH / "_timing.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    line = mod.machine()
    for words in ("CPU ", f"SIMD {cnn_core.get_simd()} ", "threads", "NumPy "):
        assert words in line


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_benchmark_starts_from_any_directory(script):
    proc = subprocess.run([sys.executable, str(BENCH / script), "--help"], cwd="/", capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:")


FASHION = "/usr/share/datasets/fashion-mnist"


@pytest.mark.skipif(not os.path.isdir(FASHION), reason="no Fashion-MNIST at " + FASHION)
def test_bench_train_profile_and_memory_child_run():
    # The per-phase profile covers every layer's forward and backward and fit's own pieces, and the memory
    # child prints the MiB one (short) epoch adds: a number, not an error.
    run = subprocess.run([sys.executable, str(BENCH / "bench_train.py"), "--profile", "mlp", "--batches", "12",
                          "--threads", "1"], cwd="/", capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    # (the ReLU after the first Linear runs inside it: nn.Sequential's fusion)
    for row in ("forward+ReLU 0 Linear", "backward 0 Linear", "forward 2 Linear", "backward 2 Linear",
                "loss forward", "optimizer step",
                "fit: next batch", "fit: gradients' NaN/inf scan", "fit: the rest"):
        assert row in run.stdout
    child = subprocess.run([sys.executable, str(BENCH / "bench_train.py"), "--memory-child", "cnn_core",
                            "--models", "mlp", "--batches", "5", "--threads", "1"], cwd="/", capture_output=True,
                           text=True, timeout=300)
    assert child.returncode == 0, child.stderr
    assert float(child.stdout.split()[-1]) >= 0.0


def test_bench_train_clock_times_the_objects_fit_is_given():
    """bench_train's StepClock times the model's, the loss's and the optimizer's calls through attributes of
    those objects themselves (fit is given the real loss and optimizer, no proxy whose extra frames would count
    as fit's own work), and a timed epoch through fit spends part, not all, of the call inside them."""
    import numpy as np

    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("bench_train", BENCH / "bench_train.py")
        bt = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bt)
    finally:
        sys.path.remove(str(BENCH))
    clock = bt.StepClock()
    loss = clock.wrap(cnn_core.nn.CrossEntropyLoss(), ("forward", "backward"))
    assert type(loss) is cnn_core.nn.CrossEntropyLoss
    loss(np.eye(3, dtype=np.float32), np.array([0, 1, 0]))
    assert clock.seconds > 0 and loss._argmax_hits == 2
    rng = np.random.default_rng(0)
    X, y = rng.random((640, 784), dtype=np.float32), rng.integers(0, 10, 640)
    epoch, _, _, _, overheads = bt.cnn_core_trainer("mlp", X, y, X[:10], y[:10], None, 0)
    epoch()
    (total, inside), = overheads
    assert 0 < inside < total
