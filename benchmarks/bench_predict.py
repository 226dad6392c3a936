"""Inference speed against PyTorch: LeNet-5 on 10,000 Fashion-MNIST test images through cnn_core.predict
(batches of 256, its default) and the latency of one image (batch 1), beside PyTorch in torch.inference_mode
with the same batches.

Each library runs in its own worker process, the two taking turns round by round (PyTorch's wheel ships a
libgomp with the same soname as the system's, so one process would hold only one OpenMP runtime, set up by
whichever library loaded first); the figure is the median over the rounds of each worker's medians.
cnn_core's model is in eval mode (as a served model is), and predict still validates its input (type,
dtype, shape, NaN/inf) on every call.

Run: python benchmarks/bench_predict.py [--rounds 3] [--threads 2] [--data DIR]
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
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FASHION = "/usr/share/datasets/fashion-mnist"
BATCH = 256


def _test_images(path: str):
    """The test images main saved (a worker for PyTorch must not load cnn_core: see the docstring)."""
    return np.load(path)


def worker_cnn_core(threads: int, images: str) -> dict[str, float]:
    import cnn_core
    from cnn_core.models import lenet5
    cnn_core.set_num_threads(threads)
    X = _test_images(images)
    cnn_core.manual_seed(0)
    model = lenet5().eval()
    x1 = X[:1]
    full = _timing.median_time(lambda: cnn_core.predict(model, X, batch_size=BATCH), repeats=5, number=1)
    one = _timing.median_time(lambda: cnn_core.predict(model, x1), repeats=15, min_time=0.05)
    return {"10k": full, "batch1": one}


def worker_torch(threads: int, images: str) -> dict[str, float]:
    import torch
    torch.set_num_threads(threads)
    X = torch.from_numpy(_test_images(images))
    tnn = torch.nn
    model = tnn.Sequential(tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2),
                           tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(),
                           tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(), tnn.Linear(84, 10)).eval()
    x1 = X[:1]

    def full():
        with torch.inference_mode():
            return torch.cat([model(X[i:i + BATCH]) for i in range(0, len(X), BATCH)])

    def one():
        with torch.inference_mode():
            return model(x1)
    return {"10k": _timing.median_time(full, repeats=5, number=1),
            "batch1": _timing.median_time(one, repeats=15, min_time=0.05)}


def main(argv=None) -> int:
    if argv is None and sys.argv[1:2] == ["--worker"]:
        lib, threads, images = sys.argv[2], int(sys.argv[3]), sys.argv[4]
        print(json.dumps((worker_cnn_core if lib == "cnn_core" else worker_torch)(threads, images)))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=FASHION)
    ap.add_argument("--no-torch", action="store_true")
    args = ap.parse_args(argv)
    libs = ["cnn_core"] + ([] if args.no_torch else ["torch"])
    print(f"LeNet-5 inference, float32, {args.threads} threads, {args.rounds} rounds; 10,000 images in batches "
          f"of {BATCH}, and one image")
    print(_timing.machine())
    samples = {lib: {"10k": [], "batch1": []} for lib in libs}
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    from cnn_core.datasets import load_mnist
    tmp = tempfile.TemporaryDirectory()
    images = os.path.join(tmp.name, "test_images.npy")
    np.save(images, load_mnist(args.data, "test")[0])
    for _ in range(args.rounds):
        for lib in libs:
            out = subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", lib, str(args.threads),
                                  images], env=env, cwd="/", capture_output=True, text=True)
            if out.returncode != 0:
                if lib == "torch" and "ModuleNotFoundError" in out.stderr:
                    print("PyTorch not importable: cnn_core figures only")
                    libs.remove("torch")
                    del samples["torch"]
                    continue
                raise RuntimeError(out.stderr)
            for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items():
                samples[lib][k].append(v)
    print("\n| work | cnn_core | PyTorch | ratio | target |")
    print("|---|---|---|---|---|")
    for key, label, unit, scale, target in (("10k", "10,000 images through predict", "ms", 1e3, "0.5x"),
                                            ("batch1", "one image (latency)", "us", 1e6, "0.35x")):
        ours = statistics.median(samples["cnn_core"][key])
        theirs = statistics.median(samples["torch"][key]) if "torch" in samples else None
        ratio = f"{ours / theirs:.2f}x" if theirs else "-"
        peer = f"{theirs * scale:.1f} {unit}" if theirs else "-"
        print(f"| {label} | {ours * scale:.1f} {unit} | {peer} | {ratio} | {target} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
