"""Softmax, LogSoftmax, Identity, LeakyReLU, GELU and SiLU: forward against NumPy oracles in float32 and
float64, backward by finite differences in float64, either float dtype accepted, and the dim argument."""
import numpy as np
import pytest
from oracles_layers import gelu, leaky_relu, silu, softmax

from cnn_core import nn
from cnn_core.gradcheck import gradcheck

X = np.random.default_rng(0).standard_normal((3, 4, 5)) * 3
TOL = {np.float32: 1e-5, np.float64: 1e-13}

CASES = [
    (lambda: nn.LeakyReLU(), lambda x: leaky_relu(x, 0.01)),
    (lambda: nn.LeakyReLU(0.2), lambda x: leaky_relu(x, 0.2)),
    (lambda: nn.GELU(), gelu),
    (lambda: nn.GELU("tanh"), lambda x: gelu(x, "tanh")),
    (lambda: nn.SiLU(), silu),
    (lambda: nn.Softmax(dim=1), lambda x: softmax(x, 1)),
    (lambda: nn.Softmax(dim=-1), lambda x: softmax(x, -1)),
    (lambda: nn.LogSoftmax(dim=0), lambda x: np.log(softmax(x, 0))),
    (lambda: nn.Identity(), lambda x: x),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make,ref", CASES)
def test_forward_matches_the_oracle_in_either_dtype(make, ref, dtype):
    layer = make()  # built with the default dtype: a parameter-free layer takes either
    x = X.astype(dtype)
    y = layer(x)
    assert y.dtype == dtype and y.shape == x.shape
    np.testing.assert_allclose(y, ref(x), rtol=TOL[dtype], atol=TOL[dtype])
    assert layer.backward(np.ones_like(y)).dtype == dtype


@pytest.mark.parametrize("make,ref", CASES)
def test_backward_passes_finite_differences(make, ref):
    x = X.copy()
    x[np.abs(x) < 1e-3] = 0.5  # keep LeakyReLU's kink away from the finite-difference step
    assert gradcheck(make(), (x,))


def test_softmax_default_dim_is_pytorchs_legacy_choice():
    x2, x3 = X[0], X
    np.testing.assert_allclose(nn.Softmax()(x2), softmax(x2, 1), rtol=1e-13)
    np.testing.assert_allclose(nn.Softmax()(x3), softmax(x3, 0), rtol=1e-13)
    with pytest.raises(ValueError, match="dim"):
        nn.Softmax(dim=3)(X)
    with pytest.raises(TypeError, match="dim"):
        nn.Softmax(dim=1.0)


def test_gelu_matches_torch_and_bad_approximate_is_refused():
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("fast")
    torch = pytest.importorskip("torch")
    for approximate in ("none", "tanh"):
        xt = torch.tensor(X, requires_grad=True)
        yt = torch.nn.functional.gelu(xt, approximate=approximate)
        yt.sum().backward()
        layer = nn.GELU(approximate)
        np.testing.assert_allclose(layer(X), yt.detach().numpy(), rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(layer.backward(np.ones_like(X)), xt.grad.numpy(), rtol=1e-13, atol=1e-15)


def test_inplace_layers_write_into_their_input_and_keep_a_correct_backward():
    x = np.array([[-2.0, 3.0, -0.5]])
    act = nn.LeakyReLU(0.1, inplace=True)
    y = act(x)
    assert y is x and np.allclose(x, [[-0.2, 3.0, -0.05]])
    np.testing.assert_allclose(act.backward(np.ones((1, 3))), [[0.1, 1.0, 0.1]])
    drop = nn.Dropout(0.5, inplace=True, rng=0)
    x = np.ones((4, 8))
    y = drop(x)
    assert y is x and set(np.unique(x)) <= {0.0, 2.0}
    np.testing.assert_array_equal(drop.backward(np.ones((4, 8))), x)
