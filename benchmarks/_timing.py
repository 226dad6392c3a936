"""The one timer of the benchmarks, and the environment they run in.

Import this module before NumPy (every benchmark does, first thing): when OPENBLAS_CORETYPE or
OPENBLAS_L2_SIZE is set, the script re-executes itself without them, because they make OpenBLAS run kernels
for another CPU (or block for another cache size) and the NumPy column would then not be what a user of
this machine gets. ``machine()`` says which CPU, SIMD level and BLAS core a figure came from; every
benchmark prints it in its header.

Timing: ``median_time`` (one function) and ``interleaved`` (peers timed in alternating rounds, because on a
small machine OpenBLAS's, OpenMP's and PyTorch's spinning worker threads slow whichever library runs right
after another). Both return seconds per call: the median over blocks, each block warm-up calls (for at
least WARMUP_SECONDS) and then ``number`` timed calls (``number=None``: doubled until a block lasts
``min_time``). A peer library runs in a process of its own (``Child``, ``serve``), as its users run it.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from typing import Callable, Sequence

BLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

# Pause before each peer's turn, so that it starts on an idle machine: after a call, OpenBLAS's workers spin
# for up to 2**28 cycles (its default THREAD_TIMEOUT: 0.07 s at 3.7 GHz, 0.10 s at this EPYC's 2.6 GHz) and
# take a core from the next library's team. Measured: cnn_core's 2-thread GEMM at 1024 ran 100 GFLOP/s right
# after numpy.matmul's block and 200 GFLOP/s on its own; with this pause, 200 in the interleaved benchmark as
# well. 0.1 s was too short at 2.6 GHz: a 128x576x3136 product took its one-thread time (4.5 ms against
# 2.7-2.9 ms in a loop of its own) right after NumPy's block.
SETTLE = 0.2
# A block's warm-up lasts at least this long (calls of the timed function until then, at least `warmup` of
# them): after SETTLE's pause both CPUs of a VM come back cold, and a team's wake-ups stay slow for a while
# (the host's halt polling, which adapts to how often a vCPU is woken, is one likely cause). Measured (2-vCPU
# Xeon, 0.2 s pauses): the first 1x1 convolution step after the pause took 20-29 ms in either library
# (PyTorch: 4.5 ms steady), ours 5-7 ms for the next 3-5 steps (2.5-3 ms steady); LeNet-5's conv2 step on 2
# threads took 1.9 ms (median) for the first 40 ms, 1.2 ms for the next 30 and 1.05-1.1 ms from 90 ms on (on 1
# thread 1.7 ms throughout). A training loop runs in the steady state: 0.1 s of calls reach it.
WARMUP_SECONDS = 0.1


def _reexec_without_blas_overrides() -> None:
    found = [v for v in BLAS_OVERRIDES if v in os.environ]
    if not found:
        return
    if "numpy" in sys.modules or not os.path.isfile(sys.argv[0]):
        warnings.warn(f"{', '.join(found)} set and NumPy already loaded: its BLAS figures are for the CPU "
                      "those variables name, not this one; unset them before starting Python", stacklevel=3)
        return
    env = {k: v for k, v in os.environ.items() if k not in BLAS_OVERRIDES}
    # orig_argv keeps the interpreter's own options (-X, -O, ...) along with the script and its arguments.
    os.execve(sys.executable, getattr(sys, "orig_argv", [sys.executable, *sys.argv]), env)


_reexec_without_blas_overrides()


def calls_per_block(fn: Callable[[], object], min_time: float) -> int:
    """After a warm-up call: the number of calls (a power of two) that takes at least `min_time` seconds."""
    fn()
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        if time.perf_counter() - t0 >= min_time:
            return number
        number *= 2


def _blocks(fn: Callable[[], object], repeats: int, number: int, warmup: int) -> list[float]:
    """Seconds per call in each of `repeats` blocks of `number` calls, after the warm-up (`warmup` calls,
    continued until WARMUP_SECONDS have passed)."""
    start = time.perf_counter()
    for _ in range(warmup):
        fn()
    if warmup:
        while time.perf_counter() - start < WARMUP_SECONDS:
            fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return times


def median_time(fn: Callable[[], object], repeats: int = 15, *, number: int | None = None,
                min_time: float = 2e-3, warmup: int = 1) -> float:
    """Median seconds per call of `fn` over `repeats` blocks of `number` calls, after `warmup` calls (or,
    with number=None, after the calibration of ``calls_per_block``, which warms up as well)."""
    if number is None:
        number, warmup = calls_per_block(fn, min_time), 0
    return statistics.median(_blocks(fn, repeats, number, warmup))


def interleaved_samples(fns: Sequence, repeats: int, rounds: int = 3, *, number: int = 1,
                        warmup: int = 1) -> list[list[float]]:
    """Seconds per call of each of `fns`, one list per function, timed in `rounds` rounds that run each in
    turn (`warmup` calls, then `repeats` blocks of `number` calls), so that every peer sees the same machine
    state. An entry is a function of this process or a ``(Child, action name)`` pair, timed in its own."""
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(rounds):
        for fn, times in zip(fns, samples):
            time.sleep(SETTLE)
            if isinstance(fn, tuple):
                times += fn[0].blocks(fn[1], repeats, number, warmup)
            else:
                times += _blocks(fn, repeats, number, warmup)
    return samples


def interleaved(fns: Sequence, repeats: int, rounds: int = 3, *, number: int = 1,
                warmup: int = 1) -> list[float]:
    """The median of each function's ``interleaved_samples``."""
    return [statistics.median(t) for t in interleaved_samples(fns, repeats, rounds, number=number, warmup=warmup)]


def paired_ratio(fns: Sequence, repeats: int, rounds: int, *, number: int = 1,
                 warmup: int = 1) -> tuple[float, float, float]:
    """(median seconds per call of fns[0], of fns[1], median over rounds of the ratio of fns[0]'s block to
    fns[1]'s block in that round). The two blocks of a round run ~0.3 s apart, so a slow phase of the
    machine that lasts seconds (this VM's: everything up to 1.6x slower) slows both or neither, where the
    ratio of the two overall medians takes whichever side more of those phases fell on: a 64^3 product,
    ~4.3 us a call on both sides in a fast phase and ~7 in a slow one, read 0.59x to 1.69x in one run that
    way (2-vCPU model 0xCF Xeon, 5 rows of the same product, 3 rounds each)."""
    ta, tb = interleaved_samples(fns, repeats, rounds, number=number, warmup=warmup)
    per = len(ta) // rounds
    ratios = [statistics.median(ta[r * per:(r + 1) * per]) / statistics.median(tb[r * per:(r + 1) * per])
              for r in range(rounds)]
    return statistics.median(ta), statistics.median(tb), statistics.median(ratios)


class Child:
    """A peer library in a process of its own, whose command line `argv` ends in ``serve(actions)``: its
    named actions are timed there (``blocks``, or a ``(child, name)`` entry in ``interleaved``) or called
    for a result (``call``). A context manager; closing it ends the process.

    Why processes: peers in one process share its OpenMP runtime, and whichever library loads libgomp first
    sets its spin-wait for both (cnn_core sets 1,000 pauses when it loads it). With cnn_core imported before
    torch, torch's 1x1 128 -> 128 convolution step took 5.3-6.2 ms against 4.1-4.2 ms in a process of its
    own (ours 4.0-4.5 against 2.3-2.6), its MLP 784-100-10 epoch on 10,000 samples 0.26 s against 0.12-0.13 s
    and its LeNet-5 epoch 1.15-1.47 s against 0.73-0.93 s (2-vCPU Xeon): a figure from a shared process is
    neither library's as its users meet it.

    The constructor returns once the peer says it is ready (``serve``'s first line, after its imports and
    data loading): bench_train timed cnn_core's first epoch at once, beside PyTorch's process importing torch
    and copying the data, and that epoch took 0.37 s against 0.19-0.20 s for the next ones (MLP)."""

    def __init__(self, argv: Sequence[str]):
        self.proc = subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd="/")
        if self._reply("start") != "ready":
            raise RuntimeError("benchmark peer: expected 'ready' as its first line")

    def _reply(self, request: str):
        reply = self.proc.stdout.readline()
        if not reply:
            raise RuntimeError(f"benchmark peer exited with {self.proc.wait()} on {request!r}")
        return json.loads(reply)

    def _ask(self, request: str):
        self.proc.stdin.write(request + "\n")
        self.proc.stdin.flush()
        return self._reply(request)

    def blocks(self, name: str, repeats: int, number: int = 1, warmup: int = 1) -> list[float]:
        """Seconds per call of the peer's action `name` in each of `repeats` blocks (as ``_blocks``)."""
        return self._ask(f"time {name} {repeats} {number} {warmup}")

    def call(self, name: str):
        """The peer's action `name` called once: its (JSON) result."""
        return self._ask(f"call {name}")

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    def __enter__(self) -> "Child":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def serve(actions: dict[str, Callable[[], object]]) -> None:
    """A Child's side: answer the parent's requests on stdin until it closes them. "time NAME REPEATS NUMBER
    WARMUP" replies with ``_blocks(actions[NAME], ...)``, "call NAME" with ``actions[NAME]()``, one JSON line
    each on stdout (so the actions must print nothing there), after a first line saying it is ready."""
    sys.stdout.write(json.dumps("ready") + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        what, name, *counts = line.split()
        if what == "time":
            repeats, number, warmup = map(int, counts)
            result = _blocks(actions[name], repeats, number, warmup)
        else:
            result = actions[name]()
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _openblas_core() -> str:
    """The core type OpenBLAS picked at run time (DYNAMIC_ARCH builds), read from the library NumPy loaded."""
    import ctypes
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line})
    except OSError:
        return "unknown"
    for path in paths:
        lib = ctypes.CDLL(path)
        for name in ("openblas_get_corename", "openblas_get_corename64_", "scipy_openblas_get_corename64_",
                     "scipy_openblas_get_corename"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                return fn().decode()
    return "unknown"


def machine() -> str:
    """One line: CPU, cnn_core's SIMD level and threads, NumPy's BLAS and the core it runs."""
    import numpy as np

    import cnn_core
    try:
        blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    except TypeError:  # NumPy < 1.26 only prints its configuration
        blas = {}
    return (f"CPU {_cpu_model()} ({os.cpu_count()} logical); cnn_core {cnn_core.__version__}: SIMD "
            f"{cnn_core.get_simd()} (CPU: {', '.join(cnn_core.cpu_simd_levels())}), OpenMP "
            f"{'on' if cnn_core.openmp_enabled() else 'off'}, {cnn_core.get_num_threads()} threads; NumPy "
            f"{np.__version__} on {blas.get('name', 'unknown BLAS')} {blas.get('version', '')} "
            f"(core {_openblas_core()})")
