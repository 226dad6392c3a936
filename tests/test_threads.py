"""Thread control: fork safety, the thread cap, one process-wide count, per-thread GEMM buffers, the build's
OpenMP probe (issue 8, classes 1, 2, 3 and 9).

Several tests run in a fresh interpreter (subprocess) so that the OpenMP state they need (no team started
yet, 256 threads, an environment variable read at import) does not depend on what other tests did. Team
sizes are observed from outside the kernels: libgomp keeps a pool of team-size - 1 worker threads for each
thread that starts a team, and they show up in /proc/self/task.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import multiprocessing
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

import cnn_core
from cnn_core import _config
from cnn_core.kernels import (_gemm, avg_pool2d_backward, avg_pool2d_forward, col2im, gemm, gemm_batched, im2col,
                              linear_forward, max_pool2d_backward, max_pool2d_forward, sigmoid)

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
OPENMP = cnn_core.openmp_enabled()
LINUX = sys.platform.startswith("linux")
# Under AddressSanitizer (the CI's sanitizer stage preloads libasan) freed memory sits in a quarantine, so
# resident memory says nothing about whether a buffer was freed.
ASAN = "libasan" in os.environ.get("LD_PRELOAD", "")

needs_openmp = pytest.mark.skipif(not OPENMP, reason="serial build: no OpenMP teams")
needs_proc = pytest.mark.skipif(not LINUX, reason="counts threads in /proc/self/task (Linux)")
needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")

# Each kernel below runs in parallel (GEMM, activations, linear and batched GEMM at any thread count up to
# the cap: >= 256 independent pieces of work: rows, chunks, samples, GEMM blocks of 2**20 multiply-adds;
# pooling and im2col/col2im on as many threads as their thresholds in src_c/thresholds.h allow, 2 and 22
# here), and none of their results depends on the thread count, so results are compared bit for bit.
CAP_WORK = 256


def shared_panels_gemm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b on the GEMM's shared-panel driver, an OpenMP team whatever the size (by default a product up to
    2048^3 splits C statically on the small-job pool, whose workers the team counts here would not see)."""
    _gemm.set_partition(0)
    try:
        return gemm(a, b)
    finally:
        _gemm.set_partition(-1)


def kernel_digests(seed: int = 0) -> dict[str, str]:
    """SHA-256 of every parallel kernel's output on fixed inputs (equal digests = equal bits)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((700, 700))                         # 343M multiply-adds: 327 GEMM blocks
    x = rng.standard_normal((8, 40, 32, 32))                     # 320 planes, 327,680 elements
    z = rng.standard_normal(CAP_WORK * 32768).astype(np.float32)  # 256 activation chunks
    xl, wl, bl = rng.standard_normal((300, 64)), rng.standard_normal((64, 64)), rng.standard_normal(64)
    ab = rng.standard_normal((300, 8, 8))                        # 300 samples
    cols = im2col(x, 3, padding=1)
    pooled, argmax = max_pool2d_forward(x, 2)
    averaged = avg_pool2d_forward(x, 3, 2)
    outputs = {
        "gemm": shared_panels_gemm(a, a.T),
        "im2col": cols,
        "col2im": col2im(cols, x.shape, 3, padding=1),
        "max_pool2d": pooled,
        "max_pool2d_backward": max_pool2d_backward(pooled, argmax, x.shape),
        "avg_pool2d": averaged,
        "avg_pool2d_backward": avg_pool2d_backward(averaged, x.shape, 3, 2),
        "sigmoid": sigmoid(z),
        "linear_forward": linear_forward(xl, wl, bl),
        "gemm_batched": gemm_batched(ab, ab),
    }
    return {name: hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest() for name, v in outputs.items()}


def calm_load() -> None:
    """In a test's fresh interpreter: the pool's look at the load reads a calm machine (a file removed at
    exit), as conftest's calm_machine makes it for the test session, so that the team sizes observed do not
    depend on what else the machine runs (a busy machine runs every kernel on one thread)."""
    import atexit
    import tempfile

    from calm import use_calm_load

    fd, path = tempfile.mkstemp(suffix=".loadavg")
    os.close(fd)
    use_calm_load(path)
    atexit.register(os.remove, path)


def task_count() -> int:
    """Threads of this process (Python threads and OpenMP workers alike)."""
    return len(os.listdir("/proc/self/task"))


def settled_task_count(timeout: float = 10.0) -> int:
    """task_count() once it has stopped changing: OpenMP workers of an ended thread leave asynchronously."""
    last, deadline = task_count(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = task_count()
        if now == last:
            return now
        last = now
    raise AssertionError(f"thread count still changing after {timeout} s")


def pool_workers() -> int:
    """The small-job pool's workers started so far (one set for the whole process, grown on demand)."""
    return _config._pool_stats()[3]


def team_workers(fn) -> int:
    """OpenMP workers started by running fn in a fresh Python thread (its team size - 1); the small-job
    pool's workers it starts are not counted (pool_workers)."""
    settled_task_count()
    out = {}

    def run():
        before, pool_before = task_count(), pool_workers()
        fn()
        out["workers"] = task_count() - before - (pool_workers() - pool_before)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    return out["workers"]


@contextmanager
def num_threads(n: int):
    before = cnn_core.get_num_threads()
    cnn_core.set_num_threads(n)
    try:
        yield
    finally:
        cnn_core.set_num_threads(before)


def run_python(code: str, timeout: float = 300, env: dict | None = None) -> str:
    """Run code in a fresh interpreter that can import this module; return its stdout, fail on error.

    It runs in tests/ so that `python -c`'s current-directory entry on sys.path cannot pick up an unbuilt
    cnn_core/ source tree instead of the installed package."""
    preamble = f"import sys\nsys.path.insert(0, {str(TESTS)!r})\n"
    proc = subprocess.run([sys.executable, "-c", preamble + textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})}, cwd=TESTS)
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def run_forked(fn, timeout: float = 120.0):
    """fn() in a child made by os.fork; its JSON-able result, or AssertionError if it hangs or fails."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:   # child: never return into the caller (pytest) whatever happens
        code = 1
        try:
            os.close(r)
            os.write(w, json.dumps(fn()).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([r], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            chunk = os.read(r, 1 << 16)
            if not chunk:
                _, status = os.waitpid(pid, 0)
                pid = 0
                assert os.waitstatus_to_exitcode(status) == 0, f"forked child failed: status {status}"
                return json.loads(b"".join(chunks))
            chunks.append(chunk)
        raise AssertionError(f"forked child still running after {timeout} s (hung in a kernel?)")
    finally:
        os.close(r)
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def _forked_state() -> dict:
    return {"threads": cnn_core.get_num_threads(), "digests": kernel_digests()}


# ---- 1. fork safety ---------------------------------------------------------------------------------


@needs_fork
def test_fork_pool_children_after_parallel_parent_match_parent():
    """multiprocessing's 'fork' workers of a parent that ran parallel kernels finish and agree with it."""
    with num_threads(2):
        expected = kernel_digests()
        with multiprocessing.get_context("fork").Pool(2) as pool:
            results = [pool.apply_async(_forked_state) for _ in range(2)]
            got = [r.get(timeout=120) for r in results]
    for state in got:
        assert state["digests"] == expected
        assert state["threads"] == 1


@needs_fork
def test_os_fork_child_and_grandchild_after_parallel_parent():
    """os.fork directly, twice deep: both generations run every kernel (serially) to the parent's result."""
    with num_threads(2):
        expected = kernel_digests()

        def child():
            return {**_forked_state(), "grandchild": run_forked(_forked_state, timeout=100)}

        got = run_forked(child)
    for state in (got, got["grandchild"]):
        assert state["digests"] == expected
        assert state["threads"] == 1


@needs_fork
@needs_openmp
def test_set_num_threads_in_fork_serial_child_warns_and_stays_serial():
    with num_threads(2):
        kernel_digests()   # a team in this thread: its children cannot start OpenMP threads

        def child():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                cnn_core.set_num_threads(3)
                cnn_core.set_num_threads(1)   # serial anyway: nothing to warn about
            try:
                cnn_core.set_num_threads(_config.MAX_NUM_THREADS + 1)
                rejected = False
            except ValueError:
                rejected = True
            return {"warnings": [(w.category.__name__, str(w.message)) for w in caught],
                    "threads": cnn_core.get_num_threads(), "rejected": rejected}

        got = run_forked(child)
    assert got["threads"] == 1
    assert got["rejected"]
    assert len(got["warnings"]) == 1
    category, message = got["warnings"][0]
    assert category == "RuntimeWarning"
    assert "set_num_threads(3)" in message and "forked" in message and "serial" in message


@needs_fork
@needs_openmp
@needs_proc
def test_fork_before_any_team_keeps_all_threads():
    """A child of a parent whose forking thread never started a team keeps its threads (a fresh team),
    even when another thread of the parent did start one."""
    out = run_python("""
        import json, os, threading
        import cnn_core
        import test_threads as t
        t.calm_load()
        cnn_core.set_num_threads(2)
        worker = threading.Thread(target=t.kernel_digests)   # a team owned by another thread
        worker.start(); worker.join()
        state = t.run_forked(lambda: {"threads": cnn_core.get_num_threads(),
                                      "workers": t.team_workers(t.kernel_digests),
                                      "pool_workers": t.pool_workers(),
                                      "digests": t.kernel_digests()})
        state["expected"] = t.kernel_digests()
        print(json.dumps(state))
    """)
    state = json.loads(out)
    assert state["threads"] == 2
    assert state["workers"] == 1
    assert state["pool_workers"] == 1          # the pooling kernels' team: the child's own pool
    assert state["digests"] == state["expected"]


# ---- 2. thread cap ----------------------------------------------------------------------------------


def test_max_num_threads_is_a_documented_constant():
    assert _config.MAX_NUM_THREADS == 256
    assert "MAX_NUM_THREADS (256)" in cnn_core.set_num_threads.__doc__
    readme = (ROOT / "README.md").read_text()
    assert "MAX_NUM_THREADS" in readme and "256" in readme


@pytest.mark.parametrize("n", [257, 1000, 65536, 2**31, 2**64])
def test_set_num_threads_rejects_counts_above_the_cap(n):
    before = cnn_core.get_num_threads()
    with pytest.raises(ValueError) as info:
        cnn_core.set_num_threads(n)
    assert str(info.value) == f"n: expected a thread count in 1..256 (MAX_NUM_THREADS), got {n}"
    assert cnn_core.get_num_threads() == before


@needs_openmp
def test_more_threads_than_cores_is_allowed():
    with num_threads((os.cpu_count() or 1) + 1):
        assert cnn_core.get_num_threads() == (os.cpu_count() or 1) + 1


@needs_openmp
@needs_proc
def test_kernels_run_with_teams_at_the_cap():
    """256 threads start (from the main thread and from a Python thread's smaller stack) and every parallel
    kernel gives the serial result."""
    out = run_python("""
        import json, threading
        import cnn_core
        import test_threads as t
        t.calm_load()
        cnn_core.set_num_threads(1)
        serial = t.kernel_digests()
        cnn_core.set_num_threads(cnn_core._config.MAX_NUM_THREADS)
        base, pool_base = t.task_count(), t.pool_workers()
        main = t.kernel_digests()
        pool = t.pool_workers() - pool_base
        main_workers = t.task_count() - base - pool
        workers = t.team_workers(t.kernel_digests)
        print(json.dumps({"equal": main == serial, "main_workers": main_workers, "workers": workers,
                          "pool": pool, "threads": cnn_core.get_num_threads()}))
    """)
    state = json.loads(out)
    # (the poolings run on the pool: 327,680 elements make a team of 2 at CNN_POOL_MIN_PER_THREAD)
    assert state == {"equal": True, "main_workers": 255, "workers": 255, "pool": 1, "threads": 256}


@needs_openmp
def test_omp_num_threads_above_the_cap_is_clamped_with_a_warning():
    out = run_python("""
        import json, warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            import cnn_core
        import test_threads as t
        t.kernel_digests()
        print(json.dumps({"threads": cnn_core.get_num_threads(),
                          "warnings": [str(w.message) for w in caught if w.category is RuntimeWarning]}))
    """, env={"OMP_NUM_THREADS": "65536"})
    state = json.loads(out)
    assert state["threads"] == 256
    assert state["warnings"] == ["OMP_NUM_THREADS='65536' asks for 65536 threads, more than cnn_core's cap "
                                 "of 256: using 256"]


@needs_openmp
def test_omp_num_threads_within_the_cap_is_the_initial_count():
    out = run_python("""
        import warnings
        warnings.simplefilter("error")
        import cnn_core
        print(cnn_core.get_num_threads())
    """, env={"OMP_NUM_THREADS": "3"})
    assert out.strip() == "3"


# ---- 3. one process-wide count; per-thread buffers --------------------------------------------------


@needs_openmp
@needs_proc
def test_thread_count_applies_to_kernels_in_other_python_threads():
    """set_num_threads in one thread sizes the teams of kernels called from any other thread (OpenMP's
    own setting is per thread: a new thread would get OMP_NUM_THREADS or the core count)."""
    out = run_python("""
        import json, threading
        import cnn_core
        import numpy as np
        from cnn_core.kernels import gemm, im2col, max_pool2d_forward
        import test_threads as t
        t.calm_load()
        a = np.ones((512, 512))
        x = np.ones((4, 64, 48, 48))   # above the pooling and im2col thresholds for 4 threads
        kernels = {"gemm": lambda: t.shared_panels_gemm(a, a), "im2col": lambda: im2col(x, 3),
                   "max_pool2d": lambda: max_pool2d_forward(x, 2)}
        seen = {}
        for n in (1, 3, 4):
            cnn_core.set_num_threads(n)
            seen[n] = {name: t.team_workers(fn) for name, fn in kernels.items() if name != "max_pool2d"}
            t.team_workers(kernels["max_pool2d"])     # on the pool, which grows to its largest team
            seen[n]["max_pool2d"] = t.pool_workers()
        setter = threading.Thread(target=cnn_core.set_num_threads, args=(2,))
        setter.start(); setter.join()
        print(json.dumps({"seen": seen, "after_thread_set": cnn_core.get_num_threads()}))
    """, env={"OMP_NUM_THREADS": "2"})
    state = json.loads(out)
    for n, workers in state["seen"].items():
        assert workers == {"gemm": int(n) - 1, "im2col": int(n) - 1, "max_pool2d": int(n) - 1}, n
    assert state["after_thread_set"] == 2


def test_concurrent_gemms_from_python_threads_are_correct():
    """Each thread packs into its own buffers: concurrent calls give the serial results."""
    rng = np.random.default_rng(3)
    pairs = [(rng.standard_normal((300, 200 + 7 * i)), rng.standard_normal((200 + 7 * i, 250)))
             for i in range(6)]
    expected = [gemm(a, b) for a, b in pairs]
    got = [None] * len(pairs)

    def run(i):
        for _ in range(5):
            got[i] = gemm(*pairs[i])

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(pairs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e, g in zip(expected, got):
        assert np.array_equal(e, g)


@needs_proc
@pytest.mark.skipif(ASAN, reason="AddressSanitizer keeps freed memory in quarantine")
def test_gemm_buffers_are_freed_when_threads_end():
    """40 short-lived threads each run a GEMM needing ~8 MB of packing buffers: memory stays bounded."""
    out = run_python("""
        import json, threading
        import numpy as np
        import cnn_core
        from cnn_core.kernels import gemm

        def rss_mb():
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024

        rng = np.random.default_rng(0)
        a, b = rng.standard_normal((96, 256)), rng.standard_normal((256, 4096))
        c = np.empty((96, 4096))
        ok = True

        def run():
            global ok
            ok &= bool(np.allclose(gemm(a, b, c), a @ b))

        def threads(count):
            for _ in range(count):
                t = threading.Thread(target=run)
                t.start()
                t.join()

        threads(4)            # warm-up: allocator arenas, libgomp, NumPy
        start = rss_mb()
        threads(40)
        print(json.dumps({"growth_mb": rss_mb() - start, "ok": ok}))
    """)
    state = json.loads(out)
    assert state["ok"]
    # Kept buffers would grow memory by ~8 MB a thread (320 MB); freed ones leave allocator noise only.
    assert state["growth_mb"] < 40, state


# ---- 9. build: the OpenMP probe ---------------------------------------------------------------------


def _load_setup():
    pytest.importorskip("Cython", reason="building needs Cython (installed by the sanitizer CI stage)")
    spec = importlib.util.spec_from_file_location("cnn_core_setup", ROOT / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)   # runs setup() only as __main__
    return module


def _compiler():
    from setuptools._distutils.ccompiler import new_compiler
    from setuptools._distutils.sysconfig import customize_compiler
    compiler = new_compiler()
    customize_compiler(compiler)      # reads CC, CFLAGS, LDFLAGS now, as build_ext does
    return compiler


@needs_openmp
@pytest.mark.skipif(not LINUX, reason="GNU toolchain flags")
def test_openmp_probe_links_with_the_build_flags(monkeypatch):
    setup = _load_setup()
    monkeypatch.delenv("CFLAGS", raising=False)
    monkeypatch.delenv("LDFLAGS", raising=False)
    assert setup.openmp_probe_error(_compiler()) is None
    sanitize = "-fsanitize=address,undefined"   # a probe that ignored LDFLAGS failed to link these
    monkeypatch.setenv("CFLAGS", sanitize)
    monkeypatch.setenv("LDFLAGS", sanitize)
    assert setup.openmp_probe_error(_compiler()) is None
    monkeypatch.setenv("LDFLAGS", "-Wl,--cnn-core-no-such-option")   # LDFLAGS reach the probe's link
    assert setup.openmp_probe_error(_compiler()) is not None
    monkeypatch.setenv("LDFLAGS", sanitize)
    monkeypatch.setenv("CFLAGS", "-fcnn-core-no-such-flag")            # CFLAGS reach its compile
    assert setup.openmp_probe_error(_compiler()) is not None


@pytest.mark.skipif(not LINUX, reason="GNU toolchain flags")
def test_require_openmp_turns_a_failed_probe_into_a_build_error(monkeypatch):
    setup = _load_setup()
    monkeypatch.setenv("LDFLAGS", "-Wl,--cnn-core-no-such-option")
    monkeypatch.delenv("CNN_CORE_NO_OPENMP", raising=False)
    monkeypatch.delenv("CNN_CORE_REQUIRE_OPENMP", raising=False)
    assert setup.use_openmp(_compiler()) is False          # default: fall back to a serial build
    monkeypatch.setenv("CNN_CORE_REQUIRE_OPENMP", "1")
    with pytest.raises(RuntimeError, match="CNN_CORE_REQUIRE_OPENMP=1 but OpenMP is not available"):
        setup.use_openmp(_compiler())
    monkeypatch.setenv("CNN_CORE_NO_OPENMP", "1")
    with pytest.raises(RuntimeError, match="contradict"):
        setup.use_openmp(_compiler())
