"""Training speed on a busy machine: MLP 784-100-10 and LeNet-5 epochs through cnn_core.fit beside PyTorch,
on a quiet machine and under loads the benchmark starts and stops itself.

Why: OpenMP threads that wait at a barrier spin (libgomp's default: up to GOMP_SPINCOUNT=300000 pause
instructions, then a futex sleep). When more threads are runnable than there are cores, a spinning thread
holds a core the thread it waits for needs, and the scheduler treats it as a CPU hog; with many small
parallel regions per batch (an MLP makes two or three per batch) an epoch then waits on time slices, not on
arithmetic (issue 10: 0.29 s -> 8.7-13.8 s with load ~4 on 2 cores).

Loads (each a set of processes started before the rounds and killed after them):
  quiet   nothing
  spin1   one process spinning in a loop (`yes > /dev/null`-like)
  spin2   two spinning processes
  omp     a second OpenMP program: a cnn_core process training a small MLP with 2 threads in a loop, with
          libgomp's own default spinning (GOMP_SPINCOUNT=300000 set explicitly in its environment, so it
          spins as any libgomp program does, whatever default cnn_core picks)
  build   what a compiler-and-test load looks like: 4 processes that work a few milliseconds and sleep
          briefly, over and over: 3 runnable on average, plus the benchmark's own 1-2 threads, i.e. a
          load average of ~4.5-5 on 2 cores (the figure kept from earlier stops)
  build3  the same with 3 such processes: ~2.25 runnable plus ours, a load average of ~3.5-4, the load issue
          10 describes ("load average about 4 on 2 cores", a figure that counts the training itself). Under
          CFS a process with 2 threads beside N runnable others gets about 2 / (2 + N) of the 2 cores: 2/5 with
          build (so ~2.5x its quiet epoch from the CPU share alone, the target's limit) and 2/4.25 with build3
          (~2.1x)

The load average is sampled during every timed run (the 4th field of /proc/loadavg, the runnable tasks
now, every 0.1 s, this benchmark's own threads included) and printed as the mean over the run, with the
kernel's 1-minute average at its end.

Each figure comes from fresh worker processes (one per library and round, so each starts its OpenMP runtime
from the environment it is given: PyTorch's wheel ships a libgomp with the same soname, libgomp.so.1, and
one process holds only one of them), taking turns round by round; the figure is the median epoch time over
the rounds. cnn_core runs with the environment the user gave (the library's own wait-policy default applies),
PyTorch with the same one (libgomp's defaults).

Run: python benchmarks/bench_busy.py [--loads quiet,spin1,omp,build3,build] [--models mlp,lenet5] [--rounds 3]
                                     [--mlp-samples 60000] [--lenet-samples 10000] [--env NAME=VALUE ...]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import _timing  # first: re-executes without OpenBLAS overrides before NumPy loads

HERE = os.path.dirname(os.path.abspath(__file__))
FASHION = "/usr/share/datasets/fashion-mnist"
THREADS = 2
BATCH, LR, MOMENTUM = 64, 0.05, 0.9

# ---- loads -------------------------------------------------------------------------------------------------

SPIN = "while True: pass"
# Work ~3 ms, sleep ~1 ms, repeat: a compiler or a test process alternates CPU work with file I/O and
# process starts; each wake-up competes with the OpenMP threads for a core.
BURST = ("import time\n"
         "while True:\n"
         "    t = time.perf_counter()\n"
         "    while time.perf_counter() - t < 0.003: pass\n"
         "    time.sleep(0.001)\n")
# A second OpenMP program: small parallel kernels back to back (an MLP's training steps), libgomp defaults.
OMP = ("import numpy as np, cnn_core\n"
       "from cnn_core import nn, optim\n"
       "from cnn_core.models import mlp\n"
       "cnn_core.set_num_threads(2)\n"
       "rng = np.random.default_rng(1)\n"
       "X = rng.random((4096, 784), dtype=np.float32); y = rng.integers(0, 10, 4096)\n"
       "m = mlp([784, 100, 10], activation='relu')\n"
       "opt = optim.SGD(m.parameters(), lr=0.01)\n"
       "while True: cnn_core.fit(m, nn.CrossEntropyLoss(), opt, X, y, epochs=1, batch_size=64)\n")

LOADS = {
    "quiet": [],
    "spin1": [(SPIN, {})],
    "spin2": [(SPIN, {}), (SPIN, {})],
    "omp": [(OMP, {"GOMP_SPINCOUNT": "300000", "OMP_NUM_THREADS": "2"})],
    "build": [(BURST, {})] * 4,
    "build3": [(BURST, {})] * 3,
}


class LoadSampler:
    """Mean number of runnable tasks (/proc/loadavg's 4th field, minus the sampling thread itself) over
    the `with` block, sampled every 0.1 s on a background thread."""

    def __enter__(self):
        import threading
        self.samples, self._stop = [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            with open("/proc/loadavg") as f:
                self.samples.append(int(f.read().split()[3].split("/")[0]) - 1)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mean(self) -> float:
        return statistics.mean(self.samples) if self.samples else float("nan")


def start_load(name: str) -> list[subprocess.Popen]:
    procs = []
    for code, extra in LOADS[name]:
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
        env.update(extra)
        procs.append(subprocess.Popen([sys.executable, "-c", code], env=env, cwd="/",
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    time.sleep(1.0 if procs else 0.0)  # let the load start (imports) before timing
    return procs


def stop_load(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


# ---- workers (a fresh process per library and round) -----------------------------------------------------

def _data(path: str):
    """The samples main saved for this model (a PyTorch worker must not load cnn_core, which would set the
    OpenMP runtime the two then share; benchmarks/_timing.py's Child says what that does)."""
    import numpy as np
    with np.load(path) as f:
        return f["X"], f["y"]


def save_data(model: str, n: int, data_dir: str, tmp: str) -> str:
    """The first n training samples, shaped for `model`, in a file the workers read: its path."""
    import numpy as np

    from cnn_core.datasets import load_mnist
    X, y = load_mnist(data_dir, "train")
    X, y = np.ascontiguousarray(X[:n]), y[:n]
    path = os.path.join(tmp, f"{model}_{n}.npz")
    np.savez(path, X=X if model == "lenet5" else X.reshape(len(X), -1), y=y)
    return path


def worker_cnn_core(model: str, epochs: int, data: str) -> list[float]:
    import cnn_core
    from cnn_core import nn, optim
    from cnn_core.models import lenet5, mlp
    cnn_core.set_num_threads(THREADS)
    X, y = _data(data)
    cnn_core.manual_seed(0)
    net = lenet5() if model == "lenet5" else mlp([784, 100, 10], activation="relu")
    loss = nn.CrossEntropyLoss()
    opt = optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    seed = iter(range(1 << 30))

    def epoch():
        cnn_core.fit(net, loss, opt, X, y, epochs=1, batch_size=BATCH, seed=next(seed))
    return _timing.interleaved_samples([epoch], repeats=epochs, rounds=1, warmup=1)[0]


def worker_torch(model: str, epochs: int, data: str) -> list[float]:
    import numpy as np
    import torch
    torch.set_num_threads(THREADS)
    X, y = _data(data)
    tnn = torch.nn
    torch.manual_seed(0)
    if model == "lenet5":
        net = tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2),
                             tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(),
                             tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(), tnn.Linear(84, 10))
    else:
        net = tnn.Sequential(tnn.Linear(784, 100), tnn.ReLU(), tnn.Linear(100, 10))
    loss = tnn.CrossEntropyLoss()
    opt = torch.optim.SGD(net.parameters(), lr=LR, momentum=MOMENTUM)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    rng = np.random.default_rng(0)

    def epoch():   # what cnn_core.fit does per epoch: one permutation, gathered batches, a step each
        order = torch.from_numpy(rng.permutation(len(Xt)))
        for lo in range(0, len(Xt), BATCH):
            idx = order[lo:lo + BATCH]
            opt.zero_grad()
            loss(net(Xt[idx]), yt[idx]).backward()
            opt.step()
    return _timing.interleaved_samples([epoch], repeats=epochs, rounds=1, warmup=1)[0]


def run_worker(lib: str, model: str, epochs: int, data: str, env_extra: dict[str, str]) -> list[float]:
    env = dict(os.environ)
    env.update(env_extra)
    env.setdefault("OMP_NUM_THREADS", str(THREADS))
    out = subprocess.run([sys.executable, os.path.join(HERE, "bench_busy.py"), "--worker", lib, model,
                          str(epochs), data], env=env, cwd="/", capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    if argv is None and sys.argv[1:2] == ["--worker"]:
        lib, model, epochs, data = sys.argv[2:6]
        fn = worker_cnn_core if lib == "cnn_core" else worker_torch
        print(json.dumps(fn(model, int(epochs), data)))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--loads", default="quiet,spin1,omp,build3,build")
    ap.add_argument("--models", default="mlp,lenet5")
    ap.add_argument("--libs", default="cnn_core,torch")
    ap.add_argument("--rounds", type=int, default=3, help="worker processes per library, load and model")
    ap.add_argument("--epochs", type=int, default=2, help="timed epochs per worker (after one warm-up epoch)")
    ap.add_argument("--mlp-samples", type=int, default=60000)
    ap.add_argument("--lenet-samples", type=int, default=10000)
    ap.add_argument("--data", default=FASHION)
    ap.add_argument("--env", action="append", default=[],
                    help="NAME=VALUE for cnn_core's workers only (e.g. OMP_WAIT_POLICY=active to see the collapse)")
    args = ap.parse_args(argv)
    cnn_env = dict(kv.split("=", 1) for kv in args.env)
    libs = args.libs.split(",")
    print(f"{THREADS} threads, batch {BATCH}, SGD lr {LR} momentum {MOMENTUM}, float32; MLP on "
          f"{args.mlp_samples}, LeNet-5 on {args.lenet_samples} Fashion-MNIST samples per epoch; "
          f"{args.rounds} rounds x {args.epochs} epochs; cnn_core env {cnn_env or 'as given'}")
    print(_timing.machine())
    results = {}
    tmp = tempfile.TemporaryDirectory()
    data = {model: save_data(model, args.lenet_samples if model == "lenet5" else args.mlp_samples, args.data,
                             tmp.name) for model in args.models.split(",")}
    for load in args.loads.split(","):
        procs = start_load(load)
        try:
            for model in args.models.split(","):
                samples = {lib: [] for lib in libs}
                with LoadSampler() as sampler:
                    for _ in range(args.rounds):
                        for lib in libs:
                            samples[lib] += run_worker(lib, model, args.epochs, data[model],
                                                       cnn_env if lib == "cnn_core" else {})
                with open("/proc/loadavg") as f:
                    loadavg = f.read().split()[0]
                results[load, model] = {lib: statistics.median(t) for lib, t in samples.items()}
                print(f"  {load:6s} {model:7s} " + "; ".join(
                    f"{lib} {', '.join(f'{t:.2f}' for t in ts)}" for lib, ts in samples.items())
                    + f"  (runnable tasks during the run {sampler.mean:.1f}, 1-min load avg {loadavg})",
                    flush=True)
        finally:
            stop_load(procs)

    print("\n| load | model | cnn_core epoch (s) | PyTorch epoch (s) | cnn_core / PyTorch | cnn_core / its quiet |")
    print("|---|---|---|---|---|---|")
    for (load, model), r in results.items():
        ours, theirs = r.get("cnn_core"), r.get("torch")
        quiet = results.get(("quiet", model), {}).get("cnn_core")
        fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        ratio = f"{ours / theirs:.2f}x" if ours and theirs else "-"
        self_ratio = f"{ours / quiet:.2f}x" if ours and quiet else "-"
        print(f"| {load} | {model} | {fmt(ours)} | {fmt(theirs)} | {ratio} | {self_ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
