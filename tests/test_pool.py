"""The small-job pool of src_c/threads.c (threads.h, "the small-job pool"): the GEMM's small products (the
static partition and the unpacked path) run their shares on persistent workers that spin between jobs only
while the process is alone on its cores. Results are bitwise those of one thread whatever runs them; the
pool is left to OpenMP when another Python thread holds it; on a busy machine products run on the calling
thread and an idle worker sleeps at once; a forked child still computes."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import cnn_core
from cnn_core import _config
from cnn_core.kernels import _gemm, gemm

from calm import needs_pool


# (m, n, k): the MLP's fc1 forward and weight gradient (static partition), a small unpacked product, one
# whose rows are too few for a band per thread (column panels), and odd edges.
SHAPES = [(64, 100, 784), (100, 784, 64), (48, 40, 30), (5, 700, 600), (97, 131, 389), (64, 10, 100)]


def _serial(a, b):
    cnn_core.set_num_threads(1)
    try:
        return gemm(a, b)
    finally:
        cnn_core.set_num_threads(2)


@needs_pool
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("spin_us", [-1, 0])   # the default spin window, and workers that always sleep
def test_pool_products_equal_one_thread_bitwise(two_threads, dtype, spin_us):
    _config._pool_set_spin_us(spin_us)
    rng = np.random.default_rng(0)
    for m, n, k in SHAPES:
        a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
        expected = _serial(a, b)
        for nt in (2, 3):
            cnn_core.set_num_threads(nt)
            for _ in range(20):   # back-to-back jobs: spinning and waking workers alike
                _gemm.reset_backoff()
                assert np.array_equal(gemm(a, b), expected), (m, n, k, nt)
        cnn_core.set_num_threads(2)
        assert np.allclose(expected, a.astype(np.float64) @ b.astype(np.float64),
                           rtol=1e-4 if dtype == np.float32 else 1e-12, atol=1e-3 if dtype == np.float32 else 1e-10)


@needs_pool
def test_small_team_products_run_on_the_pool(two_threads):
    """A team-sized small product goes to the pool (its job count grows by one per product), a product too
    small for a team does not."""
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((64, 784)).astype(np.float32), rng.standard_normal((784, 100)).astype(np.float32)
    jobs = _config._pool_stats()[0]
    for _ in range(5):
        _gemm.reset_backoff()
        gemm(a, b)
    assert _config._pool_stats()[0] == jobs + 5
    gemm(a[:4, :20], b[:20, :10])   # 800 multiply-adds: one thread
    assert _config._pool_stats()[0] == jobs + 5


@needs_pool
def test_concurrent_python_threads_share_or_fall_back_correctly(two_threads):
    """Four Python threads issue small products at once: one holds the pool, the others take OpenMP teams;
    every result is the one-thread result."""
    rng = np.random.default_rng(2)
    pairs = [(rng.standard_normal((64 + i, 784)).astype(np.float32),
              rng.standard_normal((784, 100 + 3 * i)).astype(np.float32)) for i in range(4)]
    expected = [_serial(a, b) for a, b in pairs]
    bad = []

    def run(i):
        for _ in range(200):
            if not np.array_equal(gemm(*pairs[i]), expected[i]):
                bad.append(i)
                return

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert bad == []


def _run(code: str, tmp_path, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS",)}
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr
    return proc


@needs_pool
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity")
@pytest.mark.parametrize("cpus", [1, 2])
def test_a_spinning_process_sends_the_products_to_the_calling_thread(tmp_path, cpus):
    """A process held to one CPU or two, and a busy loop on them: the loop leaves no core for a team's second
    thread, so once the load has been looked at twice (2 ms apart) the products run on the calling thread,
    not the pool (a team there waits for the member that shares a CPU with the loop: MLP epochs 3-5x
    slower than on one thread), and the results stay exact. On two CPUs the process itself runs one task
    and the loop the other: it looked alone when every running task counted."""
    if len(os.sched_getaffinity(0)) < cpus:
        pytest.skip(f"needs {cpus} CPUs")
    _run(f"""
        import os, subprocess, sys, time
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:{cpus}])
        spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(0.3)
            import numpy as np, cnn_core
            from cnn_core import _config
            from cnn_core.kernels import _gemm, gemm
            rng = np.random.default_rng(0)
            a = rng.standard_normal((64, 784)).astype(np.float32)
            b = rng.standard_normal((784, 100)).astype(np.float32)
            cnn_core.set_num_threads(1); expected = gemm(a, b); cnn_core.set_num_threads(2)
            jobs0 = _config._pool_stats()[0]
            for _ in range(30):
                _gemm.reset_backoff()
                assert np.array_equal(gemm(a, b), expected)
                time.sleep(0.003)   # past the pool's 2 ms between looks at the load
            jobs = _config._pool_stats()[0]
            assert jobs - jobs0 <= 2, (jobs, jobs0)
        finally:
            spinner.kill()
        """, tmp_path)


@needs_pool
@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs os.sched_getaffinity and 2 CPUs")
def test_teams_only_while_no_other_task_wants_their_cores(tmp_path):
    """The load (a file of the test's own in /proc/loadavg's format) counts other processes' running tasks:
    the running tasks less this process's own (the caller, and its pool's worker while awake). Two threads on
    two CPUs: with other tasks running (3 running: at least one other, the worker awake or asleep), products
    run on the calling thread from the second look on; with none (1), every product of a team's size goes to
    the pool, and does again at the first calm look, and when the load cannot be read."""
    proc = _run(f"""
        import os, time
        import numpy as np, cnn_core
        from cnn_core import _config
        from cnn_core.kernels import _gemm, gemm
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])
        cnn_core.set_num_threads(2)
        path = {str(tmp_path / "loadavg")!r}
        a, b = np.ones((64, 784), np.float32), np.ones((784, 100), np.float32)
        _config._pool_set_load_file(path)

        def jobs_for(running):
            if running is None:
                os.remove(path)
            else:
                with open(path, "w") as f:
                    f.write(f"0.50 0.40 0.30 {{running}}/120 4242\\n")
            jobs0 = _config._pool_stats()[0]
            for _ in range(10):
                time.sleep(0.003)   # past the pool's 2 ms between looks at the load
                _gemm.reset_backoff()
                gemm(a, b)
            return _config._pool_stats()[0] - jobs0

        print(jobs_for(1), jobs_for(3), jobs_for(1), jobs_for(3), jobs_for(None))
        """, tmp_path)
    calm, busy, calm_again, busy_again, unreadable = map(int, proc.stdout.split())
    assert calm == calm_again == unreadable == 10 and busy <= 2 and busy_again <= 2, proc.stdout


@needs_pool
@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs os.sched_getaffinity")
def test_one_busy_look_is_not_enough(tmp_path):
    """The pool's look at the load (here a file of the test's own in /proc/loadavg's format, looked at
    after the 2 ms between looks): the process stops counting as alone at the second busy look in a row,
    not the first (a moment's extra task on a quiet machine), and counts as alone again at the first calm
    look; an unreadable load counts as not alone."""
    proc = _run(f"""
        import os, time
        from cnn_core import _config
        cpus = len(os.sched_getaffinity(0))
        path = {str(tmp_path / "loadavg")!r}

        def look(running):
            with open(path, "w") as f:
                f.write(f"0.50 0.40 0.30 {{running}}/120 4242\\n")
            time.sleep(0.003)
            return int(_config._pool_alone())

        _config._pool_set_load_file(path)
        seen = [look(1), look(cpus + 1), look(1), look(cpus + 1), look(cpus + 1), look(cpus + 2), look(1),
                look(cpus + 1)]
        os.remove(path)
        time.sleep(0.003)
        seen.append(int(_config._pool_alone()))
        _config._pool_set_load_file(None)
        print(*seen)
        """, tmp_path)
    assert proc.stdout.split() == ["1", "1", "1", "1", "0", "0", "1", "1", "0"]


@needs_pool
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_after_pool_jobs_computes(tmp_path):
    """A child forked after the pool ran jobs (its workers do not exist there) finishes its products with
    the parent's results, and so does a child forked by a Python thread that never ran a product."""
    _run("""
        import os, threading, pickle
        import numpy as np, cnn_core
        from cnn_core.kernels import _gemm, gemm
        cnn_core.set_num_threads(2)
        rng = np.random.default_rng(0)
        a = rng.standard_normal((64, 784)); b = rng.standard_normal((784, 100))
        expected = gemm(a, b)
        for _ in range(10):
            _gemm.reset_backoff(); gemm(a, b)

        def child_result():
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                ok = all(np.array_equal(gemm(a, b), expected) for _ in range(5))
                os.write(w, b"1" if ok else b"0"); os._exit(0)
            os.close(w)
            got = os.read(r, 1); os.waitpid(pid, 0)
            return got

        assert child_result() == b"1"
        out = []
        t = threading.Thread(target=lambda: out.append(child_result())); t.start(); t.join()
        assert out == [b"1"]
        """, tmp_path)


@needs_pool
@pytest.mark.skipif(not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs os.sched_setaffinity and two CPUs")
@pytest.mark.parametrize("pool", [True, False])   # the pool's worker; an OpenMP team's thread
def test_team_members_are_kept_off_the_leaders_cpu_on_an_idle_machine(tmp_path, pool):
    """While the process is alone on its cores, the threads that ran a team's shares get the leader's mask
    without the leader's CPU (so the scheduler cannot wake them onto it); when the leader moves to another
    CPU, the next product moves them off that one; the results stay exact."""
    proc = _run(f"""
        import os, sys, threading, time
        import numpy as np, cnn_core
        from cnn_core import _config
        from cnn_core.kernels import _gemm, gemm
        looks = [_config._pool_alone(), time.sleep(0.003), _config._pool_alone()]
        if not looks[2]:   # other tasks run: no team starts, so no member is steered
            print("not alone")
            sys.exit(0)
        _gemm.set_pool({pool})
        rng = np.random.default_rng(0)
        a = rng.standard_normal((64, 784)).astype(np.float32)
        b = rng.standard_normal((784, 100)).astype(np.float32)
        cnn_core.set_num_threads(1); expected = gemm(a, b); cnn_core.set_num_threads(2)
        full = os.sched_getaffinity(0)
        main = threading.get_native_id()

        def members_avoid(cpu):
            masks = [os.sched_getaffinity(int(t)) for t in os.listdir("/proc/self/task") if int(t) != main]
            return any(m == full - {{cpu}} for m in masks)

        changes0 = _config._pool_stats()[2]
        for cpu in sorted(full)[:2]:
            os.sched_setaffinity(0, {{cpu}})          # the leader runs on `cpu` (its mask: that CPU alone)
            os.sched_setaffinity(0, full)             # ... and stays there until the scheduler moves it
            for attempt in range(50):
                _gemm.reset_backoff()
                assert np.array_equal(gemm(a, b), expected)
                here = int(open("/proc/thread-self/stat").read().rsplit(")", 1)[1].split()[36])
                if here == cpu and members_avoid(cpu):
                    break
            else:
                raise AssertionError(f"no member kept off CPU {{cpu}}")
        assert _config._pool_stats()[2] > changes0
        """, tmp_path)
    if proc.stdout.strip() == "not alone":
        pytest.skip("other tasks run: the process is not alone on its cores, so no team starts")
