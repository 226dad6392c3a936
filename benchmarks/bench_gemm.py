"""Time cnn_core.kernels.gemm and the fully connected kernels against NumPy (OpenBLAS) in the same run.

    python benchmarks/bench_gemm.py [--repeats N]

Prints, per case, the median time of ours and of the NumPy code a user would write instead, the ratio
numpy/ours (> 1: we are faster) and, for plain GEMMs, GFLOP/s. `run()` returns the rows for
benchmarks/bench_kernels.py. Both sides are timed in alternating blocks, each block after a warm-up call,
because on a small machine OpenBLAS's and OpenMP's spinning worker threads slow whichever library runs
right after the other.
"""
from __future__ import annotations

import argparse

import _timing  # first: re-executes without OpenBLAS overrides before NumPy loads
import numpy as np

from cnn_core.kernels import gemm, linear_backward, linear_forward

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=REPEATS, help="calls per timing block (3 blocks per side)")
    args = parser.parse_args()
    import cnn_core
    print(_timing.machine())
    print(f"float32, batch {BATCH}; threads {cnn_core.get_num_threads()}; SIMD {cnn_core.get_simd()}; medians; "
          "ratio = numpy/ours")
    run(print_row, args.repeats)


if __name__ == "__main__":
    main()
