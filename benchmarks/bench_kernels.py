"""Every compiled kernel against the vectorized NumPy a user would write instead, in one run.

    python benchmarks/bench_kernels.py [--threads N] [--quick]

LeNet-5 and MNIST-MLP shapes, batch 64, float32. Prints medians and the ratio numpy/ours (> 1: cnn_core is
faster); GEMM rows also give GFLOP/s. The rows come from the three focused scripts beside this one
(bench_convpool.py, bench_gemm.py, bench_elementwise.py), which can also be run alone.
"""
from __future__ import annotations

import argparse

import _timing  # first: re-executes without OpenBLAS overrides before NumPy loads
import bench_convpool
import bench_elementwise
import bench_gemm

import cnn_core


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="OpenMP threads for cnn_core (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help="3 timed blocks per kernel instead of 15-30: checks that every row runs (noisy figures)")
    args = parser.parse_args()
    if args.threads is not None:
        cnn_core.set_num_threads(args.threads)
    print(_timing.machine())
    print(f"cnn_core {cnn_core.__version__}: {cnn_core.get_num_threads()} threads, "
          f"OpenMP {'on' if cnn_core.openmp_enabled() else 'off'}; float32; medians; ratio = numpy / ours")

    print("\n## im2col / col2im / pooling")
    rows, labels = bench_convpool.run(with_labels=True, repeats=3 if args.quick else bench_convpool.REPEAT)
    for name, ours, ref in rows:
        print(f"{name:<58} ours {ours * 1e6:10.1f} us  numpy {ref * 1e6:10.1f} us  ratio {ref / ours:5.2f}x"
              f"  ({labels[name]})")

    print("\n## GEMM and fully connected")
    bench_gemm.run(bench_gemm.print_row, repeats=3 if args.quick else bench_gemm.REPEATS)

    print("\n## activations and the perceptron epoch")
    for name, ours, ref in bench_elementwise.run(3 if args.quick else bench_elementwise.REPEATS):
        print(f"{name:<58} ours {ours * 1e6:10.1f} us  numpy {ref * 1e6:10.1f} us  ratio {ref / ours:5.2f}x")


if __name__ == "__main__":
    main()
