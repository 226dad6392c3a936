"""A linear soft-margin SVM (one-vs-rest, hinge loss, mini-batch subgradient descent) on the embedded MNIST
digits: trains on the first N 'train' digits and reports train/test accuracy and training time.

Run: python examples/linear_svm.py [N]   (default N = 2000; the embedded 'train' split has 8000)
"""
import sys
import time

import numpy as np

from cnn_core.datasets import load_mnist
from cnn_core.models import LinearSVM


def main(n_train: int = 2000) -> None:
    X, y = load_mnist(split="train")
    X_test, y_test = load_mnist(split="test")
    X, y = X[:n_train].reshape(-1, 784), y[:n_train]
    X_test = X_test.reshape(-1, 784)
    print(f"embedded MNIST digits: {len(X)} train, {len(X_test)} test, 784 pixels in [0, 1]")
    for C in (0.1, 1.0):
        svm = LinearSVM(C=C, random_state=0)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            svm.fit(X, y)
            times.append(time.perf_counter() - t0)
        print(f"C = {C}: {svm.n_iter_} passes, objective {svm.loss_curve_[0]:.1f} -> {svm.loss_curve_[-1]:.1f}, "
              f"train accuracy {svm.score(X, y):.4f}, test accuracy {svm.score(X_test, y_test):.4f}, "
              f"fit time median {np.median(times):.2f} s (of 3)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
