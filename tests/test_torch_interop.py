"""Weights move between cnn_core and PyTorch through state_dict / load_state_dict with PyTorch's keys, both ways:
a network trained (briefly, on real digits) in one library is evaluated in the other, with equal outputs.

The PyTorch twins are written layer for layer as cnn_core builds its models, so the two state_dicts have the
same keys, in the same order, with the same shapes (asserted: a difference is a naming bug in cnn_core).
torch is not a dependency of any extra: the module is skipped without it.

Tolerances: the two libraries sum in different orders, so equal weights give outputs equal up to rounding:
float32 rtol = atol = 1e-5 on logits of magnitude ~10 (a few float32 ulps of each sum of ~400 products);
float64 1e-10. The predicted classes are compared exactly.
"""
from __future__ import annotations

import numpy as np
import pytest

import cnn_core
from cnn_core import nn, optim
from cnn_core.datasets import load_mnist
from cnn_core.models import RNNClassifier, lenet5, small_cnn, small_resnet

torch = pytest.importorskip("torch")
tnn = torch.nn

TOL = {np.float32: 1e-5, np.float64: 1e-10}
TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}
N_TRAIN, N_TEST = 512, 256


@pytest.fixture(scope="module")
def digits():
    X, y = load_mnist(split="train")
    Xt, yt = load_mnist(split="test")
    return X[:N_TRAIN], y[:N_TRAIN], Xt[:N_TEST], yt[:N_TEST]


# ---- the PyTorch twins --------------------------------------------------------------------------------------

def torch_lenet5():
    return tnn.Sequential(
        tnn.Conv2d(1, 6, 5, padding=2), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(6, 16, 5), tnn.ReLU(), tnn.MaxPool2d(2), tnn.Flatten(),
        tnn.Linear(400, 120), tnn.ReLU(), tnn.Linear(120, 84), tnn.ReLU(), tnn.Linear(84, 10))


class TorchRNNClassifier(tnn.Module):
    """cnn_core.models.RNNClassifier in PyTorch: logits = fc(h_n[-1]), rows of the image as time steps."""

    def __init__(self, cell: str, input_size=28, hidden_size=32, num_classes=10, num_layers=1):
        super().__init__()
        self.rnn = {"rnn": tnn.RNN, "lstm": tnn.LSTM, "gru": tnn.GRU}[cell](input_size, hidden_size, num_layers,
                                                                           batch_first=True)
        self.fc = tnn.Linear(hidden_size, num_classes)

    def forward(self, x):
        _, state = self.rnn(x.reshape(x.shape[0], x.shape[-2], x.shape[-1]))
        h_n = state[0] if isinstance(state, tuple) else state
        return self.fc(h_n[-1])


def torch_small_cnn():
    def cbr(cin, cout):
        return [tnn.Conv2d(cin, cout, 3, 1, 1, bias=False), tnn.BatchNorm2d(cout), tnn.ReLU()]
    return tnn.Sequential(*cbr(1, 8), tnn.MaxPool2d(2), *cbr(8, 16), tnn.MaxPool2d(2), *cbr(16, 16),
                          tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Dropout(0.2), tnn.Linear(16, 10))


class TorchResidual(tnn.Module):
    """nn.Residual in PyTorch: block(x) + shortcut(x), parameters named block.* and shortcut.*."""

    def __init__(self, block, shortcut):
        super().__init__()
        self.block, self.shortcut = block, shortcut

    def forward(self, x):
        return self.block(x) + self.shortcut(x)


def torch_small_resnet():
    """small_resnet's layout: each basic block is Sequential(Residual(block, shortcut), ReLU), so its keys read
    ``3.0.block.0.weight`` (benchmarks/accuracy.py's twin folds the ReLU into its block module, whose keys,
    ``3.block.0.weight``, differ: fine for timing, not for moving weights)."""
    def cbr(cin, cout, stride=1):
        return [tnn.Conv2d(cin, cout, 3, stride, 1, bias=False), tnn.BatchNorm2d(cout), tnn.ReLU()]

    def basic(cin, cout):
        block = tnn.Sequential(*cbr(cin, cout, 2), tnn.Conv2d(cout, cout, 3, 1, 1, bias=False), tnn.BatchNorm2d(cout))
        shortcut = tnn.Sequential(tnn.Conv2d(cin, cout, 1, 2, bias=False), tnn.BatchNorm2d(cout))
        return tnn.Sequential(TorchResidual(block, shortcut), tnn.ReLU())
    return tnn.Sequential(*cbr(1, 8), basic(8, 16), basic(16, 16), tnn.AdaptiveAvgPool2d(1), tnn.Flatten(),
                          tnn.Dropout(0.2), tnn.Linear(16, 10))


# (id, cnn_core builder (dtype), PyTorch builder)
TWINS = [
    ("lenet5", lambda dt: lenet5(dtype=dt, rng=0), torch_lenet5),
    ("rnn-classifier", lambda dt: RNNClassifier(28, 32, 10, dtype=dt, rng=0), lambda: TorchRNNClassifier("rnn")),
    ("lstm-classifier-2-layers", lambda dt: RNNClassifier(28, 32, 10, cell="lstm", num_layers=2, dtype=dt, rng=0),
     lambda: TorchRNNClassifier("lstm", num_layers=2)),
    ("gru-classifier", lambda dt: RNNClassifier(28, 32, 10, cell="gru", dtype=dt, rng=0),
     lambda: TorchRNNClassifier("gru")),
    ("small-cnn", lambda dt: small_cnn(dtype=dt, rng=0, channels=(8, 16, 16), depth=(1, 1, 1)), torch_small_cnn),
    ("small-resnet", lambda dt: small_resnet(dtype=dt, rng=0, channels=(8, 16, 16)), torch_small_resnet),
]
IDS = [i for i, _, _ in TWINS]


def torch_outputs(model, X: np.ndarray) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(torch.from_numpy(X)).numpy()


def train_cnn_core(model, X, y, steps_seed=0):
    cnn_core.manual_seed(steps_seed)
    cnn_core.fit(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=2e-3), X.astype(model.dtype), y,
                 epochs=1, batch_size=64, seed=steps_seed)


def train_torch(model, X, y, dtype):
    torch.manual_seed(0)
    model.to(TORCH_DTYPE[dtype]).train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    loss = tnn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(X))
    for i in range(0, len(X), 64):
        idx = order[i:i + 64]
        opt.zero_grad()
        loss(model(torch.from_numpy(X[idx].astype(dtype))), torch.from_numpy(y[idx])).backward()
        opt.step()


def assert_same_outputs(ours: np.ndarray, theirs: np.ndarray, dtype) -> None:
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype == dtype
    np.testing.assert_allclose(ours, theirs, rtol=TOL[dtype], atol=TOL[dtype])
    np.testing.assert_array_equal(ours.argmax(1), theirs.argmax(1))


@pytest.mark.parametrize("make_ours, make_theirs", [(a, b) for _, a, b in TWINS], ids=IDS)
def test_the_twins_have_pytorchs_keys_and_shapes(make_ours, make_theirs):
    ours, theirs = make_ours(np.float32).state_dict(), make_theirs().state_dict()
    assert list(ours) == list(theirs)
    assert all(ours[k].shape == tuple(theirs[k].shape) for k in ours)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make_ours, make_theirs", [(a, b) for _, a, b in TWINS], ids=IDS)
def test_trained_in_cnn_core_evaluated_in_pytorch(make_ours, make_theirs, dtype, digits):
    X, y, Xt, _ = digits
    ours = make_ours(dtype)
    train_cnn_core(ours, X, y)
    theirs = make_theirs().to(TORCH_DTYPE[dtype])
    result = theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    assert not result.missing_keys and not result.unexpected_keys
    assert_same_outputs(cnn_core.predict(ours, Xt.astype(dtype)), torch_outputs(theirs, Xt.astype(dtype)), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make_ours, make_theirs", [(a, b) for _, a, b in TWINS], ids=IDS)
def test_trained_in_pytorch_evaluated_in_cnn_core(make_ours, make_theirs, dtype, digits):
    X, y, Xt, _ = digits
    theirs = make_theirs()
    train_torch(theirs, X, y, dtype)
    ours = make_ours(dtype)
    # torch tensors as they are: load_state_dict reads any array-like (np.asarray uses Tensor.__array__)
    result = ours.load_state_dict(theirs.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert_same_outputs(cnn_core.predict(ours, Xt.astype(dtype)), torch_outputs(theirs, Xt.astype(dtype)), dtype)


def test_training_moved_the_weights_and_both_libraries_learn_the_same_classes(digits):
    """The round trips above are not trivially equal: training changed the weights away from the shared
    initialisation, and the evaluated networks classify the digits well above chance in both libraries."""
    X, y, Xt, yt = digits
    ours = lenet5(rng=0)
    init = ours.state_dict()
    train_cnn_core(ours, X, y)
    moved = max(float(np.abs(ours.state_dict()[k] - init[k]).max()) for k in init)
    assert moved > 1e-3
    theirs = torch_lenet5()
    theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    acc_ours = float((cnn_core.predict(ours, Xt).argmax(1) == yt).mean())
    acc_theirs = float((torch_outputs(theirs, Xt).argmax(1) == yt).mean())
    assert acc_ours == acc_theirs > 0.5
