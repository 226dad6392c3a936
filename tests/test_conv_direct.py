"""Direct convolution for few-channel stride-1 convs (src_c/conv_direct.c through _conv_direct.direct_forward /
direct_backward), and Conv2d on that path, against the plain-loop oracles of oracles_conv_general, float32 and
float64, on every SIMD path; thread-count invariance; float64 finite differences; LeNet-5 training equal to the
im2col path within rounding.

Error bound tested: every output within gamma_k * S of the float64 oracle, S the sum of the magnitudes of the
terms added (the oracle run on |x|, |w|, |delta|) and k the number of terms one output sums (Higham 4.2: any
summation order, so any tile and lane split), plus, in float64, the oracle's own rounding (the same bound).
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
from oracles_conv_general import conv2d_general_backward_ref, conv2d_general_ref

import cnn_core
import cnn_core.nn.conv as conv_module
from cnn_core import nn
from cnn_core.kernels import _conv, _conv_direct
from cnn_core.models import lenet5

DTYPES = [np.float32, np.float64]

# (N, C, F, H, W, (KH, KW), (PH, PW), bias)
CASES = [
    (3, 1, 6, 12, 12, (5, 5), (2, 2), True),     # LeNet's conv1 in miniature ('same')
    (4, 6, 16, 9, 9, (5, 5), (0, 0), True),      # LeNet's conv2 in miniature (16 filters: the power-of-two tile)
    (2, 3, 5, 7, 11, (3, 3), (1, 0), False),     # unequal paddings, odd sizes, no bias, 5 filters (padded tile)
    (2, 2, 7, 6, 5, (2, 4), (1, 3), True),       # rectangular kernel, padding K - 1 (the largest accepted)
    (1, 4, 1, 5, 5, (1, 1), (0, 0), True),       # 1x1 kernel, one filter
    (9, 2, 9, 4, 6, (3, 2), (2, 1), True),       # more samples than slots; 9 filters
    (2, 8, 3, 3, 3, (3, 3), (0, 0), True),       # one output pixel
]


def _out(h, w, k, p):
    return h + 2 * p[0] - k[0] + 1, w + 2 * p[1] - k[1] + 1


def gamma(k, dtype):
    u = np.finfo(dtype).eps / 2
    return k * u / (1 - k * u)


def _data(case, dtype, seed=0):
    n, c, f, h, w, k, p, has_bias = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((f, c, *k)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype) if has_bias else None
    delta = rng.standard_normal((n, f, *_out(h, w, k, p))).astype(dtype)
    return x, wt, b, delta


def _buffers(case, dtype):
    n, c, f, h, w, k, p, _ = case
    packed, per_thread = _conv_direct.sizes(c, h, w, f, *k, *p, *_out(h, w, k, p))
    scratch = np.full((cnn_core.get_num_threads(), per_thread), np.nan, dtype)
    return np.full(packed, np.nan, dtype), scratch


def _forward(case, dtype, x, wt, b):
    n, c, f, h, w, k, p, _ = case
    y = np.full((n, f, *_out(h, w, k, p)), np.nan, dtype)
    packed, scratch = _buffers(case, dtype)
    _conv_direct.direct_forward(x, wt, b, y, packed, scratch, *p)
    return y


def _backward(case, dtype, x, wt, delta, want_bias=True, want_dx=True, gw0=None, gb0=None):
    n, c, f, h, w, k, p, _ = case
    gw = np.zeros_like(wt) if gw0 is None else gw0.copy()
    gb = (np.zeros(f, dtype) if gb0 is None else gb0.copy()) if want_bias else None
    dx = np.full(x.shape, np.nan, dtype) if want_dx else None
    packed, scratch = _buffers(case, dtype)
    partial = np.full((_conv.NSLOTS, f * c * k[0] * k[1] + f), np.nan, dtype)
    _conv_direct.direct_backward(x, wt, delta, gw, gb, dx, packed, scratch, partial, *p)
    return gw, gb, dx


def _within(got, ref, magnitude, k, dtype):
    bound = gamma(k, dtype) * magnitude
    if dtype == np.float64:
        bound = 2 * bound                        # and the oracle's own float64 rounding, the same bound
    err = np.abs(got.astype(np.float64) - ref)
    assert np.all(np.isfinite(got))
    assert np.all(err <= bound), f"max error / bound {np.max(err / np.maximum(bound, 1e-300)):.3g}"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_forward_matches_oracle(case, dtype, simd):
    n, c, f, h, w, k, p, _ = case
    x, wt, b, _ = _data(case, dtype)
    y = _forward(case, dtype, x, wt, b)
    ref = conv2d_general_ref(x, wt, b, padding=p)
    mag = conv2d_general_ref(np.abs(x), np.abs(wt), None if b is None else np.abs(b), padding=p)
    _within(y, ref, mag, c * k[0] * k[1] + 1, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES)
def test_backward_matches_oracle(case, dtype, simd):
    n, c, f, h, w, k, p, _ = case
    x, wt, _, delta = _data(case, dtype)
    rng = np.random.default_rng(5)
    gw0 = rng.standard_normal(wt.shape).astype(dtype)       # the gradients accumulate into .grad
    gb0 = rng.standard_normal(f).astype(dtype)
    gw, gb, dx = _backward(case, dtype, x, wt, delta, gw0=gw0, gb0=gb0)
    dx_ref, dw_ref, db_ref = conv2d_general_backward_ref(x, wt, delta, padding=p)
    dx_mag, dw_mag, _ = conv2d_general_backward_ref(np.abs(x), np.abs(wt), np.abs(delta), padding=p)
    db_mag = np.abs(delta).astype(np.float64).sum(axis=(0, 2, 3))
    terms = n * delta.shape[2] * delta.shape[3]
    _within(dx, dx_ref, dx_mag, f * k[0] * k[1], dtype)
    _within(gw, gw0 + dw_ref, np.abs(gw0) + dw_mag, terms + 1, dtype)
    _within(gb, gb0 + db_ref, np.abs(gb0) + db_mag, terms + 1, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_without_bias_or_input_gradient(dtype, simd):
    case = CASES[1]
    x, wt, _, delta = _data(case, dtype, seed=3)
    gw_all, _, _ = _backward(case, dtype, x, wt, delta)
    gw, gb, dx = _backward(case, dtype, x, wt, delta, want_bias=False, want_dx=False)
    assert gb is None and dx is None
    np.testing.assert_array_equal(gw, gw_all)       # the same sums, skipping the others changes none


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_in_input_reaches_only_its_outputs(dtype):
    """The dropped columns of the wide grid and the padded filters must not leak: a NaN pixel makes NaN only
    the outputs whose window covers it."""
    case = CASES[0]
    x, wt, b, delta = _data(case, dtype)
    x[0, 0, 0, 0] = np.nan
    y = _forward(case, dtype, x, wt, b)
    assert np.all(np.isnan(y[0, :, :3, :3])) and np.all(np.isfinite(y[0, :, 3:, :])) and np.all(np.isfinite(y[1:]))
    gw, gb, dx = _backward(case, dtype, x, wt, delta)
    assert np.all(np.isfinite(gb)) and np.all(np.isfinite(dx))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("path", ["baseline", "avx2", "avx512"])
def test_thread_count_never_changes_a_result(dtype, path, use_simd, num_threads):
    use_simd(path)
    case = (13, 3, 6, 10, 10, (5, 5), (2, 2), True)
    x, wt, b, delta = _data(case, dtype, seed=7)
    results = []
    for t in (1, 2, 3):
        num_threads(t)
        results.append((_forward(case, dtype, x, wt, b), *_backward(case, dtype, x, wt, delta)))
    for other in results[1:]:
        for a, r in zip(results[0], other):
            np.testing.assert_array_equal(a, r)


# ---- the layer ---------------------------------------------------------------------------------------------

LAYERS = [
    # (N, C, F, H, W, kernel, padding)
    (3, 1, 6, 12, 12, 5, 2),
    (2, 6, 16, 9, 9, 5, 0),
    (2, 3, 4, 7, 6, 4, "same"),      # even kernel: 1 zero before, 2 after
    (2, 2, 3, 6, 8, (3, 1), "valid"),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", LAYERS)
def test_layer_forward_backward(case, dtype, simd):
    n, c, f, h, w, k, pad = case
    m = nn.Conv2d(c, f, k, padding=pad, dtype=dtype, rng=0)
    assert m._direct(m._geometry(h, w)[0])
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    z = m(x)
    ref = conv2d_general_ref(x, m.weight.data, m.bias.data, padding=pad)
    mag = conv2d_general_ref(np.abs(x), np.abs(m.weight.data), np.abs(m.bias.data), padding=pad)
    kk = c * m.kernel_size[0] * m.kernel_size[1]
    _within(z, ref, mag, kk + 1, dtype)
    delta = rng.standard_normal(z.shape).astype(dtype)
    dx = m.backward(delta)
    dx_ref, dw_ref, db_ref = conv2d_general_backward_ref(x, m.weight.data, delta, padding=pad)
    dx_mag, dw_mag, _ = conv2d_general_backward_ref(np.abs(x), np.abs(m.weight.data), np.abs(delta), padding=pad)
    terms = n * z.shape[2] * z.shape[3]
    _within(dx, dx_ref, dx_mag, f * m.kernel_size[0] * m.kernel_size[1], dtype)
    _within(m.weight.grad, dw_ref, dw_mag, terms, dtype)
    _within(m.bias.grad, db_ref, np.abs(delta).astype(np.float64).sum(axis=(0, 2, 3)), terms, dtype)


@pytest.mark.parametrize("case", LAYERS)
def test_layer_gradcheck(case):
    n, c, f, h, w, k, pad = case
    m = nn.Conv2d(c, f, k, padding=pad, dtype=np.float64, rng=0)
    assert m._direct(m._geometry(h, w)[0])
    assert cnn_core.gradcheck(m, np.random.default_rng(2).standard_normal((n, c, h, w)))


def test_path_choice():
    assert nn.Conv2d(1, 6, 5, padding=2)._direct((2, 2))
    assert nn.Conv2d(6, 16, 5)._direct((0, 0))
    assert not nn.Conv2d(6, 16, 5, stride=2)._direct((0, 0))
    assert not nn.Conv2d(6, 16, 5, dilation=2)._direct((0, 0))
    assert not nn.Conv2d(6, 16, 5, groups=2)._direct((0, 0))
    assert not nn.Conv2d(6, 16, 3, padding=3)._direct((3, 3))           # the input gradient's padding < 0
    assert nn.Conv2d(3, 64, 3, padding=1)._direct((1, 1))
    assert not nn.Conv2d(16, 64, 3, padding=1)._direct((1, 1))         # too many channel pairs
    assert not nn.Conv2d(conv_module._DIRECT_MAX_IN_CHANNELS + 1, 6, 5)._direct((0, 0))


@pytest.mark.parametrize("dtype", DTYPES)
def test_lenet5_training_equals_im2col_path(dtype, monkeypatch):
    """Five SGD steps of LeNet-5 by the direct path and by im2col + GEMM from the same weights: the same model
    within rounding (different summation orders only)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((5, 32, 1, 28, 28)).astype(dtype)
    Y = rng.integers(0, 10, (5, 32))
    base = lenet5(dtype=dtype, rng=0)
    states = []
    for direct in (True, False):
        monkeypatch.setattr(conv_module, "_DIRECT_MAX_IN_CHANNELS", 16 if direct else 0)
        model = copy.deepcopy(base).train()
        assert model[0]._direct((2, 2)) == direct and model[3]._direct((0, 0)) == direct
        loss = nn.CrossEntropyLoss()
        opt = cnn_core.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        for xb, yb in zip(X, Y):
            opt.zero_grad()
            loss(model(xb), yb)
            model.backward(loss.backward())
            opt.step()
        states.append(model.state_dict())
    tol = 2e-4 if dtype == np.float32 else 1e-11
    for key in states[0]:
        np.testing.assert_allclose(states[0][key], states[1][key], rtol=tol, atol=tol, err_msg=key)
