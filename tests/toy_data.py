"""Small models and data shared by the training tests: a 2-8-k tanh MLP and two Gaussian clusters."""
import numpy as np

from cnn_core.nn import Linear, Sequential, Tanh


def mlp(dtype=np.float32, seed=0, inputs=2, out=2):
    rng = np.random.default_rng(seed)
    return Sequential(Linear(inputs, 8, rng=rng, dtype=dtype), Tanh(dtype=dtype),
                      Linear(8, out, rng=rng, dtype=dtype))


def blobs(n=120, seed=0, dtype=np.float32):
    """Two Gaussian clusters at (-1.5, -1.5) and (1.5, 1.5): linearly separable up to a little overlap."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, 2)) + np.where(y[:, None] == 1, 1.5, -1.5)
    return X.astype(dtype), y


def states_equal(a, b):
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
