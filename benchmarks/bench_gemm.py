"""Time cnn_core.kernels.gemm against NumPy (OpenBLAS) in the same run, with GFLOP/s and the fraction of peak.

    python benchmarks/bench_gemm.py [--repeats N] [--threads 1,2] [--dtypes float32,float64] [--quick]

The sweep (main): square sizes 64..2048 and the layers' GEMMs (LeNet-5 and MLP at batch 64, and im2col
products of modern 3x3 / 1x1 convolutions), for every thread count (cnn_core and OpenBLAS both set to it)
and dtype. Per row: the median time of each side, the time ratio ours/numpy (< 1: we are faster; the
median over rounds of the ratio of a round's two adjacent blocks, _timing.paired_ratio), the GFLOP/s of
each side, and each side's fraction of the machine's peak for that thread count:

    peak = threads x clock x FLOPs per cycle per core,

with the clock measured by a dependent-FMA chain (4 cycles per FMA on every x86 core with FMA; the best of
several runs, the least disturbed one) and the FLOPs per cycle of the SIMD level in use measured by an
FMA-throughput loop at that vector width (rounded to a power of two: it says whether the core's FMA pipes
run 512-bit vectors at full or half rate). Both probes are src_c/gemm_peak.c's.

`run()` and `print_row()` give the float32 rows (ratio numpy/ours) for benchmarks/bench_kernels.py. Both
sides are timed in alternating blocks, each block after a warm-up call, because on a small machine
OpenBLAS's and OpenMP's spinning worker threads slow whichever library runs right after the other.

What is timed: single calls back to back (a timer read between them), as a training loop calls its
products one after the other with short kernels in between; a 0.1 s pause precedes each block. On this
2-vCPU machine that is the case that matters for the small 2-thread products, and it depends on what else
runs: traced per thread (omp_get_wtime and sched_getcpu in gemm_static), 128^3 on two threads took 25 us
with the threads on two CPUs and 95-105 us when another process held one CPU and the scheduler started both
threads on the other (they then ran one after the other, 24 us each, with a time slice between), against 41
us on one thread; that was the unexplained 95-123 us of the previous stop. cnn_core now runs the next 64
small products on one thread after a team that started on one CPU (src_c/gemm.c, "teams that share one
core"), so the 2-thread rows of small products are at worst about the 1-thread time on a busy machine.
OpenBLAS keeps its threads spinning for ~0.07 s after a call, which wins back to back on a quiet machine
and loses on a busy one. The header prints the load average and the runnable tasks at the start, since a
2-thread row means little when other processes hold a core.
"""
from __future__ import annotations

import argparse
import ctypes
import math

import _timing  # first: re-executes without OpenBLAS overrides before NumPy loads
import numpy as np

import cnn_core
from cnn_core.kernels import _gemm, gemm, linear_backward, linear_forward

BATCH = 64
REPEATS = 30


def _gemm_case(rng, m, n, k, trans_a=False, trans_b=False):
    """ours: gemm into a preallocated c; numpy: matmul into a preallocated out (no allocation either side)."""
    a = rng.standard_normal((k, m) if trans_a else (m, k), dtype=np.float32)
    b = rng.standard_normal((n, k) if trans_b else (k, n), dtype=np.float32)
    c = np.empty((m, n), np.float32)
    opa, opb = (a.T if trans_a else a), (b.T if trans_b else b)
    return (lambda: gemm(a, b, c, trans_a=trans_a, trans_b=trans_b),
            lambda: np.matmul(opa, opb, out=c), 2.0 * m * n * k)


def cases(rng):
    """(name, ours, numpy, flops or None) for every timed case."""
    out = []
    # (label, M, N, K, trans_a, trans_b): the layers' GEMMs at batch 64, then the square reference sizes.
    for label, m, n, k, ta, tb in [
        ("mlp fc1 x@w.T", BATCH, 100, 784, False, True),
        ("mlp fc2 x@w.T", BATCH, 10, 100, False, True),
        ("mlp fc1 dx=d@w", BATCH, 784, 100, False, False),
        ("mlp fc1 dw=d.T@x", 100, 784, BATCH, True, False),
        ("lenet conv1 w@cols", 6, 784 * BATCH, 25, False, False),
        ("lenet conv1 dw=d@cols.T", 6, 25, 784 * BATCH, False, True),
        ("lenet conv1 dcols=w.T@d", 25, 784 * BATCH, 6, True, False),
        ("lenet conv2 w@cols (1 sample)", 16, 100, 150, False, False),
        ("lenet conv2 w@cols (batch)", 16, 100 * BATCH, 150, False, False),
        ("lenet conv2 dcols=w.T@d", 150, 100 * BATCH, 16, True, False),
        ("lenet fc1 x@w.T", BATCH, 120, 400, False, True),
        ("lenet fc2 x@w.T", BATCH, 84, 120, False, True),
        ("square 256", 256, 256, 256, False, False),
        ("square 1024", 1024, 1024, 1024, False, False),
    ]:
        shape = f"({m}x{k})@({k}x{n})"
        out.append((f"gemm {label} {shape}", *_gemm_case(rng, m, n, k, ta, tb)))

    # The fully connected layers of the MLP and LeNet-5 (the activation is its own kernel: bench_elementwise).
    for n_in, n_out in [(784, 100), (100, 10), (400, 120)]:
        x = rng.standard_normal((BATCH, n_in), dtype=np.float32)
        w = (rng.standard_normal((n_out, n_in)) / np.sqrt(n_in)).astype(np.float32)
        b = rng.standard_normal(n_out, dtype=np.float32)
        out.append((f"linear_forward ({BATCH}x{n_in})->{n_out}",
                    lambda x=x, w=w, b=b: linear_forward(x, w, b),
                    lambda x=x, w=w, b=b: np.add(x @ w.T, b), None))
        delta = rng.standard_normal((BATCH, n_out), dtype=np.float32)
        if n_in != 400:
            out.append((f"linear_backward ({BATCH}x{n_in})->{n_out}",
                        lambda x=x, w=w, d=delta: linear_backward(x, w, d),
                        lambda x=x, w=w, d=delta: (d @ w, d.T @ x, d.sum(axis=0)), None))
    return out


def run(report=None, repeats: int = REPEATS) -> list[tuple[str, float, float]]:
    """Time every case; returns rows (name, ours_seconds, numpy_seconds). `report(row, flops)` is called
    per row as it completes (flops is None for non-GEMM cases)."""
    rows = []
    for name, ours, numpy_fn, flops in cases(np.random.default_rng(0)):
        reps = max(3, min(repeats, int(repeats * 2e8 / flops))) if flops else repeats
        # Single calls timed, `reps` per side in each of 3 alternating rounds.
        t_ours, t_np = _timing.interleaved([ours, numpy_fn], reps, rounds=3)
        rows.append((name, t_ours, t_np))
        if report is not None:
            report(rows[-1], flops)
    return rows


def print_row(row, flops) -> None:
    name, t_ours, t_np = row
    line = f"{name:<58} ours {t_ours * 1e6:10.1f} us  numpy {t_np * 1e6:10.1f} us  ratio {t_np / t_ours:5.2f}x"
    if flops:
        line += f"  GFLOP/s ours {flops / t_ours / 1e9:6.1f} numpy {flops / t_np / 1e9:6.1f}"
    print(line, flush=True)


# ---- the sweep ------------------------------------------------------------------------------------

SQUARE = (64, 128, 256, 512, 1024, 2048)
# Rounds per row of the sweep: each gives one paired ratio (_timing.paired_ratio); 3 had left a row's
# ratio to where the VM's slow phases fell.
ROUNDS = 5
# (label, M, N, K, trans_a, trans_b): the layers' GEMMs at batch 64.
LAYERS = [
    ("mlp fc1 x@w.T", BATCH, 100, 784, False, True),
    ("mlp fc1 dx=d@w", BATCH, 784, 100, False, False),
    ("mlp fc1 dw=d.T@x", 100, 784, BATCH, True, False),
    ("lenet conv1 w@cols", 6, 784 * BATCH, 25, False, False),
    ("lenet conv2 w@cols", 16, 100 * BATCH, 150, False, False),
    ("lenet conv2 dcols=w.T@d", 150, 100 * BATCH, 16, True, False),
    ("lenet fc1 x@w.T", BATCH, 120, 400, False, True),
    ("conv3x3 32->64 28x28 w@cols", 64, 28 * 28 * BATCH, 288, False, False),
    ("conv3x3 32->64 dcols=w.T@d", 288, 28 * 28 * BATCH, 64, True, False),
    ("conv3x3 64->128 7x7 w@cols", 128, 7 * 7 * BATCH, 576, False, False),
    ("conv1x1 128->128 7x7 w@x", 128, 7 * 7 * BATCH, 128, False, False),
]


def set_blas_threads(n: int) -> None:
    """OpenBLAS's thread count, through the library NumPy loaded (as _timing reads its core name)."""
    with open("/proc/self/maps") as f:
        paths = sorted({line.split()[-1] for line in f if "openblas" in line.lower() and "/" in line})
    for path in paths:
        lib = ctypes.CDLL(path)
        for name in ("openblas_set_num_threads", "openblas_set_num_threads64_",
                     "scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn(n)
                return
    raise RuntimeError("cannot set the BLAS thread count: no OpenBLAS loaded")


def peak_per_core() -> tuple[float, dict[str, float], str]:
    """(clock in Hz, {dtype: FLOPs per cycle per core at the SIMD level in use}, description); FLOPs per
    cycle 0 where no probe exists for the level (baseline)."""
    iters = 20_000_000
    clock = max(4 * iters / _gemm.fma_probe(0, iters) for _ in range(5))
    kind = {"avx2": 1, "avx512": 2}.get(cnn_core.get_simd())
    if kind is None or clock <= 0:
        return clock, {"float32": 0.0, "float64": 0.0}, "no FMA probe for this level"
    lanes = 8 * kind                                   # float32 lanes of one vector
    steps = iters // 4
    flops = max(12 * 2 * lanes * steps / _gemm.fma_probe(kind, steps) for _ in range(5))
    per_cycle = 2.0 ** round(math.log2(flops / clock))
    return clock, {"float32": per_cycle, "float64": per_cycle / 2}, (
        f"clock {clock / 1e9:.2f} GHz (dependent-FMA chain, 4 cycles/FMA), {cnn_core.get_simd()} FMA "
        f"throughput {flops / 1e9:.0f} GFLOP/s float32 = {flops / clock:.1f} FLOPs/cycle -> {per_cycle:.0f} "
        "float32 / {:.0f} float64 FLOPs/cycle/core".format(per_cycle / 2))


def sweep(threads: list[int], dtypes: list[str], repeats: int, shapes, rounds: int = ROUNDS) -> None:
    clock, per_cycle, how = peak_per_core()
    print(f"peak: {how}")
    print(f"{'case':<44} {'thr':>3} {'dtype':>7} {'ours us':>10} {'numpy us':>10} {'ours/np':>7} "
          f"{'GFLOP/s':>8} {'numpy':>7} {'%peak':>6} {'numpy':>6}")
    rng = np.random.default_rng(0)
    for t in threads:
        cnn_core.set_num_threads(t)
        set_blas_threads(t)
        peak = min(t, cnn_core.get_num_threads()) * clock
        for label, m, n, k, ta, tb in shapes:
            for dtype in dtypes:
                a = rng.standard_normal((k, m) if ta else (m, k)).astype(dtype)
                b = rng.standard_normal((n, k) if tb else (k, n)).astype(dtype)
                c = np.empty((m, n), dtype)
                opa, opb = (a.T if ta else a), (b.T if tb else b)
                flops = 2.0 * m * n * k
                reps = max(3, min(repeats, int(repeats * 2e8 / flops)))
                t_ours, t_np, ratio = _timing.paired_ratio(
                    [lambda: gemm(a, b, c, trans_a=ta, trans_b=tb), lambda: np.matmul(opa, opb, out=c)],
                    reps, rounds)
                g_ours, g_np = flops / t_ours / 1e9, flops / t_np / 1e9
                top = peak * per_cycle[dtype] / 1e9
                frac = (f"{100 * g_ours / top:5.0f}% {100 * g_np / top:5.0f}%" if top else "   n/a    n/a")
                print(f"{label + f' ({m}x{k})@({k}x{n})':<44} {t:>3} {dtype:>7} {t_ours * 1e6:10.1f} "
                      f"{t_np * 1e6:10.1f} {ratio:7.2f} {g_ours:8.1f} {g_np:7.1f} {frac}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=REPEATS, help="calls per timing block (3 blocks per side)")
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts (default 1,2)")
    parser.add_argument("--dtypes", default="float32,float64", help="comma-separated dtypes")
    parser.add_argument("--square-only", action="store_true", help="only the square sizes")
    parser.add_argument("--layers-only", action="store_true", help="only the layers' shapes")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"interleaved rounds per row (default {ROUNDS})")
    parser.add_argument("--quick", action="store_true", help="3 calls per block: checks that every row runs")
    parser.add_argument("--omp-teams", action="store_true",
                        help="small products on OpenMP teams instead of the small-job pool (for A/B runs)")
    args = parser.parse_args()
    if args.omp_teams:
        from cnn_core.kernels import _gemm
        _gemm.set_pool(False)
    print(_timing.machine())
    with open("/proc/loadavg") as f:
        fields = f.read().split()
    print(f"load average {' '.join(fields[:3])}, runnable tasks now {fields[3]}")
    shapes = [] if args.layers_only else [(f"square {s}", s, s, s, False, False) for s in SQUARE]
    shapes += [] if args.square_only else LAYERS
    print(f"times: medians of {args.rounds} interleaved rounds; ours/np: the median over rounds of the time ratio "
          "of a round's two blocks (< 1: cnn_core faster)")
    sweep([int(t) for t in args.threads.split(",")], args.dtypes.split(","), 3 if args.quick else args.repeats,
          shapes, args.rounds)


if __name__ == "__main__":
    main()
