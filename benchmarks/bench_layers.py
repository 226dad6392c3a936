"""Forward+backward time of each layer at LeNet-5 shapes (batch 64, float32), against PyTorch in the same run.

    python benchmarks/bench_layers.py [--repeat 50] [--batch 64]

Prints the median over `repeat` timed runs (after warm-up) and, when `import torch` works, PyTorch's median
for the same layer with the same thread count, and the ratio ours / torch (< 1 means we are faster); the
two are timed in alternating rounds. Both sides compute the input gradient too.
"""
from __future__ import annotations

import argparse

import _timing  # first: re-executes without OpenBLAS overrides before NumPy loads
import numpy as np

import cnn_core
from cnn_core import nn

try:
    import torch
except ImportError:  # PyTorch is optional: only the comparison column needs it
    torch = None


def lenet5(lib):
    return lib.Sequential(lib.Conv2d(1, 6, 5, padding=2), lib.ReLU(), lib.MaxPool2d(2), lib.Conv2d(6, 16, 5),
                          lib.ReLU(), lib.MaxPool2d(2), lib.Flatten(), lib.Linear(400, 120), lib.ReLU(),
                          lib.Linear(120, 84), lib.ReLU(), lib.Linear(84, 10))


def mlp(lib):
    return lib.Sequential(lib.Linear(784, 256), lib.ReLU(), lib.Linear(256, 128), lib.ReLU(), lib.Linear(128, 10))


def cases(lib, n):
    """(name, layer factory, input shape)."""
    return [
        ("conv1 1->6 5x5 pad2", lambda: lib.Conv2d(1, 6, 5, padding=2), (n, 1, 28, 28)),
        ("relu (N,6,28,28)", lambda: lib.ReLU(), (n, 6, 28, 28)),
        ("sigmoid (N,6,28,28)", lambda: lib.Sigmoid(), (n, 6, 28, 28)),
        ("tanh (N,6,28,28)", lambda: lib.Tanh(), (n, 6, 28, 28)),
        ("elu (N,6,28,28)", lambda: lib.ELU(), (n, 6, 28, 28)),
        ("pool1 max 2x2", lambda: lib.MaxPool2d(2), (n, 6, 28, 28)),
        ("pool1 avg 2x2", lambda: lib.AvgPool2d(2), (n, 6, 28, 28)),
        ("conv2 6->16 5x5", lambda: lib.Conv2d(6, 16, 5), (n, 6, 14, 14)),
        ("pool2 max 2x2", lambda: lib.MaxPool2d(2), (n, 16, 10, 10)),
        ("linear 400->120", lambda: lib.Linear(400, 120), (n, 400)),
        ("relu (N,120)", lambda: lib.ReLU(), (n, 120)),
        ("linear 120->84", lambda: lib.Linear(120, 84), (n, 120)),
        ("linear 84->10", lambda: lib.Linear(84, 10), (n, 84)),
        ("lenet5 whole net", lambda: lenet5(lib), (n, 1, 28, 28)),
        ("mlp 784-256-128-10", lambda: mlp(lib), (n, 784)),
        ("batchnorm2d (N,32,28,28)", lambda: lib.BatchNorm2d(32), (n, 32, 28, 28)),
        ("batchnorm1d (N,120)", lambda: lib.BatchNorm1d(120), (n, 120)),
        ("dropout 0.5 (N,6,28,28)", lambda: lib.Dropout(0.5), (n, 6, 28, 28)),
        ("dropout2d (N,32,14,14)", lambda: lib.Dropout2d(0.2), (n, 32, 14, 14)),
        ("leakyrelu (N,6,28,28)", lambda: lib.LeakyReLU(), (n, 6, 28, 28)),
        ("gelu (N,6,28,28)", lambda: lib.GELU(), (n, 6, 28, 28)),
        ("silu (N,6,28,28)", lambda: lib.SiLU(), (n, 6, 28, 28)),
        ("logsoftmax (N,10)", lambda: lib.LogSoftmax(dim=1), (n, 10)),
        # digits read row by row: 28 steps of 28 pixels, hidden 128 (the accuracy benchmark's recurrent rows)
        ("rnn 28->128 T=28", lambda: lib.RNN(28, 128, batch_first=True), (n, 28, 28)),
        ("lstm 28->128 T=28", lambda: lib.LSTM(28, 128, batch_first=True), (n, 28, 28)),
        ("gru 28->128 T=28", lambda: lib.GRU(28, 128, batch_first=True), (n, 28, 28)),
    ]


def first(out):
    """A layer's output, or the sequence output of a recurrent layer's (out, state)."""
    return out[0] if isinstance(out, tuple) else out


ROUNDS = 3


def ours(factory, shape):
    """One forward+backward step of the layer on fixed data."""
    m = factory()
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    dy = rng.standard_normal(first(m(x)).shape).astype(np.float32)

    def step():
        m(x)
        m.backward(dy)
    return step


def theirs(factory, shape):
    m = factory()
    x = torch.randn(shape, requires_grad=True)
    dy = torch.randn(first(m(x)).shape)

    def step():
        first(m(x)).backward(dy)
    return step


def median_ms(steps, repeat: int) -> list[float]:
    """Median milliseconds per step of each, `repeat` single steps in all, in alternating rounds."""
    per_round = max(1, repeat // ROUNDS)
    return [1e3 * t for t in _timing.interleaved(steps, per_round, rounds=ROUNDS, warmup=max(3, repeat // 10))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None, help="thread count for both libraries")
    args = ap.parse_args()
    if args.threads is not None:
        cnn_core.set_num_threads(args.threads)
    threads = cnn_core.get_num_threads()
    print(_timing.machine())
    print(f"cnn_core {cnn_core.__version__}: forward+backward, batch {args.batch}, float32, {threads} threads, "
          f"median of {args.repeat}")
    if torch is not None:
        torch.set_num_threads(threads)
        print(f"torch {torch.__version__} with {torch.get_num_threads()} threads")
    else:
        print("torch not importable: no comparison column")
    print(f"{'layer':<22}{'ours ms':>10}{'torch ms':>10}{'ours/torch':>12}")
    torch_cases = cases(torch.nn, args.batch) if torch is not None else None
    for i, (name, factory, shape) in enumerate(cases(nn, args.batch)):
        steps = [ours(factory, shape)] + ([theirs(torch_cases[i][1], shape)] if torch_cases is not None else [])
        t_ours, *t_torch = median_ms(steps, args.repeat)
        line = f"{name:<22}{t_ours:>10.3f}"
        if t_torch:
            line += f"{t_torch[0]:>10.3f}{t_ours / t_torch[0]:>12.2f}"
        print(line)


if __name__ == "__main__":
    main()
