"""The linear models against scikit-learn, timed in the same run: LinearSVM (solver='dual') beside SVC and
LinearSVC, Perceptron's three rules beside sklearn.linear_model.Perceptron, with the SVM objectives
J(w, b) = 1/2 ||w||^2 + C sum hinge (b not regularized) and the accuracies they reach.

- digits 3-vs-5 (sklearn.datasets.load_digits, 357 x 64): the SVM objective at C in {0.01, 1, 100} against
  SVC(kernel='linear') at its default tolerance and at tol=1e-10 (the reference optimum); fit times beside SVC.
  The perceptron rules for at most --epochs passes beside scikit-learn's for exactly that many (max_iter,
  tol=None); accuracies on the training set.
- the embedded MNIST digits (8,000 x 784, ten classes one-vs-rest): LinearSVM's fit (C=1, defaults) beside
  LinearSVC's (defaults: squared hinge, regularized intercept - a different, easier problem; LinearSVC with
  loss='hinge' does not converge in its 1,000 iterations here).
- Fashion-MNIST (60,000 x 784, ten classes one-vs-rest, 5 epochs): primal and pocket beside scikit-learn.

Times are medians of interleaved rounds (benchmarks/_timing.py), one fit per block.

Run: python benchmarks/bench_linear.py [--rounds 3] [--epochs 20] [--data DIR] [--skip-fashion] [--skip-mnist]
"""
from __future__ import annotations

import argparse
import os
import warnings

import _timing  # first: re-executes without OpenBLAS overrides before NumPy loads

FASHION = "/usr/share/datasets/fashion-mnist"


def objective(w, b, X, t, C) -> float:
    import numpy as np
    return float(0.5 * w @ w + C * np.maximum(0.0, 1.0 - t * (X @ w + b)).sum())


def digits_3_vs_5():
    import numpy as np
    from sklearn.datasets import load_digits
    d = load_digits()
    keep = (d.target == 3) | (d.target == 5)
    return d.data[keep], np.where(d.target[keep] == 5, 1.0, -1.0)


def svm_digits(rounds: int) -> None:
    from sklearn.svm import SVC

    from cnn_core.models import LinearSVM
    X, t = digits_3_vs_5()
    print(f"LinearSVM on digits 3-vs-5 ({X.shape[0]} x {X.shape[1]}): objective J and fit time")
    print(f"{'C':>6} {'J optimum (SVC tol=1e-10)':>26} {'cnn_core J':>12} {'gap':>9} {'SVC default J':>14} "
          f"{'gap':>9} {'cnn_core ms':>12} {'SVC ms':>8} {'ratio':>6}")
    for C in (0.01, 1.0, 100.0):
        ref = SVC(kernel="linear", C=C, tol=1e-10).fit(X, t)
        J_opt = objective(ref.coef_[0], ref.intercept_[0], X, t, C)
        ours = LinearSVM(C=C, random_state=0).fit(X, t)
        svc = SVC(kernel="linear", C=C).fit(X, t)
        J, J_svc = (objective(m.coef_[0], m.intercept_[0], X, t, C) for m in (ours, svc))
        t_ours, t_svc = _timing.interleaved([lambda: LinearSVM(C=C, random_state=0).fit(X, t),
                                             lambda: SVC(kernel="linear", C=C).fit(X, t)], repeats=5, rounds=rounds)
        print(f"{C:>6g} {J_opt:>26.8g} {J:>12.8g} {(J - J_opt) / J_opt:>+9.1e} {J_svc:>14.8g} "
              f"{(J_svc - J_opt) / J_opt:>+9.1e} {1e3 * t_ours:>12.2f} {1e3 * t_svc:>8.2f} {t_ours / t_svc:>6.2f}")


def svm_mnist(rounds: int) -> None:
    import numpy as np
    from sklearn.svm import LinearSVC

    from cnn_core.datasets import load_mnist
    from cnn_core.models import LinearSVM
    X, y = load_mnist()
    X = X.reshape(len(X), -1).astype(np.float64)
    X_test, y_test = load_mnist(split="test")
    X_test = X_test.reshape(len(X_test), -1).astype(np.float64)
    print(f"\nLinearSVM (C=1, defaults) vs LinearSVC (defaults) on the embedded digits ({X.shape[0]} x {X.shape[1]}, "
          f"10 classes one-vs-rest)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours, peer = LinearSVM(random_state=0).fit(X, y), LinearSVC().fit(X, y)
        t_ours, t_peer = _timing.interleaved([lambda: LinearSVM(random_state=0).fit(X, y),
                                              lambda: LinearSVC().fit(X, y)], repeats=1, rounds=rounds)
    J = [objective(ours.coef_[k], ours.intercept_[k], X, np.where(y == k, 1.0, -1.0), 1.0) for k in range(10)]
    print(f"  cnn_core {t_ours:.2f} s, LinearSVC {t_peer:.2f} s, ratio {t_ours / t_peer:.2f}; "
          f"hinge objective summed over the 10 problems {sum(J):.6g}, largest relative duality gap "
          f"{max(g / j for g, j in zip(ours.duality_gap_, J)):.1e}")
    print(f"  test accuracy: cnn_core {ours.score(X_test, y_test):.4f}, LinearSVC {peer.score(X_test, y_test):.4f}")


def perceptron_digits(rounds: int, epochs: int) -> None:
    from sklearn.linear_model import Perceptron as SkPerceptron

    from cnn_core.models import Perceptron
    X, t = digits_3_vs_5()
    print(f"\nPerceptron on digits 3-vs-5, at most {epochs} epochs (scikit-learn: exactly {epochs}); "
          f"training accuracy")
    peer = lambda: SkPerceptron(max_iter=epochs, tol=None, random_state=0).fit(X, t)  # noqa: E731
    rules = [("primal", {}), ("pocket", {}), ("greedy", {}), ("greedy", {"greedy_loss": "functional"})]
    fns = [(lambda a=a, kw=kw: Perceptron(algorithm=a, max_epochs=epochs, random_state=0, **kw).fit(X, t))
           for a, kw in rules]
    times = _timing.interleaved(fns + [peer], repeats=7, rounds=rounds)
    sk = peer()
    for (a, kw), fn, sec in zip(rules, fns, times):
        m = fn()
        seeds = [Perceptron(algorithm=a, max_epochs=epochs, random_state=s, **kw).fit(X, t).score(X, t)
                 for s in range(10)]
        name = a + (f" ({kw['greedy_loss']})" if kw else (" (geometric)" if a == "greedy" else ""))
        print(f"  {name:<22} {1e3 * sec:8.2f} ms, ratio to scikit-learn {sec / times[-1]:5.2f}; accuracy "
              f"{m.score(X, t):.4f} (seed 0, {m.n_iter_} epochs), mean over seeds 0-9 {sum(seeds) / 10:.4f}")
    print(f"  {'scikit-learn':<22} {1e3 * times[-1]:8.2f} ms; accuracy {sk.score(X, t):.4f}")


def perceptron_fashion(rounds: int, data_dir: str) -> None:
    import numpy as np
    from sklearn.linear_model import Perceptron as SkPerceptron

    from cnn_core.datasets import load_mnist
    from cnn_core.models import Perceptron
    X, y = load_mnist(data_dir)
    X = X.reshape(len(X), -1).astype(np.float64)
    print(f"\nPerceptron on Fashion-MNIST ({X.shape[0]} x {X.shape[1]}, 10 classes one-vs-rest), 5 epochs")
    fns = [lambda: Perceptron(algorithm="primal", max_epochs=5, random_state=0).fit(X, y),
           lambda: Perceptron(algorithm="pocket", max_epochs=5, random_state=0).fit(X, y),
           lambda: SkPerceptron(max_iter=5, tol=None, random_state=0).fit(X, y)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        times = _timing.interleaved(fns, repeats=1, rounds=rounds, warmup=0)
        models = [fn() for fn in fns]
    for name, sec, m in zip(("primal", "pocket", "scikit-learn"), times, models):
        print(f"  {name:<13} {sec:6.2f} s, ratio to scikit-learn {sec / times[-1]:5.2f}; training accuracy "
              f"{m.score(X, y):.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--epochs", type=int, default=20, help="perceptron epochs on digits 3-vs-5 (default 20)")
    ap.add_argument("--data", default=FASHION, help="Fashion-MNIST directory (IDX files)")
    ap.add_argument("--skip-fashion", action="store_true", help="skip the Fashion-MNIST perceptron timings")
    ap.add_argument("--skip-mnist", action="store_true", help="skip the SVM timing on the embedded digits")
    args = ap.parse_args()
    print(_timing.machine())
    svm_digits(args.rounds)
    perceptron_digits(args.rounds, args.epochs)
    if not args.skip_mnist:
        svm_mnist(args.rounds)
    if not args.skip_fashion:
        if os.path.isdir(args.data):
            perceptron_fashion(args.rounds, args.data)
        else:
            print(f"\n(no Fashion-MNIST at {args.data}: skipped)")


if __name__ == "__main__":
    main()
