"""Training speed against PyTorch: LeNet-5 and an MLP 784-100-10 on Fashion-MNIST (60k), same settings.

Settings (both libraries): ReLU, CrossEntropyLoss, SGD lr 0.05 momentum 0.9, batch 64, float32, one shuffle
per epoch, 2 threads (cnn_core.set_num_threads(2), torch.set_num_threads(2)). Both libraries start from the
same initial weights (cnn_core's PyTorch-style init, copied into the torch model) and see the same batches
in the same order, so their test accuracies differ only by floating-point rounding along the way. Each
trains for --epochs epochs, the two libraries taking turns epoch by epoch (so both see the same machine
state); the figure per model is the median epoch time (training only, evaluation excluded), then both test
accuracies after those epochs.
--batches N times the first N batches of each epoch instead (a shorter run; the output says so).

Run: python benchmarks/bench_train.py [--epochs 3] [--models lenet5,mlp] [--data DIR] [--threads 2]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys

import _timing  # first: re-executes without OpenBLAS overrides before NumPy loads

THREADS = 2
# The thread count must reach the OpenMP/BLAS environment before numpy and torch load their runtimes.
if "--threads" in sys.argv[1:-1]:
    THREADS = int(sys.argv[sys.argv.index("--threads") + 1])
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, str(THREADS))

import numpy as np  # noqa: E402

import cnn_core  # noqa: E402
from cnn_core import nn, optim  # noqa: E402
from cnn_core.datasets import load_mnist  # noqa: E402
from cnn_core.models import lenet5, mlp  # noqa: E402
from cnn_core.training import evaluate  # noqa: E402

LR, MOMENTUM, BATCH = 0.05, 0.9, 64
FASHION = "/usr/share/datasets/fashion-mnist"


def batches(n: int, limit: int | None, rng: np.random.Generator):
    order = rng.permutation(n)
    count = -(-n // BATCH) if limit is None else limit
    for b in range(count):
        yield order[b * BATCH:(b + 1) * BATCH]


# ---- cnn_core ----------------------------------------------------------------------------------------------

def cnn_core_model(name: str):
    return lenet5() if name == "lenet5" else mlp([784, 100, 10], activation="relu")


def cnn_core_trainer(name, X, y, Xt, yt, limit, seed):
    """(epoch, test_accuracy, initial state_dict): `epoch()` trains one epoch."""
    cnn_core.manual_seed(seed)
    model = cnn_core_model(name)
    init = model.state_dict()
    loss = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    rng = np.random.default_rng(seed)
    model.train()
    model.input_grad = False  # as in PyTorch, where the data does not require grad (and as cnn_core.fit does)

    def epoch():
        for idx in batches(len(X), limit, rng):
            xb, yb = X[idx], y[idx]
            model.zero_grad()
            loss(model(xb), yb)
            model.backward(loss.backward())
            opt.step()
    return epoch, lambda: evaluate(model, loss, Xt, yt, batch_size=1000).accuracy, init


# ---- PyTorch -----------------------------------------------------------------------------------------------

def torch_model(torch, name: str):
    tnn = torch.nn
    if name == "lenet5":
        return tnn.Sequential(
            tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2),
            tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(),
            tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(), tnn.Linear(84, 10))
    return tnn.Sequential(tnn.Linear(784, 100), tnn.ReLU(), tnn.Linear(100, 10))


def torch_trainer(torch, name, init, X, y, Xt, yt, limit, seed):
    """(epoch, test_accuracy) for the same model in PyTorch, starting from `init`."""
    model = torch_model(torch, name)
    # Same layer indices in both Sequentials ("0.weight", ...), so the state dicts line up key for key.
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in init.items()})
    loss = torch.nn.CrossEntropyLoss()
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    X, y = torch.from_numpy(X), torch.from_numpy(y)
    rng = np.random.default_rng(seed)
    model.train()

    def epoch():
        for idx in batches(len(X), limit, rng):
            idx = torch.from_numpy(idx)
            xb, yb = X[idx], y[idx]
            opt.zero_grad()
            loss(model(xb), yb).backward()
            opt.step()

    def test_accuracy():
        model.eval()
        with torch.no_grad():
            pred = torch.cat([model(torch.from_numpy(Xt[i:i + 1000])).argmax(1) for i in range(0, len(Xt), 1000)])
        return float((pred.numpy() == yt).mean())
    return epoch, test_accuracy


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batches", type=int, default=None, help="time only the first N batches of each epoch")
    ap.add_argument("--models", default="lenet5,mlp")
    ap.add_argument("--data", default=FASHION)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--threads", type=int, default=THREADS, help="threads for both libraries (default 2)")
    args = ap.parse_args(argv)

    cnn_core.set_num_threads(THREADS)
    torch = None
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(THREADS)
        except ImportError:
            print("PyTorch not importable: cnn_core figures only")
    X, y = load_mnist(args.data, "train")
    Xt, yt = load_mnist(args.data, "test")
    span = "full epochs" if args.batches is None else f"first {args.batches} batches of each epoch"
    print(f"data: {args.data} ({len(X)} train, {len(Xt)} test); batch {BATCH}, SGD lr {LR} momentum {MOMENTUM}, "
          f"float32, {THREADS} threads; {args.epochs} epochs, timing {span}")
    print(_timing.machine())
    print(f"cnn_core {cnn_core.__version__}" + (f", torch {torch.__version__}" if torch else ""))
    rows = []
    for name in args.models.split(","):
        shape = (-1, 1, 28, 28) if name == "lenet5" else (-1, 784)
        data = (X.reshape(shape), y, Xt.reshape(shape), yt)
        ours_epoch, ours_accuracy, init = cnn_core_trainer(name, *data, args.batches, args.seed)
        trainers = [(ours_epoch, ours_accuracy)]
        if torch is not None:
            trainers.append(torch_trainer(torch, name, init, *data, args.batches, args.seed))
        # One epoch each per round, no warm-up: every epoch trains on, so each counts.
        times = _timing.interleaved_samples([t[0] for t in trainers], repeats=1, rounds=args.epochs, warmup=0)
        ours, ours_acc = times[0], ours_accuracy()
        print(f"  {name:7s} cnn_core epochs: {', '.join(f'{t:.2f}' for t in ours)} s; test acc {ours_acc:.4f}",
              flush=True)
        theirs = theirs_acc = None
        if torch is not None:
            theirs, theirs_acc = times[1], trainers[1][1]()
            print(f"  {name:7s} torch    epochs: {', '.join(f'{t:.2f}' for t in theirs)} s; "
                  f"test acc {theirs_acc:.4f}", flush=True)
        rows.append((name, ours, ours_acc, theirs, theirs_acc))

    print("\n| model | cnn_core epoch (s, median) | PyTorch epoch (s, median) | ratio | cnn_core test acc "
          "| PyTorch test acc | epochs |")
    print("|---|---|---|---|---|---|---|")
    for name, ours, ours_acc, theirs, theirs_acc in rows:
        m_ours = statistics.median(ours)
        if theirs:
            m_theirs = statistics.median(theirs)
            print(f"| {name} | {m_ours:.2f} | {m_theirs:.2f} | {m_ours / m_theirs:.2f}x | {ours_acc:.4f} "
                  f"| {theirs_acc:.4f} | {args.epochs} |")
        else:
            print(f"| {name} | {m_ours:.2f} | - | - | {ours_acc:.4f} | - | {args.epochs} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
