"""Training speed against PyTorch through the public API: LeNet-5 and an MLP 784-100-10 on Fashion-MNIST
(60k) trained with `cnn_core.fit`, same settings; LeNet-5 inference through `cnn_core.predict`.

Settings (both libraries): ReLU, CrossEntropyLoss, SGD lr 0.05 momentum 0.9, batch 64, float32, one shuffle
per epoch, 2 threads (cnn_core.set_num_threads(2), torch.set_num_threads(2)). Both libraries start from the
same initial weights (cnn_core's PyTorch-style init, copied into the torch model) and see the same batches
in the same order (epoch e's permutation is fit's, np.random.default_rng([seed, e])), so their test
accuracies differ only by floating-point rounding along the way. Each trains for --epochs epochs, the two
libraries taking turns epoch by epoch (so both see the same machine state), each in a process of its own
(PyTorch's started by this script, so that the two do not share an OpenMP runtime; see _timing.Child):
cnn_core as a user runs it,
`cnn_core.fit(..., epochs=e + 1, initial_epoch=e)` per epoch (argument checks included), PyTorch as the usual
hand-written loop. The figures per model are the median epoch times, their ratio as the median over the
rounds of each round's ratio (the two epochs of a round run one after the other, so a slow phase of the VM,
which lasts seconds and slows everything up to 1.6x, tends to slow both or neither; the ratio of the overall
medians takes whichever side more of those phases fell on, as in bench_conv and bench_gemm: _timing's
paired_ratio), then both test accuracies. Users
usually call fit once for all epochs (the examples, the cli, the README); one call per epoch charges every
epoch with fit's per-call work, the harder case. That work no longer includes a scan of all of X for
NaN/inf (~9 ms for Fashion-MNIST): fit screens each shuffled batch as the prefetch thread gathers it.

fit's own work: the model, loss and optimizer that fit drives are timed from inside (forward, loss, loss
backward, model backward, optimizer step, zero_grad); the rest of each fit call is fit's own work
(validation of the arguments, shuffling, batch gathering, finiteness checks, scoring, snapshots), printed as
a fraction of the call. Issue 10's target: under 3%.

Memory: for each model and library, a fresh process imports everything, loads the data, then trains one
epoch (the same settings; --batches N: the first N batches); the figure is the peak resident memory during
that epoch minus the resident memory before it (Linux's VmHWM, reset through /proc/self/clear_refs), i.e.
what training adds: parameters' gradients and optimizer state, activations, scratch. Issue 10's target: no
more than PyTorch's. --no-memory skips it.

--profile NAME: instead, one cnn_core epoch of model NAME with every layer's forward and backward, the loss,
the optimizer step, zero_grad and fit's own pieces (getting the next batch, apart from the wait for the
prefetch thread's gather job, which is its own row; the gradients' NaN/inf scan; the up-front checks of X)
timed from inside, printed per phase, largest first.

Inference: predict on the 10,000 test images (batch 256) against torch.inference_mode, and batch-1 latency.
--batches N times the first N batches of each epoch instead (a shorter run; the output says so).

Run: python benchmarks/bench_train.py [--epochs 3] [--models lenet5,mlp] [--data DIR] [--threads 2]
     [--no-memory] [--profile lenet5|mlp]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import _timing  # first: re-executes without OpenBLAS overrides before NumPy loads

THREADS = 2
# The thread count must reach the OpenMP/BLAS environment before numpy and torch load their runtimes.
if "--threads" in sys.argv[1:-1]:
    THREADS = int(sys.argv[sys.argv.index("--threads") + 1])
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, str(THREADS))

import numpy as np  # noqa: E402

# The PyTorch side runs in a process of its own (torch_peer, started by main), which must not load cnn_core:
# cnn_core would set the OpenMP runtime both libraries then share (see _timing.Child).
PEER = "--torch-peer" in sys.argv
if not PEER:
    import cnn_core  # noqa: E402
    from cnn_core import nn, optim  # noqa: E402
    from cnn_core.datasets import load_mnist  # noqa: E402
    from cnn_core.models import lenet5, mlp  # noqa: E402
    from cnn_core.training import evaluate  # noqa: E402

LR, MOMENTUM, BATCH = 0.05, 0.9, 64
FASHION = "/usr/share/datasets/fashion-mnist"


def batches(n: int, limit: int | None, seed: int, epoch: int):
    """Epoch `epoch`'s batches: fit's permutation for a seeded run, cut into BATCH-sized index arrays."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    count = -(-n // BATCH) if limit is None else limit
    for b in range(count):
        yield order[b * BATCH:(b + 1) * BATCH]


# ---- cnn_core ----------------------------------------------------------------------------------------------

def cnn_core_model(name: str):
    return lenet5() if name == "lenet5" else mlp([784, 100, 10], activation="relu")


class StepClock:
    """Seconds spent in the model's, the loss's and the optimizer's own calls during fit (the rest of a fit
    call is fit's own work): `wrap` replaces methods by timed ones as attributes of the instance itself, where
    fit finds them first (model.forward/backward/zero_grad, loss.forward, which _Loss.__call__ calls, and
    loss.backward, optimizer.step); `seconds` accumulates. No proxy object in front of the loss or the
    optimizer: a proxy's extra frames and its __getattr__ fall-back cost ~2.4 us a step outside the timed
    windows, on fit's side of the ledger (a step of six no-op calls through proxies: 3.7-3.8 us against 0.33
    us unwrapped, 1.0-1.1 us of it inside the windows). With the attributes: 2.24 us against 0.40-0.45, 1.0
    inside, so ~0.8 us a step of the probe's own cost still counts as fit's work (0.3% of an MLP step)."""

    def __init__(self):
        self.seconds = 0.0

    def timed(self, fn):
        clock, now = self, time.perf_counter

        def call(*args, **kwargs):
            t0 = now()
            try:
                return fn(*args, **kwargs)
            finally:
                clock.seconds += now() - t0
        return call

    def wrap(self, obj, methods):
        for name in methods:
            object.__setattr__(obj, name, self.timed(getattr(obj, name)))  # instance attribute, not a module
        return obj


def cnn_core_trainer(name, X, y, Xt, yt, limit, seed):
    """(epoch, test_accuracy, initial state_dict, model, fit_overheads): `epoch()` trains one epoch through
    cnn_core.fit; fit_overheads collects (fit call seconds, model/loss/optimizer seconds) per epoch."""
    cnn_core.manual_seed(seed)
    model = cnn_core_model(name)
    init = model.state_dict()
    clock = StepClock()
    loss = clock.wrap(nn.CrossEntropyLoss(), ("forward", "backward"))
    opt = clock.wrap(optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM), ("step",))
    clock.wrap(model, ("forward", "backward", "zero_grad"))
    overheads: list[tuple[float, float]] = []
    count = [0]
    def epoch():
        e = count[0]
        count[0] += 1
        if limit is None:
            args = (X, y)
            kw = {"epochs": e + 1, "initial_epoch": e, "seed": seed}
        else:
            idx = np.concatenate(list(batches(len(X), limit, seed, e)))
            args = (X[idx], y[idx])
            kw = {"epochs": 1, "shuffle": False}
        clock.seconds = 0.0
        t0 = time.perf_counter()
        cnn_core.fit(model, loss, opt, *args, batch_size=BATCH, **kw)
        overheads.append((time.perf_counter() - t0, clock.seconds))
    return epoch, lambda: evaluate(model, nn.CrossEntropyLoss(), Xt, yt, batch_size=1000).accuracy, init, model, \
        overheads


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
    model.train()
    count = [0]

    def epoch():
        count[0] += 1
        for idx in batches(len(X), limit, seed, count[0] - 1):
            idx = torch.from_numpy(idx)
            xb, yb = X[idx], y[idx]
            opt.zero_grad()
            loss(model(xb), yb).backward()
            opt.step()

    def test_accuracy():
        model.eval()
        with torch.no_grad():
            pred = torch.cat([model(torch.from_numpy(Xt[i:i + 1000])).argmax(1) for i in range(0, len(Xt), 1000)])
        model.train()
        return float((pred.numpy() == yt).mean())
    return epoch, test_accuracy, model


def inference(ours_model, peer, Xt, rounds: int) -> tuple[float, float, float | None, float | None]:
    """(predict 10k s, batch-1 s) for cnn_core.predict and, when `peer` (the torch_peer Child) is given,
    torch.inference_mode there."""
    one = Xt[:1]
    big = [lambda: cnn_core.predict(ours_model, Xt, batch_size=256)] + ([(peer, "infer_all")] if peer else [])
    small = [lambda: cnn_core.predict(ours_model, one)] + ([(peer, "infer_one")] if peer else [])
    big = _timing.interleaved(big, repeats=3, rounds=rounds)
    small = _timing.interleaved(small, repeats=5, rounds=rounds, number=200)
    return big[0], small[0], (big[1] if peer else None), (small[1] if peer else None)


def torch_peer(args) -> None:
    """The PyTorch side of a run, in this process of its own: the model, data and initial weights from the
    file main wrote (args.torch_peer), then serving main's requests (_timing.serve): one training epoch,
    the test accuracy, inference on the test images (batch 256) and on one image."""
    import torch
    torch.set_num_threads(THREADS)
    with np.load(args.torch_peer) as f:
        X, y, Xt, yt = f["X"], f["y"], f["Xt"], f["yt"]
        init = {k[len("init/"):]: f[k] for k in f.files if k.startswith("init/")}
    epoch, test_accuracy, model = torch_trainer(torch, args.models, init, X, y, Xt, yt, args.batches, args.seed)
    T, T1 = torch.from_numpy(Xt), torch.from_numpy(Xt[:1])

    def infer_all():
        if model.training:
            model.eval()
        with torch.inference_mode():
            for i in range(0, len(T), 256):
                model(T[i:i + 256])

    def infer_one():
        if model.training:
            model.eval()
        with torch.inference_mode():
            model(T1)
    _timing.serve({"epoch": epoch, "accuracy": test_accuracy, "infer_all": infer_all, "infer_one": infer_one})


def start_torch_peer(name: str, data: tuple, init: dict, limit: int | None, seed: int, tmp: str):
    """A _timing.Child running torch_peer for model `name` on `data` (X, y, Xt, yt) from `init`."""
    path = os.path.join(tmp, f"{name}.npz")
    X, y, Xt, yt = data
    np.savez(path, X=X, y=y, Xt=Xt, yt=yt, **{f"init/{k}": v for k, v in init.items()})
    return _timing.Child([sys.executable, os.path.abspath(__file__), "--torch-peer", path, "--models", name,
                          "--seed", str(seed), "--threads", str(THREADS)]
                         + ([] if limit is None else ["--batches", str(limit)]))


def profile(name: str, data: str, limit: int | None, seed: int) -> None:
    """Print where one cnn_core.fit epoch of `name` spends its time, per layer and phase (after a warm-up
    epoch on 10 batches), as milliseconds and shares of the epoch."""
    import collections

    import cnn_core.data as data_module
    import cnn_core.training as training

    X, y = load_mnist(data, "train")
    X = X.reshape((-1, 1, 28, 28) if name == "lenet5" else (-1, 784))
    if limit is not None:
        X, y = X[:limit * BATCH], y[:limit * BATCH]
    cnn_core.manual_seed(seed)
    model = cnn_core_model(name)
    spent: dict[str, float] = collections.defaultdict(float)

    def timed(fn, key):
        def call(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - t0
        return call

    for i, layer in enumerate(model.children()):
        for phase in ("forward", "backward") + (("_forward_relu",) if layer._fuses_relu else ()):
            key = f"{phase} {i} {type(layer).__name__}".replace("_forward_relu", "forward+ReLU")
            object.__setattr__(layer, phase, timed(getattr(layer, phase), key))
    object.__setattr__(model, "zero_grad", timed(model.zero_grad, "zero_grad"))
    loss = nn.CrossEntropyLoss()
    loss.forward = timed(loss.forward, "loss forward")
    loss.backward = timed(loss.backward, "loss backward")
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    opt.step = timed(opt.step, "optimizer step")
    own = ("fit: next batch", "fit: gradients' NaN/inf scan", "fit: checks of X", "fit: waiting for a gather job")
    batches_fn, finite_fn, inputs_fn, gatherer_cls = (data_module.DataLoader._batches, training._all_finite,
                                                      training._as_inputs, data_module.Gatherer)

    class TimedGatherer(gatherer_cls):
        """The gatherer whose result() (the pieces of the job no helper had taken, gathered here, and the wait
        for those under way) is its own row, taken out of "fit: next batch" that contains it."""

        def result(self):
            t0 = time.perf_counter()
            try:
                return super().result()
            finally:
                waited = time.perf_counter() - t0
                spent[own[3]] += waited
                spent[own[0]] -= waited

    def batches_timed(self, *args, **kwargs):
        it = batches_fn(self, *args, **kwargs)
        while True:
            t0 = time.perf_counter()
            try:
                batch = next(it)
            except StopIteration:
                return
            finally:
                spent[own[0]] += time.perf_counter() - t0
            yield batch

    data_module.DataLoader._batches = batches_timed
    data_module.Gatherer = TimedGatherer
    training._all_finite = timed(finite_fn, own[1])
    training._as_inputs = timed(inputs_fn, own[2])
    try:
        cnn_core.fit(model, loss, opt, X[:10 * BATCH], y[:10 * BATCH], batch_size=BATCH, seed=seed)
        spent.clear()
        t0 = time.perf_counter()
        cnn_core.fit(model, loss, opt, X, y, batch_size=BATCH, seed=seed)
        total = time.perf_counter() - t0
    finally:
        data_module.DataLoader._batches, training._all_finite, training._as_inputs = (batches_fn, finite_fn,
                                                                                      inputs_fn)
        data_module.Gatherer = gatherer_cls
    inside = sum(v for k, v in spent.items() if k not in own)
    print(f"{name}: one epoch {1e3 * total:.1f} ms ({len(X)} samples, batch {BATCH}); fit's own work "
          f"{1e3 * (total - inside):.1f} ms ({100 * (total - inside) / total:.1f}%), of which:")
    for key, v in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"  {key:34s} {1e3 * v:9.1f} ms {100 * v / total:5.1f}%")
    print(f"  {'fit: the rest (loop, bookkeeping)':34s} {1e3 * (total - sum(spent.values())):9.1f} ms "
          f"{100 * (total - sum(spent.values())) / total:5.1f}%")


def _rss_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_child(lib: str, name: str, data: str, limit: int | None, seed: int) -> float:
    """MiB that one training epoch adds to this fresh process (peak RSS during it minus RSS before it)."""
    X, y = load_mnist(data, "train")
    X = X.reshape((-1, 1, 28, 28) if name == "lenet5" else (-1, 784))
    cnn_core.manual_seed(seed)
    model = cnn_core_model(name)
    if lib == "torch":
        import torch
        torch.set_num_threads(THREADS)
        epoch, _, _ = torch_trainer(torch, name, model.state_dict(), X, y, X[:1], y[:1], limit, seed)
    else:
        loss, opt = nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
        if limit is None:
            def epoch():
                cnn_core.fit(model, loss, opt, X, y, batch_size=BATCH, seed=seed)
        else:
            idx = np.concatenate(list(batches(len(X), limit, seed, 0)))
            Xs, ys = X[idx], y[idx]

            def epoch():
                cnn_core.fit(model, loss, opt, Xs, ys, batch_size=BATCH, shuffle=False)
    base = _rss_mib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # VmHWM starts again from the current RSS (Linux >= 4.0)
        f.write("5")
    epoch()
    return _rss_mib("VmHWM") - base


def memory(name: str, data: str, limit: int | None, seed: int, libs) -> list[float]:
    """MiB one epoch adds, per library in `libs`, each measured in a fresh process."""
    import subprocess
    out = []
    for lib in libs:
        args = [sys.executable, os.path.abspath(__file__), "--memory-child", lib, "--models", name, "--data", data,
                "--seed", str(seed), "--threads", str(THREADS)] + ([] if limit is None else ["--batches", str(limit)])
        run = subprocess.run(args, check=True, capture_output=True, text=True)
        out.append(float(run.stdout.split()[-1]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batches", type=int, default=None, help="time only the first N batches of each epoch")
    ap.add_argument("--models", default="lenet5,mlp")
    ap.add_argument("--data", default=FASHION)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--no-predict", action="store_true", help="skip the LeNet-5 inference timings")
    ap.add_argument("--threads", type=int, default=THREADS, help="threads for both libraries (default 2)")
    ap.add_argument("--no-memory", action="store_true", help="skip the added-memory measurement")
    ap.add_argument("--profile", metavar="MODEL", choices=("lenet5", "mlp"),
                    help="only profile one cnn_core epoch of MODEL per layer and phase")
    ap.add_argument("--omp-teams", action="store_true",
                    help="small GEMM products on OpenMP teams instead of the small-job pool (for A/B runs)")
    ap.add_argument("--memory-child", choices=("cnn_core", "torch"), help=argparse.SUPPRESS)
    ap.add_argument("--torch-peer", metavar="FILE", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.torch_peer:
        torch_peer(args)
        return 0
    if args.omp_teams:
        from cnn_core.kernels import _gemm
        _gemm.set_pool(False)
    if args.profile:
        cnn_core.set_num_threads(THREADS)
        print(_timing.machine())
        profile(args.profile, args.data, args.batches, args.seed)
        return 0
    if args.memory_child:
        print(f"{memory_child(args.memory_child, args.models, args.data, args.batches, args.seed):.1f}")
        return 0

    cnn_core.set_num_threads(THREADS)
    torch_version = None   # PyTorch runs in a process of its own (torch_peer): the parent only finds it
    if not args.no_torch:
        import importlib.util
        if importlib.util.find_spec("torch") is None:
            print("PyTorch not importable: cnn_core figures only")
        else:
            from importlib.metadata import version
            torch_version = version("torch")
    tmp = tempfile.TemporaryDirectory()   # the peer's copy of the data
    X, y = load_mnist(args.data, "train")
    Xt, yt = load_mnist(args.data, "test")
    span = "full epochs" if args.batches is None else f"first {args.batches} batches of each epoch"
    print(f"data: {args.data} ({len(X)} train, {len(Xt)} test); batch {BATCH}, SGD lr {LR} momentum {MOMENTUM}, "
          f"float32, {THREADS} threads; {args.epochs} epochs, timing {span}")
    print(_timing.machine())
    print(f"cnn_core {cnn_core.__version__}"
          + (f", torch {torch_version} (in a process of its own)" if torch_version else ""))
    with open("/proc/loadavg") as f:
        print(f"load average at the start {' '.join(f.read().split()[:3])}")
    rows, own_rows, infer = [], [], None
    for name in args.models.split(","):
        shape = (-1, 1, 28, 28) if name == "lenet5" else (-1, 784)
        data = (X.reshape(shape), y, Xt.reshape(shape), yt)
        ours_epoch, ours_accuracy, init, ours_model, overheads = cnn_core_trainer(name, *data, args.batches,
                                                                                  args.seed)
        peer = start_torch_peer(name, data, init, args.batches, args.seed, tmp.name) if torch_version else None
        # One epoch each per round, no warm-up: every epoch trains on, so each counts.
        counts = dict(cnn_core.data._gather_counts)
        times = _timing.interleaved_samples([ours_epoch] + ([(peer, "epoch")] if peer else []), repeats=1,
                                            rounds=args.epochs, warmup=0)
        ours, ours_acc = times[0], ours_accuracy()
        own = [(total - inside) / total for total, inside in overheads]
        pieces = {k: v - counts[k] for k, v in cnn_core.data._gather_counts.items()}
        shares = ", ".join(f"{who} {100 * v / max(1, sum(pieces.values())):.0f}%" for who, v in pieces.items())
        print(f"  {name:7s} cnn_core.fit epochs: {', '.join(f'{t:.2f}' for t in ours)} s; test acc {ours_acc:.4f}; "
              f"fit's own work {', '.join(f'{100 * f:.2f}%' for f in own)} of each call "
              f"({', '.join(f'{1e3 * (t - i):.1f}' for t, i in overheads)} ms); gather pieces taken by the "
              f"training thread (caller), the prefetch thread, the pool's workers: {shares}", flush=True)
        own_rows.append((name, statistics.median(own), statistics.median(t - i for t, i in overheads)))
        theirs = theirs_acc = None
        if peer is not None:
            theirs, theirs_acc = times[1], peer.call("accuracy")
            print(f"  {name:7s} torch        epochs: {', '.join(f'{t:.2f}' for t in theirs)} s; "
                  f"test acc {theirs_acc:.4f}", flush=True)
        rows.append((name, ours, ours_acc, theirs, theirs_acc))
        if name == "lenet5" and not args.no_predict:
            infer = inference(ours_model, peer, data[2], rounds=max(3, args.epochs))
        if peer is not None:
            peer.close()

    print("\n| model | cnn_core.fit epoch (s, median) | PyTorch epoch (s, median) | ratio (paired) "
          "| ratio of the medians | cnn_core test acc | PyTorch test acc | epochs |")
    print("|---|---|---|---|---|---|---|---|")
    for name, ours, ours_acc, theirs, theirs_acc in rows:
        m_ours = statistics.median(ours)
        if theirs:
            m_theirs = statistics.median(theirs)
            paired = statistics.median(o / t for o, t in zip(ours, theirs))
            print(f"| {name} | {m_ours:.2f} | {m_theirs:.2f} | {paired:.2f}x | {m_ours / m_theirs:.2f}x "
                  f"| {ours_acc:.4f} | {theirs_acc:.4f} | {args.epochs} |")
        else:
            print(f"| {name} | {m_ours:.2f} | - | - | - | {ours_acc:.4f} | - | {args.epochs} |")
    print("\n| model | fit's own work per epoch (median) | share of the fit call (target < 3%) |")
    print("|---|---|---|")
    for name, frac, seconds in own_rows:
        print(f"| {name} | {1e3 * seconds:.1f} ms | {100 * frac:.2f}% |")
    if not args.no_memory:
        libs = ["cnn_core"] + (["torch"] if torch_version else [])
        print("\n| model | memory one epoch adds: cnn_core.fit | PyTorch | ratio |")
        print("|---|---|---|---|")
        for name in args.models.split(","):
            mib = memory(name, args.data, args.batches, args.seed, libs)
            theirs_txt, ratio = (f"{mib[1]:.1f} MiB", f"{mib[0] / mib[1]:.2f}x") if len(mib) > 1 else ("-", "-")
            print(f"| {name} | {mib[0]:.1f} MiB | {theirs_txt} | {ratio} |", flush=True)
    if infer is not None:
        ours_all, ours_one, theirs_all, theirs_one = infer
        print("\n| LeNet-5 inference | cnn_core.predict | PyTorch inference_mode | ratio |")
        print("|---|---|---|---|")
        for label, a, b, unit, scale in (("10,000 images (batch 256)", ours_all, theirs_all, "s", 1.0),
                                         ("batch 1 latency", ours_one, theirs_one, "us", 1e6)):
            ratio = f"{a / b:.2f}x" if b else "-"
            theirs_txt = f"{b * scale:.3g} {unit}" if b else "-"
            print(f"| {label} | {a * scale:.3g} {unit} | {theirs_txt} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
