"""LeNet-5 on the embedded MNIST digits, then on Fashion-MNIST when its files are present.

The modern form (ReLU, max pooling) is trained with Adam and a cosine learning-rate schedule; the classic
form (tanh, average pooling) runs a few epochs on the digits for comparison. Prints the model summary,
per-epoch figures (the library's ProgressBar), the test accuracy, the training time and the most frequent
confusions (from the confusion matrix).

Run: python examples/lenet5_digits.py [--epochs 20] [--fashion-epochs 15] [--fashion DIR]
"""
import argparse
import os
import sys

import numpy as np

import cnn_core
from cnn_core import nn, optim
from cnn_core.callbacks import LRSchedulerStep, ProgressBar
from cnn_core.datasets import load_mnist
from cnn_core.metrics import confusion_matrix
from cnn_core.models import lenet5
from cnn_core.training import fit, predict


def top_confusions(y_true, y_pred, k: int = 3) -> str:
    """The k most frequent (true -> predicted) mistakes: the largest off-diagonal cells of the confusion matrix."""
    m = confusion_matrix(y_true, y_pred, labels=np.arange(10))
    np.fill_diagonal(m, 0)
    cells = np.argsort(m, axis=None)[::-1][:k]
    return ", ".join(f"{t} as {p} ({m[t, p]})" for t, p in zip(*np.unravel_index(cells, m.shape)) if m[t, p])


def train(name: str, activation: str, pool: str, X, y, Xt, yt, epochs: int, batch_size: int) -> None:
    cnn_core.manual_seed(0)
    model = lenet5(activation, pool, rng=0)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    print(f"{name}: LeNet-5 ({activation}, {pool} pool), {len(X)} train / {len(Xt)} test, {epochs} epochs, "
          f"Adam lr 1e-3 with cosine decay, batch {batch_size} (val = the test split)")
    print(cnn_core.summary(model, X.shape[1:]))
    h = fit(model, nn.CrossEntropyLoss(), opt, X, y, epochs=epochs, batch_size=batch_size,
            validation_data=(Xt, yt), seed=0,
            callbacks=[ProgressBar(sys.stdout), LRSchedulerStep(optim.CosineAnnealingLR(opt, T_max=epochs))])
    # The validation split is the test split: the last epoch's val figures are the final test figures.
    print(f"  -> test accuracy {100 * h.val_acc[-1]:.2f}% (loss {h.val_loss[-1]:.4f}) in {sum(h.seconds):.1f} s; "
          f"most frequent confusions: {top_confusions(yt, predict(model, Xt).argmax(axis=1))}\n")


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
