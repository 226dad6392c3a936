"""Nielsen's network from "Neural Networks and Deep Learning", chapter 1, on the embedded MNIST digits.

[784, 30, 10] sigmoid neurons (output layer too), weights N(0, 1/n_in) and biases N(0, 1), the quadratic cost
C = 1/(2n) sum_x ||y(x) - a||^2 on one-hot targets, mini-batch SGD with eta = 3.0, batch 10, 30 epochs.
Trains on the 8,000 embedded 'train' digits and prints the model summary and the test accuracy after every
epoch (val_acc of the library's ProgressBar), as Nielsen's network.SGD prints its test score per epoch.

Run: python examples/mnist_nielsen.py [epochs]
"""
import sys
import time

import numpy as np

import cnn_core
from cnn_core import nn, optim
from cnn_core.callbacks import ProgressBar
from cnn_core.datasets import load_mnist
from cnn_core.models import mlp
from cnn_core.training import fit


def main(epochs: int = 30) -> None:
    X, y = load_mnist(split="train")
    Xt, yt = load_mnist(split="test")
    X, Xt = X.reshape(-1, 784), Xt.reshape(-1, 784)
    onehot = np.eye(10, dtype=np.float32)
    print(f"embedded MNIST: {len(X)} training digits, {len(Xt)} test digits")
    cnn_core.manual_seed(0)
    net = mlp([784, 30, 10], "sigmoid", output_activation="sigmoid", init="normal", rng=0)
    print(cnn_core.summary(net, (784,)))
    t0 = time.perf_counter()
    hist = fit(net, nn.QuadraticLoss(), optim.SGD(net.parameters(), lr=3.0), X, onehot[y], epochs=epochs,
               batch_size=10, validation_data=(Xt, onehot[yt]), seed=0, callbacks=[ProgressBar(sys.stdout)])
    print(f"final test accuracy {100 * hist.val_acc[-1]:.2f}% (best {100 * max(hist.val_acc):.2f}%), "
          f"{epochs} epochs in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
