"""Argument parsing, dispatch, and the CLI's error policy.

Exit status: 0 success; 2 user error (one line on stderr, no traceback); 1 training diverged;
130 interrupted by Ctrl-C (after training stopped cleanly: with --save the last finished epoch is saved).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Sequence

from cnn_core.cli.errors import EXIT_INTERRUPTED, EXIT_USAGE, UsageError
from cnn_core.datasets.pixels import PIXEL_RULE

PROG = "cnn-core"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line as one line (the CLI's error format), not usage + message."""

    def error(self, message: str):
        raise UsageError(f"{message} (see {self.prog} --help)")


def _int_at_least(minimum: int, what: str):
    """An argparse type: an integer >= minimum; `what` names the expectation in the error."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"expected {what}, got {v}")
        return v
    return parse


_positive_int = _int_at_least(1, "a positive integer")
_nonnegative_int = _int_at_least(0, "an integer >= 0")


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (v > 0 and v < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text}")
    return v


def _momentum(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text}")
    return v


def build_parser() -> argparse.ArgumentParser:
    from cnn_core._version import __version__
    from cnn_core.cli.train import ALGORITHMS, CELLS, DEFAULTS, MODELS
    from cnn_core.onnx import MIN_OPSET

    p = _Parser(prog=PROG, description="Train, evaluate and use cnn_core's models on MNIST-format digits.")
    p.add_argument("--version", action="version", version=f"cnn_core {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    defaults = "; ".join(f"{m}: " + ", ".join(f"{k.replace('_', '-')} {v}" for k, v in d.items())
                         for m, d in DEFAULTS.items())
    t = sub.add_parser("train", help="train a model (on the embedded digits unless --data is given)",
                       description="Train MODEL on the train split (networks hold out its last 10% for "
                                   "validation), then report the test accuracy. Defaults: " + defaults + ".")
    t.add_argument("model", metavar="MODEL", choices=MODELS, help="one of: " + ", ".join(MODELS))
    t.add_argument("--data", metavar="DIR", help="directory of IDX files (MNIST, Fashion-MNIST); "
                                                 "default: the embedded 10,000 MNIST digits")
    t.add_argument("--epochs", type=_positive_int, help="passes over the training set (estimators: at most)")
    t.add_argument("--batch-size", type=_positive_int, help="mini-batch size (networks, svm)")
    t.add_argument("--lr", type=_positive_float, help="learning rate (perceptron: eta)")
    t.add_argument("--optimizer", choices=("sgd", "adam"), help="networks only")
    t.add_argument("--momentum", type=_momentum, help="SGD momentum (default 0.9)")
    t.add_argument("--seed", type=_nonnegative_int, default=0, help="seed of all randomness (default 0)")
    t.add_argument("--dtype", choices=("float32", "float64"),
                   help="networks: default float32 (perceptron and svm compute in float64)")
    t.add_argument("--threads", type=_positive_int, help="OpenMP threads for the kernels")
    t.add_argument("--save", metavar="PATH", help="write the trained model to PATH (for evaluate/predict)")
    t.add_argument("--plot", metavar="DIR", help="write pictures as PNG into DIR (created if missing): the "
                                                 "learning curves, the test set's confusion matrix and, for "
                                                 "conv nets, the first layer's filters; a PATH ending in .png "
                                                 "gets the curves alone (needs matplotlib)")
    t.add_argument("--json", action="store_true", help="print the final metrics as one JSON object on stdout")
    t.add_argument("--quiet", action="store_true", help="no summary or progress, only errors (and --json)")
    t.add_argument("--classes", metavar="A,B", help="perceptron/svm: train on two classes only "
                                                   "(default: one-vs-rest over all)")
    t.add_argument("--algorithm", help="perceptron: " + "|".join(ALGORITHMS["perceptron"]) +
                                       "; svm: " + "|".join(ALGORITHMS["svm"]) + " (full-batch)")
    t.add_argument("--limit", type=_positive_int, metavar="N",
                   help="use only the first N samples of each split (quick trials)")
    t.add_argument("--distributed", action="store_true",
                   help="networks: data-parallel training on MPI, one process per rank under `mpiexec -n P` "
                        "(needs the [mpi] extra); --batch-size stays the global batch; rank 0 prints and saves")
    t.add_argument("--cell", choices=CELLS, help="rnn only: the recurrent layer, " + "|".join(CELLS) +
                                                 " (default rnn, the Elman RNN)")

    e = sub.add_parser("evaluate", help="loss, accuracy and confusion matrix of a saved model on the test split")
    e.add_argument("model_file", metavar="MODEL_FILE")
    e.add_argument("--data", metavar="DIR", help="directory of IDX files; default: the embedded digits")
    e.add_argument("--limit", type=_positive_int, metavar="N", help="use only the first N test samples")
    e.add_argument("--json", action="store_true", help="print the metrics as one JSON object")

    r = sub.add_parser("predict", help="predicted class and probability for each image of a file")
    r.add_argument("model_file", metavar="MODEL_FILE")
    r.add_argument("input", metavar="INPUT", help="IDX image file (raw or .gz) or a .npy array of images "
                                                  "((N, H, W), (N, 1, H, W) or one (H, W)); " + PIXEL_RULE +
                                                  ", anything else is refused")
    r.add_argument("--json", action="store_true", help="print the predictions as one JSON object")

    b = sub.add_parser("bench", help="batch-1 latency and throughput of a saved network (as predict runs it)")
    b.add_argument("model_file", metavar="MODEL_FILE")
    b.add_argument("--input-shape", metavar="SHAPE", help="per-sample input shape, e.g. 1,28,28 or 784 "
                                                         "(default: what the first layer reads, 28x28 images)")
    b.add_argument("--batch", type=_positive_int, default=1000, metavar="N",
                   help="samples per call for the throughput (default 1000)")
    b.add_argument("--json", action="store_true", help="print the figures as one JSON object")

    x = sub.add_parser("export", help="write a saved network as an ONNX file (needs the onnx extra)",
                       description="Write the network in MODEL_FILE as an ONNX model (eval mode: dropout off, "
                                   "batch norm with its running statistics) with a dynamic batch dimension.")
    x.add_argument("model_file", metavar="MODEL_FILE")
    x.add_argument("output", metavar="OUT", help="the .onnx file to write")
    x.add_argument("--input-shape", metavar="DIMS", help="the shape of one sample, batch excluded, e.g. 1,28,28 "
                                                         "(default: one 28x28 digit in the model's layout)")
    x.add_argument("--opset", type=_int_at_least(MIN_OPSET, f"an integer >= {MIN_OPSET}"), default=MIN_OPSET,
                   help=f"ONNX opset version (default {MIN_OPSET})")
    x.add_argument("--quiet", action="store_true", help="print nothing but errors")

    i = sub.add_parser("info", help="version, OpenMP, threads, where the embedded data lives")
    i.add_argument("--json", action="store_true")
    return p


def run_info(args) -> int:
    import numpy as np

    import cnn_core
    from cnn_core.datasets import EMBEDDED_DIR
    from cnn_core.plotting import INSTALL_HINT, require_matplotlib

    try:
        plot = f"matplotlib {require_matplotlib().__version__}"
    except ImportError:
        plot = None
    info = {"version": cnn_core.__version__, "openmp": cnn_core.openmp_enabled(),
            "threads": cnn_core.get_num_threads(), "embedded_data": str(EMBEDDED_DIR),
            "python": sys.version.split()[0], "numpy": np.__version__, "plot": plot}
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"cnn_core {info['version']}")
    print(f"  OpenMP:        {'enabled' if info['openmp'] else 'disabled (serial build)'}")
    print(f"  threads:       {info['threads']}")
    print(f"  embedded data: {info['embedded_data']}")
    print(f"  python {info['python']}, numpy {info['numpy']}")
    print("  --plot:        " + (plot or f"unavailable; install with: {INSTALL_HINT}"))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script exits with it)."""
    try:
        args = build_parser().parse_args(argv)
        if args.command == "train":
            from cnn_core.cli.train import run_train
            return run_train(args)
        if args.command == "evaluate":
            from cnn_core.cli.use import run_evaluate
            return run_evaluate(args)
        if args.command == "predict":
            from cnn_core.cli.use import run_predict
            return run_predict(args)
        if args.command == "bench":
            from cnn_core.cli.bench import run_bench
            return run_bench(args)
        if args.command == "export":
            from cnn_core.cli.export import run_export
            return run_export(args)
        return run_info(args)
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `cnn-core predict ... | head`: the reader left, which is not an error
        # Point stdout at /dev/null so the interpreter's final flush does not raise again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
