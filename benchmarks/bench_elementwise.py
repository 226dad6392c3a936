"""Activations (forward and backward) and the perceptron epoch: cnn_core vs the best NumPy, same run.

Shapes are the MNIST MLP's: a batch of 64 rows of 100 (hidden layer) and 784 (input width) values, float32.
NumPy baselines write into preallocated buffers (no allocation in the timed loop, as for ours). The
sigmoid baseline is the fast naive formula 1/(1+exp(-z)) (it overflows for z << 0; the stable NumPy form is
slower still). The perceptron epoch runs on the 8000 x 784 embedded MNIST training digits (digit 0 vs rest,
from the same starting weights each repetition); NumPy cannot vectorize the sequential algorithm, so the
baseline is the Python loop a user would write, with one np.dot per sample.

Usage: python benchmarks/bench_elementwise.py [--repeats N]
"""
from __future__ import annotations

import argparse

import _timing  # first: re-executes without OpenBLAS overrides before NumPy loads
import numpy as np

import cnn_core
import cnn_core.kernels as K

ALPHA = 1.0


REPEATS = 15
BLOCK_SECONDS = 2e-3  # calls are batched so each timed block lasts >= 2 ms


def _numpy_sigmoid(z, t):
    np.negative(z, out=t)
    np.exp(t, out=t)
    t += 1
    np.reciprocal(t, out=t)


def _numpy_elu(z, t):
    np.minimum(z, 0, out=t)
    np.expm1(t, out=t)
    t *= ALPHA
    np.copyto(t, z, where=z > 0)


def _numpy_sigmoid_backward(dy, a, t):
    np.subtract(1, a, out=t)
    t *= a
    t *= dy


def _numpy_tanh_backward(dy, a, t):
    np.multiply(a, a, out=t)
    np.subtract(1, t, out=t)
    t *= dy


def _numpy_relu_backward(dy, a, t):
    np.multiply(dy, a > 0, out=t)


def _numpy_elu_backward(dy, a, t):
    np.add(a, ALPHA, out=t)
    t *= dy
    np.copyto(t, dy, where=a > 0)


def _activation_rows(rows: list, shape: tuple, rng: np.random.Generator, repeats: int) -> None:
    z = rng.normal(0.0, 2.0, size=shape).astype(np.float32)
    dy = rng.normal(size=shape).astype(np.float32)
    out = np.empty_like(z)
    t = np.empty_like(z)
    tag = f"{shape[0]}x{shape[1]}"
    ours_fwd = {"sigmoid": K.sigmoid, "tanh": K.tanh, "relu": K.relu,
                "elu": lambda z, out: K.elu(z, ALPHA, out=out)}
    numpy_fwd = {"sigmoid": _numpy_sigmoid, "tanh": lambda z, t: np.tanh(z, out=t),
                 "relu": lambda z, t: np.maximum(z, 0, out=t), "elu": _numpy_elu}
    ours_bwd = {"sigmoid": K.sigmoid_backward, "tanh": K.tanh_backward, "relu": K.relu_backward,
                "elu": lambda dy, a, out: K.elu_backward(dy, a, ALPHA, out=out)}
    numpy_bwd = {"sigmoid": _numpy_sigmoid_backward, "tanh": _numpy_tanh_backward,
                 "relu": _numpy_relu_backward, "elu": _numpy_elu_backward}
    with np.errstate(over="ignore"):
        for name in ours_fwd:
            a = ours_fwd[name](z, out=np.empty_like(z))
            rows.append((f"{name} forward {tag}",
                         _timing.median_time(lambda: ours_fwd[name](z, out=out), repeats, min_time=BLOCK_SECONDS),
                         _timing.median_time(lambda: numpy_fwd[name](z, t), repeats, min_time=BLOCK_SECONDS)))
            rows.append((f"{name} backward {tag}",
                         _timing.median_time(lambda: ours_bwd[name](dy, a, out=out), repeats,
                                             min_time=BLOCK_SECONDS),
                         _timing.median_time(lambda: numpy_bwd[name](dy, a, t), repeats, min_time=BLOCK_SECONDS)))


def python_perceptron_epoch(X, y, w, b, eta=1.0):
    """The baseline: the deck's loop in Python, one np.dot per sample."""
    n_updates = 0
    for i in range(X.shape[0]):
        if y[i] * (np.dot(w, X[i]) + b) <= 0:
            w += (eta * y[i]) * X[i]
            b += eta * y[i]
            n_updates += 1
    return b, n_updates


def _perceptron_row(rows: list, repeats: int) -> None:
    from cnn_core.datasets import load_mnist

    images, labels = load_mnist(split="train")
    X = np.ascontiguousarray(images.reshape(len(images), -1))  # (8000, 784) float32
    y = np.where(labels == 0, 1, -1)
    w0 = np.zeros(X.shape[1], dtype=X.dtype)
    # Start from the weights after one epoch, so the timed epoch is a typical one, not the first.
    b0, _ = K.perceptron_epoch(X, y, w0, 0.0)
    # Fewer blocks than the activations: an epoch is milliseconds, the Python loop far longer.
    ours = _timing.median_time(lambda: K.perceptron_epoch(X, y, w0.copy(), b0), max(1, repeats * 7 // 15),
                               min_time=BLOCK_SECONDS)
    yl = [int(v) for v in y]  # Python ints: what a user's loop over labels would index
    loop = _timing.median_time(lambda: python_perceptron_epoch(X, yl, w0.copy(), b0), max(1, repeats // 3),
                               min_time=BLOCK_SECONDS)
    rows.append((f"perceptron epoch {X.shape[0]}x{X.shape[1]} (vs Python loop)", ours, loop))


def run(repeats: int = REPEATS) -> list[tuple[str, float, float]]:
    """Rows (name, ours_seconds, numpy_seconds): medians measured in this run."""
    rng = np.random.default_rng(0)
    rows: list[tuple[str, float, float]] = []
    for shape in [(64, 100), (64, 784)]:
        _activation_rows(rows, shape, rng, repeats)
    _perceptron_row(rows, repeats)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=REPEATS, help=f"timed blocks per kernel (default {REPEATS})")
    args = parser.parse_args()
    print(_timing.machine())
    print(f"cnn_core {cnn_core.__version__}, OpenMP {'on' if cnn_core.openmp_enabled() else 'off'}, "
          f"{cnn_core.get_num_threads()} threads, float32, medians")
    print(f"{'kernel':<46} {'ours (us)':>11} {'numpy (us)':>11} {'speedup':>8}")
    for name, ours, ref in run(args.repeats):
        print(f"{name:<46} {ours * 1e6:>11.2f} {ref * 1e6:>11.2f} {ref / ours:>7.2f}x")


if __name__ == "__main__":
    main()
