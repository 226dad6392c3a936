"""Data-parallel training on MPI: measured on this machine, and modelled for a cluster.

1. Throughput of `cnn_core.fit(..., distributed=...)` training LeNet-5 on Fashion-MNIST (SGD lr 0.05 momentum
   0.9, float32, global batch --batch, --samples training images, --epochs epochs; the figure is the median
   images/s of the epochs after the first): 1 rank x 2 threads against 2 ranks x 1 thread, the two taking
   turns --rounds times, each a fresh `mpiexec` job; medians over the rounds. Then the overlap of the
   all-reduce with backward, off and on (Options(buckets=4, overlap=...)) in alternate epochs of one 2-rank
   job, so that the overlap alone differs.
2. The all-reduce itself (cnn_core.distributed.allreduce_gradients, 2 ranks, float32 gradients) against the
   message size, for 1, 4 and 16 buckets; LeNet-5's 61,706 parameters (247 KB) among the sizes.
3. The compute time of one training step (zero_grad, forward, loss, backward, SGD step) of LeNet-5 on this
   machine (2 threads) against the batch size: the compute(b) of the model below.
4. The model (docs/scaling.md): step time = compute(B / p) + ring all-reduce time, the ring moving
   2 (p - 1) / p of the gradient bytes S per rank in 2 (p - 1) messages of latency alpha:
       allreduce(p) = 2 (p - 1) alpha + 2 (p - 1) / p * S / bandwidth,
   for a 10 Gbit/s network (alpha 25 us, TCP over Ethernet) and a 100 Gbit/s one (alpha 2 us, RDMA); a node
   is this machine (2 cores). Printed: throughput and efficiency for 2..64 nodes, at a fixed global batch
   (strong scaling) and at a fixed batch per node (weak scaling), and for each global batch the node count
   beyond which adding nodes stops paying.

Run: python benchmarks/bench_distributed.py [--samples 6400] [--batch 64] [--epochs 3] [--rounds 3]
     [--data /usr/share/datasets/fashion-mnist]      (needs the [mpi] extra: mpi4py and mpiexec)
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import _timing  # first: re-executes without OpenBLAS overrides before NumPy loads

FASHION = "/usr/share/datasets/fashion-mnist"
LENET5_PARAMETERS = 61_706
# Network models: (name, bandwidth in bytes/s, latency per message in seconds)
NETWORKS = (("10 Gbit/s Ethernet (alpha 25 us)", 10e9 / 8, 25e-6), ("100 Gbit/s RDMA (alpha 2 us)", 100e9 / 8, 2e-6))
NODES = (1, 2, 4, 8, 16, 32, 64)
ALLREDUCE_SIZES = (1_024, 16_384, LENET5_PARAMETERS, 262_144, 1_048_576, 4_194_304)  # float32 values


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--samples", type=int, default=6400, help="training images per epoch (default 6400)")
    p.add_argument("--batch", type=int, default=64, help="global batch (default 64)")
    p.add_argument("--epochs", type=int, default=3, help="epochs per run; the first is a warm-up (default 3)")
    p.add_argument("--rounds", type=int, default=3, help="turns of each configuration (default 3)")
    p.add_argument("--data", default=FASHION, help=f"Fashion-MNIST directory (default {FASHION})")
    p.add_argument("--worker", choices=("throughput", "allreduce", "overlap"), help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--overlap", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--buckets", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    return p.parse_args(argv)


# ---- workers (run by mpiexec) ------------------------------------------------------------------------------

def _lenet_job(args):
    """What both training workers start from: MPI up, the threads set, the first samples of Fashion-MNIST, a
    seeded LeNet-5 and SGD with momentum. Returns (rank, size, X, y, model, optimizer)."""
    import cnn_core
    from cnn_core import distributed, optim
    from cnn_core.datasets import load_mnist
    from cnn_core.models import lenet5

    rank, size = distributed.init()
    cnn_core.set_num_threads(args.threads)
    X, y = load_mnist(args.data, "train")
    X, y = X[:args.samples], y[:args.samples]
    cnn_core.manual_seed(0)
    model = lenet5()
    return rank, size, X, y, model, optim.SGD(model.parameters(), lr=0.05, momentum=0.9)


def worker_throughput(args) -> None:
    import cnn_core
    from cnn_core import distributed, nn

    rank, size, X, y, model, opt = _lenet_job(args)
    opts = distributed.Options(buckets=args.buckets, overlap=args.overlap)
    h = cnn_core.fit(model, nn.CrossEntropyLoss(), opt, X, y, epochs=args.epochs, batch_size=args.batch, seed=0,
                     distributed=opts)
    if rank == 0:
        with open(args.out, "w") as f:
            json.dump({"images_per_sec": statistics.median(h.history["samples_per_sec"][1:]),
                       "train_loss": h.history["train_loss"][-1], "ranks": size}, f)


def worker_overlap(args) -> None:
    """Overlap off and on in turns, epoch by epoch, in one job (the same processes and machine state):
    4 buckets both ways, so that the overlap alone differs."""
    import cnn_core
    from cnn_core import distributed, nn

    rank, size, X, y, model, opt = _lenet_job(args)
    speeds: dict[str, list[float]] = {"off": [], "on": []}
    for epoch in range(2 * (args.rounds + 1)):
        overlap = epoch % 2 == 1
        h = cnn_core.fit(model, nn.CrossEntropyLoss(), opt, X, y, epochs=epoch + 1, initial_epoch=epoch,
                         batch_size=args.batch, seed=0, distributed=distributed.Options(buckets=4, overlap=overlap))
        if epoch >= 2:  # the first pair warms up
            speeds["on" if overlap else "off"].append(h.history["samples_per_sec"][0])
    if rank == 0:
        with open(args.out, "w") as f:
            json.dump(speeds, f)


def worker_allreduce(args) -> None:
    from mpi4py import MPI

    import cnn_core
    from cnn_core import distributed, nn

    rank, size = distributed.init()
    cnn_core.set_num_threads(1)
    comm = MPI.COMM_WORLD
    # Each call starts from a barrier, as in training where the ranks arrive together after equal compute; the
    # barrier's fastest time is subtracted. Both the median and the fastest call are kept: on a shared machine a
    # rank waits whenever the other one is descheduled, and the fastest call is the cost when both run.
    # A fixed number of calls (number=1, repeats): every rank makes the same collectives.
    barrier = min(_timing.interleaved_samples([comm.Barrier], repeats=41, rounds=1, warmup=5)[0])
    rows = []
    for n in ALLREDUCE_SIZES:
        model = nn.Linear(n, 1, bias=False)  # n float32 gradients
        row = {"values": n, "bytes": 4 * n}
        for buckets in (1, 4, 16):
            def call():
                comm.Barrier()
                distributed.allreduce_gradients(model, 0.5, buckets=buckets)
            times = _timing.interleaved_samples([call], repeats=41, rounds=1, warmup=5)[0]
            row[buckets] = [statistics.median(times) - barrier, min(times) - barrier]
        rows.append(row)
    if rank == 0:
        with open(args.out, "w") as f:
            json.dump({"ranks": size, "rows": rows, "barrier": barrier}, f)


# ---- the driver ------------------------------------------------------------------------------------------

def mpiexec() -> str:
    here = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    found = here if os.access(here, os.X_OK) else shutil.which("mpiexec")
    if found is None:
        sys.exit("bench_distributed: no mpiexec (install the [mpi] extra: mpi4py and mpich)")
    return found


def run_job(ranks: int, worker_args: list[str], tmp: str) -> dict:
    out = os.path.join(tmp, "result.json")
    cmd = [mpiexec(), "-n", str(ranks), sys.executable, os.path.abspath(__file__)] + worker_args + ["--out", out]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, timeout=3600)
    if proc.returncode != 0:
        sys.exit(f"bench_distributed: {' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    with open(out) as f:
        return json.load(f)


def compute_times(batches) -> dict[int, float]:
    """Seconds per training step of LeNet-5 (2 threads, float32) at each batch size: the model's compute(b)."""
    import numpy as np

    import cnn_core
    from cnn_core import nn, optim
    from cnn_core.models import lenet5

    cnn_core.set_num_threads(2)
    cnn_core.manual_seed(0)
    model = lenet5()
    model.input_grad = False  # as fit trains: no gradient with respect to the images
    loss = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    out = {}
    for b in batches:
        x = rng.random((b, 1, 28, 28), dtype=np.float32)
        t = rng.integers(0, 10, b)

        def step():
            model.zero_grad()
            loss(model(x), t)
            model.backward(loss.backward())
            opt.step()
        out[b] = _timing.median_time(step, repeats=9, min_time=0.1)
    return out


def affine_fit(table: dict[int, float]) -> tuple[float, float]:
    """(c0, c1) of compute(b) = c0 + c1 b fitted to the measurements by least squares on relative errors: a fixed
    cost per step plus a cost per image, which smooths this shared machine's noise and never predicts a
    smaller batch to be slower."""
    import numpy as np

    b = np.array(sorted(table), np.float64)
    t = np.array([table[k] for k in sorted(table)])
    c1, c0 = np.polyfit(b, t, 1, w=1 / t)
    return max(c0, 0.0), c1


def compute_at(fit: tuple[float, float], b: float) -> float:
    return fit[0] + fit[1] * b


def ring_allreduce(p: int, nbytes: float, bandwidth: float, latency: float) -> float:
    return 0.0 if p == 1 else 2 * (p - 1) * latency + 2 * (p - 1) / p * nbytes / bandwidth


def model_tables(compute: tuple[float, float], strong_batch: int, weak_batch: int) -> list[str]:
    nbytes = 4 * LENET5_PARAMETERS
    lines = []
    for name, bw, alpha in NETWORKS:
        lines.append(f"\n{name}: all-reduce of S = {nbytes:,} bytes per step")
        lines.append(f"{'nodes':>5} {'allreduce':>10} | strong, global batch {strong_batch:<5} "
                     f"{'img/s':>9} {'eff':>5} | weak, {weak_batch}/node {'img/s':>10} {'eff':>5}")
        t1 = compute_at(compute, strong_batch)
        for p in NODES:
            ar = ring_allreduce(p, nbytes, bw, alpha)
            strong = strong_batch / (compute_at(compute, strong_batch / p) + ar) if strong_batch >= p else None
            weak = p * weak_batch / (compute_at(compute, weak_batch) + ar)
            s_txt = (f"{strong:9,.0f} {strong * t1 / strong_batch / p:5.0%}" if strong else f"{'-':>9} {'-':>5}")
            lines.append(f"{p:5d} {ar * 1e3:8.3f}ms | {'':26}{s_txt} | {'':14}{weak:10,.0f} "
                         f"{compute_at(compute, weak_batch) / (compute_at(compute, weak_batch) + ar):5.0%}")
        stops = []
        for batch in (64, 256, 1024, 4096):
            best = max((p for p in NODES if p <= batch),
                       key=lambda p: batch / (compute_at(compute, batch / p) + ring_allreduce(p, nbytes, bw, alpha)))
            stops.append(f"global batch {batch}: {best} nodes ({batch / best:.0f}/node)")
        lines.append("  most images/s among 1..64 nodes: " + "; ".join(stops))
        # p -> 2p nodes at a fixed global batch halves the per-node batch b: it pays while the compute saved,
        # c1 b / 2, exceeds the all-reduce time added, allreduce(2p) - allreduce(p)
        added = [ring_allreduce(2 * p, nbytes, bw, alpha) - ring_allreduce(p, nbytes, bw, alpha) for p in NODES[:-1]]
        pays = [f"{p}->{2 * p}: b > {2 * a / compute[1]:.1f}" for p, a in zip(NODES, added)]
        lines.append("  doubling the nodes pays while the per-node batch b is above: " + ", ".join(pays))
    return lines


def main() -> None:
    args = parse_args()
    if args.worker == "throughput":
        return worker_throughput(args)
    if args.worker == "allreduce":
        return worker_allreduce(args)
    if args.worker == "overlap":
        return worker_overlap(args)
    print("bench_distributed: LeNet-5 data-parallel training on MPI (cnn_core.distributed)")
    print(_timing.machine())
    mpiexec()
    with tempfile.TemporaryDirectory() as tmp:
        common = ["--samples", str(args.samples), "--batch", str(args.batch), "--epochs", str(args.epochs),
                  "--data", args.data, "--worker", "throughput"]
        configs = [("1 rank x 2 threads", 1, ["--threads", "2"]), ("2 ranks x 1 thread", 2, ["--threads", "1"])]
        speeds: dict[str, list[float]] = {name: [] for name, _, _ in configs}
        for _ in range(args.rounds):
            for name, ranks, extra in configs:
                time.sleep(_timing.SETTLE)
                speeds[name].append(run_job(ranks, common + extra, tmp)["images_per_sec"])
        print(f"\n1. Training throughput, Fashion-MNIST, {args.samples:,} images/epoch, global batch {args.batch}, "
              f"median of {args.rounds} rounds (each: median of epochs 2..{args.epochs})")
        med = {name: statistics.median(v) for name, v in speeds.items()}
        for name, v in speeds.items():
            print(f"  {name:40s} {med[name]:8,.0f} images/s   (rounds: {', '.join(f'{x:,.0f}' for x in v)})")
        base = med["1 rank x 2 threads"]
        print(f"  2 ranks / 1 rank: {med['2 ranks x 1 thread'] / base:.2f}x")
        common[-1] = "overlap"
        ov = run_job(2, common + ["--threads", "1", "--rounds", str(args.rounds + 2)], tmp)
        on, off = statistics.median(ov["on"]), statistics.median(ov["off"])
        print(f"  overlap (2 ranks x 1 thread, 4 buckets, one job, epochs alternating off/on, medians of "
              f"{len(ov['on'])}): off {off:,.0f}, on {on:,.0f} images/s: on / off {on / off:.3f}")

        ar = run_job(2, ["--worker", "allreduce"], tmp)
        print(f"\n2. allreduce_gradients on {ar['ranks']} ranks (this machine: shared memory), float32, time per "
              f"call, median / fastest of 41 (each after a barrier, whose fastest {ar['barrier'] * 1e6:.1f} us are "
              f"subtracted)")
        print(f"  {'values':>10} {'bytes':>11} {'1 bucket':>19} {'4 buckets':>19} {'16 buckets':>19} "
              f"{'GB/s (1, fastest)':>18}")
        for row in ar["rows"]:
            mark = "  <- LeNet-5" if row["values"] == LENET5_PARAMETERS else ""
            print(f"  {row['values']:10,} {row['bytes']:11,} " +
                  " ".join(f"{row[str(b)][0] * 1e6:9.1f} /{row[str(b)][1] * 1e6:7.1f}us" for b in (1, 4, 16)) +
                  f" {row['bytes'] / row['1'][1] / 1e9:18.2f}{mark}")

    batches = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
    compute = compute_times(batches)
    fit = affine_fit(compute)
    print("\n3. compute(b): one LeNet-5 training step on this machine (2 threads, float32), measured and fitted")
    print("  " + "  ".join(f"b={b}: {t * 1e3:.2f}ms" for b, t in compute.items()))
    print(f"  fit: compute(b) = {fit[0] * 1e3:.2f} ms + {fit[1] * 1e6:.1f} us x b  (" +
          "  ".join(f"b={b}: {compute_at(fit, b) * 1e3:.2f}ms" for b in compute) + ")")
    print("\n4. Model: step = compute(B/p) + 2(p-1) alpha + 2(p-1)/p S / bandwidth; a node = this machine")
    for line in model_tables(fit, strong_batch=256, weak_batch=64):
        print(line)


if __name__ == "__main__":
    main()
