"""A ReLU fused into the Linear or Conv2d before it (nn.Sequential): the same output, cached ReLU output,
input gradient and parameter gradients, bit for bit, as the two modules run apart (a forward hook keeps them
apart), on each Conv2d path (direct, Winograd, im2col) and SIMD level, float32 and float64; finite differences
through the fused pairs in float64; the direct kernels' fused epilogue and masked reads against the unfused
kernels plus NumPy's ReLU; when fusion must not happen (hooks, ReLU subclasses, a ReLU first)."""
from __future__ import annotations

import numpy as np
import pytest

from cnn_core import nn
from cnn_core.gradcheck import gradcheck
from cnn_core.kernels import _conv, _conv_direct

DTYPES = [np.float32, np.float64]


def rand(*shape, dtype=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def _conv_case(path, dtype):
    """(layer, input) for one Conv2d path; random inputs and default weights leave about half the outputs
    below zero (the test checks that the mask matters)."""
    if path == "direct":
        conv, x = nn.Conv2d(2, 6, 5, padding=2, dtype=dtype, rng=0), rand(5, 2, 9, 9, dtype=dtype)
        assert conv._direct((2, 2))
    elif path == "winograd":
        conv, x = nn.Conv2d(24, 16, 3, padding=1, dtype=dtype, rng=0), rand(3, 24, 6, 6, dtype=dtype)
        assert conv._winograd((1, 1))
    else:
        conv, x = nn.Conv2d(3, 8, 3, stride=2, padding=1, dtype=dtype, rng=0), rand(4, 3, 9, 9, dtype=dtype)
        assert not conv._direct((1, 1)) and not conv._winograd((1, 1))
    return conv, x


def _run(model, x, dy, apart):
    """Forward and backward of `model` (a Sequential), with the ReLUs run apart when `apart`; returns the
    output, each ReLU's cached output, the input gradient and the parameter gradients."""
    handles = [m.register_forward_hook(lambda *args: None) for m in model if apart and type(m) is nn.ReLU]
    model.zero_grad()
    out = model(x)
    assert model._fused == (frozenset() if apart else frozenset(i for i, m in enumerate(model)
                                                                  if type(m) is nn.ReLU and i > 0))
    dx = model.backward(dy)
    for h in handles:
        h.remove()
    return out, [m._a for m in model if type(m) is nn.ReLU], dx, [p.grad.copy() for p in model.parameters()]


def _same(fused, apart):
    (out, acts, dx, grads), (out2, acts2, dx2, grads2) = fused, apart
    for f, a in zip([out, dx, *acts, *grads], [out2, dx2, *acts2, *grads2]):
        np.testing.assert_array_equal(f, a)


def _models(first, dtype, features):
    """Two Sequentials (first, ReLU, Flatten, Linear, ReLU, Linear) with equal weights."""
    models = []
    for _ in range(2):
        layer = nn.module_from_config(nn.module_to_config(first))
        layer.load_state_dict(first.state_dict())
        models.append(nn.Sequential(layer, nn.ReLU(), nn.Flatten(dtype=dtype),
                                    nn.Linear(features, 7, dtype=dtype, rng=1), nn.ReLU(),
                                    nn.Linear(7, 3, dtype=dtype, rng=2)))
    return models


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("path", ["direct", "winograd", "im2col"])
def test_fused_conv_and_linear_equal_the_modules_apart(path, dtype, simd):
    conv, x = _conv_case(path, dtype)
    features = conv(x)[0].size
    fused_model, apart_model = _models(conv, dtype, features)
    dy = rand(x.shape[0], 3, dtype=dtype, seed=3)
    fused, apart = _run(fused_model, x, dy, False), _run(apart_model, x, dy, True)
    assert 0.2 < np.mean(fused[1][0] == 0) < 0.8          # the mask matters
    _same(fused, apart)
    assert fused[2] is not None


@pytest.mark.parametrize("dtype", DTYPES)
def test_fused_linear_without_input_grad_and_in_eval(dtype):
    models = _models(nn.Linear(5, 4, dtype=dtype, rng=0), dtype, 4)
    x, dy = rand(6, 5, dtype=dtype), rand(6, 3, dtype=dtype, seed=1)
    for m in models:
        m.input_grad = False
    fused, apart = _run(models[0], x, dy, False), _run(models[1], x, dy, True)
    assert fused[2] is None and apart[2] is None
    _same(fused, apart)
    for m in models:
        m.eval()
    np.testing.assert_array_equal(models[0](x), models[1](x))
    assert models[0][1]._a is None and models[0][0]._a is None


def test_nan_propagates_forward_and_a_masked_nan_gradient_is_dropped():
    """relu(NaN) = NaN as the ReLU's own kernel; where a <= 0 the incoming gradient is dropped (selected, not
    multiplied by 0), so a NaN there does not reach the weights, as with the ReLU apart."""
    for first in (nn.Linear(4, 6, rng=0), nn.Conv2d(1, 6, 3, padding=1, rng=0)):
        for apart in (False, True):
            layer = nn.module_from_config(nn.module_to_config(first))
            layer.load_state_dict(first.state_dict())
            layer.bias.data[0] = np.nan
            layer.bias.data[1] = -1e6                       # channel 1 entirely below zero
            model = nn.Sequential(layer, nn.ReLU())
            if apart:
                model[1].register_forward_hook(lambda *args: None)
            x = rand(2, 4) if isinstance(first, nn.Linear) else rand(2, 1, 5, 5)
            out = model(x.astype(np.float32))
            assert np.isnan(out[:, 0]).all() and (out[:, 1] == 0).all() and np.isfinite(out[:, 2:]).all()
            dy = np.ones_like(out)
            dy[:, 1] = np.nan
            layer.bias.data[0] = 0.0
            model.zero_grad()
            model.backward(dy)
            assert np.isfinite(layer.weight.grad[1]).all() and layer.bias.grad[1] == 0


def test_hooks_subclasses_and_a_leading_relu_are_not_fused():
    class MyReLU(nn.ReLU):
        pass

    seen = []
    conv = nn.Conv2d(1, 2, 3, rng=0)
    conv.register_forward_hook(lambda m, args, out: seen.append(out.min()))
    models = [nn.Sequential(conv, nn.ReLU()), nn.Sequential(nn.Linear(3, 3, rng=0), MyReLU()),
              nn.Sequential(nn.ReLU(), nn.Linear(3, 3, rng=0)), nn.Sequential(nn.Linear(3, 3, rng=0), nn.Tanh())]
    inputs = [rand(2, 1, 6, 6, dtype=np.float32)] + [rand(4, 3, dtype=np.float32)] * 3
    for m, x in zip(models, inputs):
        m(x)
        assert m._fused == frozenset()
    assert seen and seen[0] < 0                             # the conv's hook saw z, negatives included


@pytest.mark.parametrize("path", ["direct", "winograd", "im2col"])
def test_fused_pairs_finite_differences(path):
    conv, x = _conv_case(path, np.float64)
    x = x[:2]
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(dtype=np.float64),
                          nn.Linear(conv(x)[0].size, 4, dtype=np.float64, rng=1), nn.ReLU(),
                          nn.Linear(4, 2, dtype=np.float64, rng=2))
    model(x)
    assert model._fused == frozenset({1, 4})
    assert gradcheck(model, (x,))


# ---- the direct kernels' fused epilogue and masked reads ---------------------------------------------------

def _direct_buffers(x, w, pads, oh, ow):
    n, c, h, wd = x.shape
    packed, per_thread = _conv_direct.sizes(c, h, wd, w.shape[0], *w.shape[2:], *pads, oh, ow)
    return (np.empty(packed, x.dtype), np.empty((2, per_thread), x.dtype),
            np.empty((_conv.NSLOTS, w.size + w.shape[0]), x.dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_direct_kernels_fused_relu_equal_relu_around_the_plain_kernels(dtype, simd):
    x, w, b = rand(5, 3, 8, 7, dtype=dtype), rand(9, 3, 3, 4, dtype=dtype, seed=1), rand(9, dtype=dtype, seed=2)
    pads, (oh, ow) = (1, 2), (8, 8)
    packed, scratch, partial = _direct_buffers(x, w, pads, oh, ow)
    z, a = np.empty((5, 9, oh, ow), dtype), np.empty((5, 9, oh, ow), dtype)
    _conv_direct.direct_forward(x, w, b, z, packed, scratch, *pads)
    _conv_direct.direct_forward(x, w, b, a, packed, scratch, *pads, True)
    np.testing.assert_array_equal(a, np.where(z <= 0, 0, z))
    dy = rand(*a.shape, dtype=dtype, seed=3)
    dy[a <= 0] = np.where(rand(*a.shape, seed=4) > 0, np.nan, dy)[a <= 0]   # dropped by the mask, never read
    grads = []
    for delta, mask in ((dy, a), (np.where(a > 0, dy, 0), None)):
        gw, gb, dx = np.zeros_like(w), np.zeros_like(b), np.empty_like(x)
        _conv_direct.direct_backward(x, w, delta, gw, gb, dx, packed, scratch, partial, *pads, mask)
        grads.append((gw, gb, dx))
    for fused, plain in zip(*grads):
        assert np.isfinite(fused).all()
        np.testing.assert_array_equal(fused, plain)
