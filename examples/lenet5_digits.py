"""LeNet-5 on the embedded MNIST digits, then on Fashion-MNIST when its files are present.

The modern form (ReLU, max pooling) is trained with Adam and a cosine learning-rate schedule; the classic
form (tanh, average pooling) runs a few epochs on the digits for comparison. Prints per-epoch figures, the
test accuracy and the training time.

Run: python examples/lenet5_digits.py [--epochs 20] [--fashion-epochs 15] [--fashion DIR]
"""
import argparse
import os
import time

import cnn_core
from cnn_core import nn, optim
from cnn_core.callbacks import Callback, LRSchedulerStep
from cnn_core.datasets import load_mnist
from cnn_core.models import lenet5
from cnn_core.training import evaluate, fit


class Report(Callback):
    """Print each epoch."""

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        print(f"  epoch {epoch + 1:2d}: train loss {logs['train_loss']:.4f}, train acc {logs['train_acc']:.4f}, "
              f"test acc {logs['val_acc']:.4f}, {logs['samples_per_sec']:.0f} samples/s", flush=True)


def train(name: str, activation: str, pool: str, X, y, Xt, yt, epochs: int, batch_size: int) -> None:
    cnn_core.manual_seed(0)
    model = lenet5(activation, pool, rng=0)
    loss = nn.CrossEntropyLoss()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    print(f"{name}: LeNet-5 ({activation}, {pool} pool), {len(X)} train / {len(Xt)} test, {epochs} epochs, "
          f"Adam lr 1e-3 with cosine decay, batch {batch_size}")
    t0 = time.perf_counter()
    fit(model, loss, opt, X, y, epochs=epochs, batch_size=batch_size, validation_data=(Xt, yt), seed=0,
        callbacks=[Report(), LRSchedulerStep(optim.CosineAnnealingLR(opt, T_max=epochs))])
    result = evaluate(model, loss, Xt, yt)
    print(f"  -> test accuracy {100 * result.accuracy:.2f}% (loss {result.loss:.4f}) "
          f"in {time.perf_counter() - t0:.1f} s\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--classic-epochs", type=int, default=5)
    ap.add_argument("--fashion-epochs", type=int, default=15)
    ap.add_argument("--fashion", default="/usr/share/datasets/fashion-mnist")
    args = ap.parse_args()
    X, y = load_mnist(split="train")
    Xt, yt = load_mnist(split="test")
    train("embedded digits", "relu", "max", X, y, Xt, yt, args.epochs, 32)
    train("embedded digits", "tanh", "avg", X, y, Xt, yt, args.classic_epochs, 32)
    if os.path.isdir(args.fashion):
        Xf, yf = load_mnist(args.fashion, "train")
        Xft, yft = load_mnist(args.fashion, "test")
        train("Fashion-MNIST", "relu", "max", Xf, yf, Xft, yft, args.fashion_epochs, 64)
    else:
        print(f"Fashion-MNIST not found at {args.fashion}: skipped (apt-get install dataset-fashion-mnist)")


if __name__ == "__main__":
    main()
