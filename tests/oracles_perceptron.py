"""The deck's perceptron algorithm as a plain Python loop, the reference for the compiled epoch."""


def perceptron_epoch_ref(X, y, w, b, eta=1.0, order=None):
    """The deck's sequential algorithm as a Python loop; returns (w_new, b_new, n_updates), w untouched.

    Arithmetic follows the kernel's documented precision so the two can be compared exactly: w, b and the
    step eta*y live in X's dtype, and the dot product is a float64 sum in the kernel's fixed order (a
    float32 product is exact in float64, so only the summation order matters): eight partial sums, lane k
    taking j = k mod 8 over the first d - d % 8 features, combined pairwise, then the tail left to right.
    """
    dt = X.dtype.type
    w = w.copy()
    b = dt(b)
    eta = dt(eta)
    n_updates = 0
    for i in (range(X.shape[0]) if order is None else order):
        s = _dot8(w, X[i])
        if y[i] * (s + float(b)) <= 0:
            step = dt(eta * dt(y[i]))
            w += step * X[i]
            b = dt(b + step)
            n_updates += 1
    return w, float(b), n_updates


def _dot8(w, x):
    d = len(x)
    m = d - d % 8
    lanes = [0.0] * 8
    for j in range(m):
        lanes[j % 8] += float(w[j]) * float(x[j])
    s = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]))
    for j in range(m, d):
        s += float(w[j]) * float(x[j])
    return s
