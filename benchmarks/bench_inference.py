"""Inference against onnxruntime and PyTorch: a compiled cnn_core plan (cnn_core.compile), onnxruntime running
the same network exported by cnn_core.onnx.export, and PyTorch in torch.inference_mode with the same weights;
for LeNet-5, the MLP 784-100-10 (ReLU) and small_cnn (float32): the latency of one image (batch 1) and the
time for 10,000 images in one call.

Each library runs in its own worker process (PyTorch's wheel ships a libgomp with the same soname as the
system's; onnxruntime has its own thread pool), the three taking turns round by round, so that each sees
the same machine; the figure is the median over the rounds of each worker's medians (benchmarks/_timing.py).
Threads: cnn_core.set_num_threads, onnxruntime's intra_op_num_threads (inter-op 1, sequential execution)
and torch.set_num_threads all get --threads. The images are uniform random pixels in [0, 1) (the time does
not depend on the values); the workers check that their outputs agree with cnn_core's model.forward.

Targets (issue 14): LeNet-5 at most 1.0x onnxruntime's latency and 10,000-image time; the MLP and small_cnn
at most 1.25x.

Run: python benchmarks/bench_inference.py [--rounds 3] [--threads 2] [--nets lenet5,mlp,small_cnn]
     [--profile] (per-op times of cnn_core's plan at batch 1, from prefixes of its op list)
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import _timing  # first: re-executes without OpenBLAS overrides before NumPy loads

N_IMAGES = 10_000
NETS = {"lenet5": ((1, 28, 28), 1.0), "mlp": ((784,), 1.25), "small_cnn": ((1, 28, 28), 1.25)}


def _build(net: str):
    from cnn_core import models
    if net == "lenet5":
        return models.lenet5(rng=0)
    if net == "mlp":
        return models.mlp([784, 100, 10], "relu", rng=0)
    model = models.small_cnn(rng=0)
    # trained-looking batch norms (fresh ones are the identity)
    import numpy as np
    rng = np.random.default_rng(0)
    for m in model.modules():
        if hasattr(m, "running_var"):
            m.running_mean[:] = rng.normal(0, 0.2, m.num_features)
            m.running_var[:] = rng.uniform(0.5, 2.0, m.num_features)
    return model


def prepare(net: str, workdir: str) -> None:
    """The network's weights (state_dict .npz, for PyTorch), cnn_core file and ONNX export, and the inputs."""
    import numpy as np

    import cnn_core
    from cnn_core import onnx as cnn_onnx
    model = _build(net).eval()
    shape = NETS[net][0]
    cnn_core.save(model, os.path.join(workdir, f"{net}.npz"))
    np.savez(os.path.join(workdir, f"{net}_state.npz"), **model.state_dict())
    cnn_onnx.export(model, os.path.join(workdir, f"{net}.onnx"), (1,) + shape)
    X = np.random.default_rng(1).random((N_IMAGES,) + shape, dtype=np.float32)
    np.save(os.path.join(workdir, f"{net}_X.npy"), X)
    np.save(os.path.join(workdir, f"{net}_ref.npy"), model(X[:64]))
    if net == "small_cnn":
        import inspect
        from cnn_core import models
        with open(os.path.join(workdir, f"{net}_defaults.json"), "w") as f:
            json.dump({k: p.default for k, p in inspect.signature(models.small_cnn).parameters.items()
                       if k in ("channels", "depth")}, f)


def _check(out, workdir: str, net: str) -> float:
    import numpy as np
    ref = np.load(os.path.join(workdir, f"{net}_ref.npy"))
    err = float(np.abs(np.asarray(out)[:64] - ref).max() / np.abs(ref).max())
    if err > 1e-4:
        raise AssertionError(f"{net}: outputs differ from cnn_core's model.forward by {err:.2e} (relative)")
    return err


def _time(run, x1, X) -> dict[str, float]:
    return {"batch1": _timing.median_time(lambda: run(x1), repeats=15, min_time=0.05),
            "10k": _timing.median_time(lambda: run(X), repeats=5, number=1)}


def worker_cnn_core(net: str, threads: int, workdir: str) -> dict[str, float]:
    import numpy as np

    import cnn_core
    cnn_core.set_num_threads(threads)
    model = cnn_core.load(os.path.join(workdir, f"{net}.npz")).eval()
    X = np.load(os.path.join(workdir, f"{net}_X.npy"))
    plan = cnn_core.compile(model, (1,) + X.shape[1:])
    err = _check(plan(X[:64]), workdir, net)
    return {**_time(plan, X[:1], X), "err": err}


def worker_ort(net: str, threads: int, workdir: str) -> dict[str, float]:
    import numpy as np
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(os.path.join(workdir, f"{net}.onnx"), so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    X = np.load(os.path.join(workdir, f"{net}_X.npy"))
    err = _check(sess.run(None, {name: X[:64]})[0], workdir, net)
    return {**_time(lambda x: sess.run(None, {name: x}), X[:1], X), "err": err}


def _torch_model(net: str, workdir: str):
    import torch
    tnn = torch.nn
    if net == "lenet5":
        return tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2),
                              tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(),
                              tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(), tnn.Linear(84, 10))
    if net == "mlp":
        return tnn.Sequential(tnn.Linear(784, 100), tnn.ReLU(), tnn.Linear(100, 10))
    # small_cnn's own defaults (prepare saved them: this process must not load cnn_core, which would set the
    # OpenMP runtime torch then shares; see _timing.Child), so that the twin follows the network cnn_core builds
    with open(os.path.join(workdir, f"{net}_defaults.json")) as f:
        defaults = json.load(f)
    layers, cin = [], 1
    for i, (cout, depth) in enumerate(zip(defaults["channels"], defaults["depth"])):
        for _ in range(depth):
            layers += [tnn.Conv2d(cin, cout, 3, padding=1, bias=False), tnn.BatchNorm2d(cout), tnn.ReLU()]
            cin = cout
        if i < 2:
            layers.append(tnn.MaxPool2d(2))
    return tnn.Sequential(*layers, tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Dropout(0.2), tnn.Linear(cin, 10))


def worker_torch(net: str, threads: int, workdir: str) -> dict[str, float]:
    import numpy as np
    import torch
    torch.set_num_threads(threads)
    model = _torch_model(net, workdir).eval()
    state = np.load(os.path.join(workdir, f"{net}_state.npz"))
    model.load_state_dict({k: torch.from_numpy(np.array(state[k])) for k in state.files})
    X = torch.from_numpy(np.load(os.path.join(workdir, f"{net}_X.npy")))

    def run(x):
        with torch.inference_mode():
            return model(x)
    err = _check(run(X[:64]).numpy(), workdir, net)
    return {**_time(run, X[:1], X), "err": err}


def profile(net: str, workdir: str, threads: int) -> None:
    """Per-op times of the plan at batch 1 (each op's time: a program of the first k ops minus one of k-1)."""
    import numpy as np

    import cnn_core
    from cnn_core import plan as P
    cnn_core.set_num_threads(threads)
    model = cnn_core.load(os.path.join(workdir, f"{net}.npz")).eval()
    X = np.load(os.path.join(workdir, f"{net}_X.npy"))
    plan = cnn_core.compile(model, (1,) + X.shape[1:])
    x1, out = X[:1], plan(X[:1])
    sized = plan._sized_for(1, cnn_core.get_num_threads())
    arena = np.empty(sized.arena_shape, plan.dtype)
    builder = plan._builder
    print(f"\n{net}: plan at batch 1, per op (median of blocks; 'none' is an empty op list)")
    prev = 0.0
    for k in range(len(builder.ops) + 1):
        sub = P._Builder(builder.dtype)
        sub.ops, sub.work = builder.ops[:k], builder.work
        prog = P._program(sub, sized.chunk)
        t = _timing.median_time(lambda: prog.run(x1, out, arena, sized.chunk, sized.max_threads), repeats=15,
                                min_time=0.02)
        print(f"  {t * 1e6:8.2f} us  {(t - prev) * 1e6:+8.2f}  {plan.ops[k - 1] if k else 'none'}")
        prev = t
    full = _timing.median_time(lambda: plan(x1, out=out), repeats=15, min_time=0.02)
    print(f"  {full * 1e6:8.2f} us  {(full - prev) * 1e6:+8.2f}  Plan.__call__ (argument checks, arena)")


WORKERS = {"cnn_core": worker_cnn_core, "onnxruntime": worker_ort, "torch": worker_torch}


def main(argv=None) -> int:
    if argv is None and sys.argv[1:2] == ["--worker"]:
        lib, net, threads, workdir = sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
        print(json.dumps(WORKERS[lib](net, threads, workdir)))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--nets", default="lenet5,mlp,small_cnn", help="comma-separated: " + ", ".join(NETS))
    ap.add_argument("--profile", action="store_true", help="also print the plan's per-op times at batch 1")
    args = ap.parse_args(argv)
    nets = [n for n in args.nets.split(",") if n]
    for n in nets:
        if n not in NETS:
            ap.error(f"--nets: unknown network {n!r}")
    print(f"Inference, float32, {args.threads} threads, {args.rounds} rounds: one image, and {N_IMAGES:,} images "
          "in one call")
    print(_timing.machine())
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    libs = list(WORKERS)
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for net in nets:
            prepare(net, workdir)
        for net in nets:
            samples = {lib: {"batch1": [], "10k": []} for lib in libs}
            for _ in range(args.rounds):
                for lib in list(libs):
                    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", lib, net,
                                          str(args.threads), workdir], env=env, cwd="/", capture_output=True,
                                         text=True)
                    if out.returncode != 0:
                        if "ModuleNotFoundError" in out.stderr and lib != "cnn_core":
                            print(f"{lib} not importable: left out")
                            libs.remove(lib)
                            continue
                        raise RuntimeError(out.stderr)
                    for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items():
                        if k in samples[lib]:
                            samples[lib][k].append(v)
            rows.append((net, {lib: {k: statistics.median(v) for k, v in samples[lib].items() if v}
                               for lib in libs}))
            if args.profile:
                profile(net, workdir, args.threads)
    print("\n| network | work | cnn_core plan | onnxruntime | PyTorch | plan / ORT | target | plan / torch |")
    print("|---|---|---|---|---|---|---|---|")
    for net, med in rows:
        target = NETS[net][1]
        for key, label, unit, scale in (("batch1", "one image (latency)", "us", 1e6),
                                        ("10k", f"{N_IMAGES:,} images", "ms", 1e3)):
            ours = med["cnn_core"][key]
            ort = med.get("onnxruntime", {}).get(key)
            torch = med.get("torch", {}).get(key)
            cell = (lambda t: f"{t * scale:.1f} {unit}" if t else "-")
            r_ort = f"{ours / ort:.2f}x" if ort else "-"
            verdict = "" if not ort else (" met" if ours / ort <= target else " MISSED")
            r_torch = f"{ours / torch:.2f}x" if torch else "-"
            print(f"| {net} | {label} | {cell(ours)} | {cell(ort)} | {cell(torch)} | {r_ort} | <= {target}x{verdict} "
                  f"| {r_torch} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
