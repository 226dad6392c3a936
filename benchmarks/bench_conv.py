"""Conv2d forward+backward through the public layer API against torch.nn.Conv2d, shape by shape.

    python benchmarks/bench_conv.py [--threads 2] [--repeat 30] [--dtype float32 float64] [--memory]

For each shape (LeNet-5's two convolutions and the modern 3x3 / 1x1 ones of issue 10) both libraries run one
training step of the layer alone: forward, then backward with a fixed upstream gradient, the input gradient
included (torch: ``x.requires_grad``; cnn_core: ``Conv2d.backward`` returns it). Each library runs in a
child process of its own, as its users run it (one process would share one OpenMP runtime between them: see
``_timing.Child``), timed in alternating rounds, same thread count on both sides. Prints each library's median
step time and ours/torch per shape (< 1: we are faster), the median over the rounds of the two libraries'
ratio within a round (``_timing.paired_ratio``: a slow phase of a shared machine slows both blocks of a round
or neither), and the geometric mean of those ratios. Targets (issue 10): every shape <= 1.0,
geometric mean <= 0.7, in float32 and float64.

``--memory`` instead measures, in the same kind of child processes, the resident memory one shape's training
steps add (peak RSS minus RSS after imports, data, the layer and one forward call are in place) for each
library.
"""
from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys

import _timing  # first: re-executes without OpenBLAS overrides before NumPy loads
import numpy as np

import cnn_core

try:
    import torch
except ImportError:  # the comparison needs PyTorch; the benchmark says so and stops
    torch = None

HERE = os.path.dirname(os.path.abspath(__file__))

# (name, batch, in, out, kernel, stride, padding, H=W)
SHAPES = [
    ("lenet c1 1->6 5x5 p2 28", 64, 1, 6, 5, 1, 2, 28),
    ("lenet c2 6->16 5x5 14", 64, 6, 16, 5, 1, 0, 14),
    ("1->32 3x3 28", 64, 1, 32, 3, 1, 1, 28),
    ("32->32 3x3 28", 64, 32, 32, 3, 1, 1, 28),
    ("32->64 3x3 14", 64, 32, 64, 3, 1, 1, 14),
    ("64->64 3x3 s2 14", 64, 64, 64, 3, 2, 1, 14),
    ("64->128 3x3 7", 64, 64, 128, 3, 1, 1, 7),
    ("128->128 1x1 7", 64, 128, 128, 1, 1, 0, 7),
    ("b32 3->64 3x3 32", 32, 3, 64, 3, 1, 1, 32),
    ("b32 64->128 3x3 16", 32, 64, 128, 3, 1, 1, 16),
]


def run_table(dtype, repeat: int, rounds: int, threads: int) -> list[float]:
    print(f"\n{np.dtype(dtype).name}: median ms per forward+backward step; ours/torch: the median over "
          f"{rounds} rounds of the round's ratio")
    print(f"{'shape':<26}{'ours ms':>10}{'torch ms':>10}{'ours/torch':>12}")
    ratios = []
    for shape in SHAPES:
        with _timing.Child(_child("serve", "cnn_core", np.dtype(dtype).name, shape, threads, HERE)) as ours, \
                _timing.Child(_child("serve", "torch", np.dtype(dtype).name, shape, threads, HERE)) as theirs:
            t_ours, t_torch, ratio = _timing.paired_ratio([(ours, "step"), (theirs, "step")],
                                                          max(1, repeat // rounds), rounds, warmup=2)
        ratios.append(ratio)
        print(f"{shape[0]:<26}{1e3 * t_ours:>10.3f}{1e3 * t_torch:>10.3f}{ratios[-1]:>12.2f}", flush=True)
    gm = math.exp(sum(map(math.log, ratios)) / len(ratios))
    print(f"{'geometric mean':<26}{'':>20}{gm:>12.2f}   (max {max(ratios):.2f}; targets <= 1.0 each, <= 0.7 mean)")
    return ratios


# A child process's script: one library's layer, data and step(), then either the memory measurement or
# _timing.serve. Each child imports only its own library.
_CHILD = r"""
import sys
import numpy as np
mode, lib, dtype = sys.argv[1], sys.argv[2], sys.argv[3]
n, c, f, k, s, p, hw = map(int, sys.argv[4:11])
threads = int(sys.argv[11])

def rss_kib():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])

def peak_kib():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])

if lib == "torch":
    import torch
    torch.set_num_threads(threads)
    td = getattr(torch, dtype)
    m = torch.nn.Conv2d(c, f, k, stride=s, padding=p, dtype=td)
    x = torch.randn((n, c, hw, hw), dtype=td, requires_grad=True)
    dy = torch.randn(m(x.detach()).shape, dtype=td)
    def step():
        m(x).backward(dy)
else:
    import cnn_core
    from cnn_core import nn
    cnn_core.set_num_threads(threads)
    m = nn.Conv2d(c, f, k, stride=s, padding=p, dtype=dtype, rng=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, hw, hw)).astype(dtype)
    m.eval(); dy = np.ones(m(x).shape, dtype=dtype); m.train()
    dy = rng.standard_normal(dy.shape).astype(dtype)
    def step():
        m(x)
        m.backward(dy)
if mode == "memory":
    # Reset the peak to the current RSS so the figure is what the training steps add.
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    base = rss_kib()
    for _ in range(int(sys.argv[12])):
        step()
    print(peak_kib() - base)
else:
    sys.path.insert(0, sys.argv[12])
    import _timing
    _timing.serve({"step": step})
"""


def _child(mode: str, lib: str, dtype: str, shape, threads: int, extra: str) -> list[str]:
    """The command line of a child process running _CHILD: `extra` is the number of steps (memory) or this
    directory, where _timing is (serve)."""
    return [sys.executable, "-c", _CHILD, mode, lib, dtype, *map(str, shape[1:]), str(threads), extra]


def memory(shape, dtype: str, threads: int, steps: int = 5) -> tuple[int, int]:
    """KiB of resident memory `steps` training steps add, (ours, torch), each in a fresh process."""
    out = []
    for lib in ("cnn_core", "torch"):
        proc = subprocess.run(_child("memory", lib, dtype, shape, threads, str(steps)), check=True,
                              capture_output=True, text=True, cwd="/")
        out.append(int(proc.stdout.split()[-1]))
    return out[0], out[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=30, help="timed steps per library and shape")
    # 5 rounds of 6 steps: with 3 rounds of overall medians the 32->32 float32 row read 1.05x and 0.86x
    # minutes apart (2-vCPU model 0xCF Xeon), as the machine's slow phases fell on one side or the other.
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds, each giving one paired ratio")
    ap.add_argument("--dtype", nargs="+", default=["float32", "float64"], choices=["float32", "float64"])
    ap.add_argument("--memory", action="store_true", help="measure the training steps' added peak RSS instead")
    ap.add_argument("--shape", nargs="*", type=int, default=None, help="indices into the shape list")
    args = ap.parse_args()
    if torch is None:
        sys.exit("bench_conv: PyTorch is not importable; it is the peer this benchmark compares against")
    global SHAPES
    if args.shape:
        SHAPES = [SHAPES[i] for i in args.shape]
    cnn_core.set_num_threads(args.threads)   # the header's figure; each child sets its own library's
    print(_timing.machine())
    print(f"torch {torch.__version__}, {args.threads} threads; cnn_core {args.threads} threads; each in a process "
          "of its own")
    if args.memory:
        print(f"{'shape':<26}{'dtype':>8}{'ours MiB':>10}{'torch MiB':>10}   (peak RSS added by 5 steps)")
        for shape in SHAPES:
            for dtype in args.dtype:
                a, b = memory(shape, dtype, args.threads)
                print(f"{shape[0]:<26}{dtype:>8}{a / 1024:>10.1f}{b / 1024:>10.1f}", flush=True)
        return
    for dtype in args.dtype:
        run_table(np.dtype(dtype).type, args.repeat, args.rounds, args.threads)


if __name__ == "__main__":
    main()
