"""The program tests/test_distributed.py runs under `mpiexec -n P python mpi_worker.py MODE OUT [ARGS...]`.

Each rank writes OUT.<rank>.npz (its weights and buffers) and OUT.<rank>.json (what it saw), and exits 0
unless the mode is meant to fail. The test imports the same functions to train the single-process reference.
"""
from __future__ import annotations

import json
import sys

import numpy as np

import cnn_core
from cnn_core import nn, optim
from cnn_core.models import lenet5, mlp

STEPS_PER_EPOCH, EPOCHS = 5, 4  # 20 optimizer steps


def toy_data(kind: str, batch: int):
    """Training set of 5 global batches, the last one 2 samples short (so uneven too), plus 7 for validation."""
    n = STEPS_PER_EPOCH * batch - 2
    rng = np.random.default_rng(7)
    X = rng.standard_normal((n + 7, 1, 28, 28) if kind == "lenet" else (n + 7, 12))
    y = rng.integers(0, 10 if kind == "lenet" else 3, n + 7)
    return X[:n], y[:n], X[n:], y[n:]


def build(kind: str, seed: int):
    cnn_core.manual_seed(seed)
    if kind == "lenet":
        return lenet5(dtype="float64")
    if kind == "bn":
        return nn.Sequential(nn.Linear(12, 16, dtype="float64"), nn.BatchNorm1d(16, dtype="float64"), nn.ReLU(),
                             nn.Linear(16, 3, dtype="float64"))
    return mlp([12, 16, 3], activation="relu", dtype="float64")


def train(kind: str, batch: int, distributed=False, rank: int = 0, callbacks=()):
    """20 steps of SGD with momentum in float64; each rank starts from its own initialization (fit must
    broadcast rank 0's, which is the single-process run's)."""
    X, y, X_val, y_val = toy_data("mlp" if kind == "bn" else kind, batch)
    model = build(kind, 11 + rank)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    history = cnn_core.fit(model, nn.CrossEntropyLoss(), opt, X, y, epochs=EPOCHS, batch_size=batch,
                           validation_data=(X_val, y_val), seed=3, callbacks=list(callbacks),
                           distributed=distributed)
    return model, history


def diverge(rank: int = 0, distributed=False):
    """MSE on one-hot targets, one of them (sample 27: batch 3 of epoch 1, in the last rank's shard) so large
    that its squared error overflows: the loss is inf on that rank alone. Returns (model, [epoch, batch, message]
    of the NonFiniteLossError) ."""
    X, y, _, _ = toy_data("mlp", 10)
    targets = np.eye(3)[y]
    targets[2 * 10 + 7] = 1e300
    model = build("mlp", 11 + rank)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    try:
        cnn_core.fit(model, nn.MSELoss(), opt, X, targets, epochs=2, batch_size=10, shuffle=False,
                     distributed=distributed)
    except cnn_core.NonFiniteLossError as e:
        return model, [e.epoch, e.batch, str(e)]
    return model, None


def _write(out: str, rank: int, model, record: dict) -> None:
    np.savez(f"{out}.{rank}.npz", **model.state_dict())
    with open(f"{out}.{rank}.json", "w") as f:
        json.dump(record, f)


class _RaiseOn(cnn_core.Callback):
    """Raises on one rank only, mid-epoch: the others are then on their way into the next collective."""

    def __init__(self, rank: int, when: int) -> None:
        self.rank, self.when = rank, when

    def on_batch_end(self, batch, logs):
        from cnn_core.distributed import init
        if init()[0] == self.rank and batch == self.when:
            raise RuntimeError(f"deliberate failure on rank {self.rank}")


class _Flag(cnn_core.Callback):
    """Touches OUT.started.<rank> during epoch 2, so the test knows when to press Ctrl-C."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_batch_end(self, batch, logs):
        if logs["epoch"] == 1 and batch == 2:
            open(self.path, "w").close()


def main(argv) -> int:
    from cnn_core import distributed

    mode, out = argv[0], argv[1]
    cnn_core.set_num_threads(1)
    rank, size = distributed.init()
    if mode == "train":  # KIND BATCH [BUCKETS OVERLAP]
        kind, batch = argv[2], int(argv[3])
        opts = True if len(argv) == 4 else distributed.Options(buckets=int(argv[4]), overlap=argv[5] == "1")
        model, history = train(kind, batch, opts, rank)
        _write(out, rank, model, {"size": size, "history": history.history})
    elif mode == "raise":
        train("mlp", 10, True, rank, [_RaiseOn(1, 2)])
    elif mode == "diverge":
        model, stop = diverge(rank, True)
        _write(out, rank, model, {"stop": stop})
    elif mode == "interrupt":
        rng = np.random.default_rng(0)
        X, y = rng.standard_normal((2000, 12)), rng.integers(0, 3, 2000)
        model = build("mlp", 11 + rank)
        history = cnn_core.fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.01), X, y,
                               epochs=10 ** 6, batch_size=10, seed=1, callbacks=[_Flag(f"{out}.started.{rank}")],
                               distributed=True)
        _write(out, rank, model, {"interrupted": history.interrupted, "epochs": history.epoch})
    elif mode == "api":
        _api(out, rank, size)
    else:
        raise SystemExit(f"unknown mode {mode}")
    return 0


def _api(out: str, rank: int, size: int) -> None:
    """allreduce_gradients against the sum of every rank's weighted gradients (allgathered), for 1, 3 and 16
    buckets and two dtypes; broadcast_parameters with Adam state that only rank 0 has."""
    from mpi4py import MPI

    from cnn_core import distributed

    comm = MPI.COMM_WORLD
    model = nn.Sequential(nn.Linear(5, 7, dtype="float64"), nn.ReLU(), nn.Linear(7, 3, dtype="float64"))
    errors = {}
    for net in (model, nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 2))):  # float64, float32
        for buckets in (1, 3, 16):
            rng = np.random.default_rng(100 * buckets + rank)
            for p in net.parameters():
                p.grad[...] = rng.standard_normal(p.shape)
            weight = (rank + 1) / (size * (size + 1) / 2)
            terms = [[w * g.astype(np.float64) for w, g in comm.allgather((weight, p.grad.copy()))]
                     for p in net.parameters()]
            distributed.allreduce_gradients(net, weight, buckets=buckets)
            # the error of each summed element in units of (its dtype's eps x the sum of |terms|)
            errors[f"{net.dtype}/{buckets}"] = max(
                float((np.abs(p.grad - sum(t)) / (np.finfo(p.dtype).eps * sum(np.abs(x) for x in t))).max())
                for p, t in zip(net.parameters(), terms))
    opt = optim.Adam(model.parameters(), lr=0.01)
    cnn_core.manual_seed(rank)
    for p in model.parameters():
        p.data[...] = np.random.default_rng(rank).standard_normal(p.shape)
    if rank == 0:
        for p in model.parameters():
            p.grad[...] = 1.0
        opt.step()
    distributed.broadcast_parameters(model, opt)
    np.savez(f"{out}.{rank}.npz", **model.state_dict(),
             **{f"adam.{k}.{n}": v for k, s in opt.state_dict()["state"].items() for n, v in s.items()
                if isinstance(v, np.ndarray)})
    with open(f"{out}.{rank}.json", "w") as f:
        json.dump({"errors": errors, "is_main": distributed.is_main(), "size": distributed.world_size()}, f)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
