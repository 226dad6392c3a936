"""Every layer's backward against central finite differences in float64 (input and parameters), alone and
stacked; forward passes against plain NumPy formulas."""
import numpy as np
import pytest
from oracles_conv import conv2d_ref
from oracles_pooling import avg_pool2d_ref, max_pool2d_ref
from oracles_rnn import rnn_ref

import cnn_core
from cnn_core import nn

F64 = np.float64


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_linear_forward_matches_formula(dtype, tol):
    m = nn.Linear(7, 4, dtype=dtype, rng=1)
    x = rand(5, 7).astype(dtype)
    ref = x.astype(F64) @ m.weight.data.T.astype(F64) + m.bias.data
    np.testing.assert_allclose(m(x), ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("k,s,p,bias", [(3, 1, 0, True), (5, 1, 2, True), ((2, 3), (2, 1), (1, 0), False),
                                        (4, 2, 1, True)])
def test_conv2d_forward_matches_loops(k, s, p, bias):
    m = nn.Conv2d(3, 2, k, stride=s, padding=p, bias=bias, dtype=F64, rng=2)
    x = rand(2, 3, 7, 6)
    ref = conv2d_ref(x, m.weight.data, m.stride, m.padding, bias=m.bias.data if bias else None)
    np.testing.assert_allclose(m(x), ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls,ref", [(nn.MaxPool2d, lambda *a: max_pool2d_ref(*a)[0]), (nn.AvgPool2d, avg_pool2d_ref)])
@pytest.mark.parametrize("k,s", [(2, None), (3, 2), ((2, 3), (1, 2))])
def test_pool_forward_matches_loops(cls, ref, k, s):
    m = cls(k, s, dtype=F64)
    x = rand(2, 3, 7, 8)
    np.testing.assert_allclose(m(x), ref(x, m.kernel_size, m.stride), rtol=1e-12)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("with_h0", [False, True])
def test_rnn_forward_matches_loop(nonlinearity, with_h0):
    m = nn.RNN(3, 4, nonlinearity=nonlinearity, batch_first=True, dtype=F64, rng=3)
    x = rand(2, 5, 3)
    h0 = rand(2, 4, seed=1) if with_h0 else None
    out, hn = m(x, None if h0 is None else h0[None])
    ref_out, ref_hn = rnn_ref(x, h0, m.weight_ih_l0.data, m.weight_hh_l0.data, m.bias_ih_l0.data, m.bias_hh_l0.data,
                              nonlinearity)
    np.testing.assert_allclose(out, ref_out, rtol=1e-12, atol=1e-12)
    assert hn.shape == (1, 2, 4)
    np.testing.assert_allclose(hn[0], ref_hn, rtol=1e-12, atol=1e-12)


# ---- backward vs finite differences --------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("init", ["default", "normal"])
def test_linear_gradcheck(bias, init):
    assert cnn_core.gradcheck(nn.Linear(6, 4, bias=bias, dtype=F64, rng=0, init=init), rand(3, 6))


@pytest.mark.parametrize("cin,cout,k,s,p,shape", [
    (1, 2, 3, 1, 0, (2, 1, 5, 5)),
    (2, 3, 5, 1, 2, (2, 2, 6, 6)),        # LeNet conv1 style: "same" padding
    (2, 2, (2, 3), (2, 1), (1, 0), (1, 2, 5, 6)),
    (3, 2, 4, 4, 0, (1, 3, 4, 4)),        # kernel = input size
    (1, 1, 1, 1, 0, (3, 1, 3, 2)),        # 1x1
])
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d_gradcheck(cin, cout, k, s, p, shape, bias):
    m = nn.Conv2d(cin, cout, k, stride=s, padding=p, bias=bias, dtype=F64, rng=1)
    assert cnn_core.gradcheck(m, rand(*shape))


@pytest.mark.parametrize("cls", [nn.MaxPool2d, nn.AvgPool2d])
@pytest.mark.parametrize("k,s,shape", [(2, None, (2, 2, 4, 6)), (3, 1, (1, 2, 5, 5)), ((2, 3), (2, 2), (2, 1, 5, 7))])
def test_pool_gradcheck(cls, k, s, shape):
    # max pool is piecewise linear; random inputs keep the max away from ties by far more than eps
    assert cnn_core.gradcheck(cls(k, s, dtype=F64), rand(*shape))


def test_maxpool_backward_is_the_upsample_of_the_deck():
    # the deck's example: delta (2 8; 4 6) goes back to each window's winner
    x = np.array([[9, 1, 0, 3], [2, 0, 1, 7], [0, 5, 2, 0], [1, 0, 8, 1]], dtype=F64)[None, None]
    m = nn.MaxPool2d(2, dtype=F64)
    m(x)
    dx = m.backward(np.array([[2, 8], [4, 6]], dtype=F64)[None, None])
    np.testing.assert_array_equal(dx[0, 0], [[2, 0, 0, 0], [0, 0, 0, 8], [0, 4, 0, 0], [0, 0, 6, 0]])
    a = nn.AvgPool2d(2, dtype=F64)
    a(x)
    dx = a.backward(np.array([[2, 8], [4, 6]], dtype=F64)[None, None])
    np.testing.assert_array_equal(dx[0, 0], [[.5, .5, 2, 2], [.5, .5, 2, 2], [1, 1, 1.5, 1.5], [1, 1, 1.5, 1.5]])


@pytest.mark.parametrize("act", [nn.Sigmoid, nn.Tanh, nn.ReLU, nn.ELU, lambda dtype: nn.ELU(0.5, dtype=dtype)])
@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 2, 2)])
def test_activation_gradcheck(act, shape):
    assert cnn_core.gradcheck(act(dtype=F64), rand(*shape))


def test_flatten_gradcheck_and_shape():
    m = nn.Flatten(dtype=F64)
    assert m(rand(2, 3, 4, 5)).shape == (2, 60)
    assert cnn_core.gradcheck(m, rand(2, 3, 4, 5))


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("with_h0", [False, True])
@pytest.mark.parametrize("n,t_len", [(3, 6), (1, 1), (2, 4)])
def test_rnn_bptt_gradcheck(nonlinearity, with_h0, n, t_len):
    m = nn.RNN(3, 4, nonlinearity=nonlinearity, batch_first=True, dtype=F64, rng=5)
    inputs = (rand(n, t_len, 3),) + ((rand(1, n, 4, seed=1),) if with_h0 else ())
    # gradcheck feeds random weights to both outputs: d_out and d_hn are both exercised
    assert cnn_core.gradcheck(m, inputs)


def test_rnn_backward_without_d_hn_equals_zero_d_hn():
    m = nn.RNN(2, 3, batch_first=True, dtype=F64, rng=0)
    x, d_out = rand(2, 4, 2), rand(2, 4, 3, seed=1)
    m(x)
    dx1 = m.backward(d_out)
    g1 = [p.grad.copy() for p in m.parameters()]
    m.zero_grad()
    dx2 = m.backward(d_out, np.zeros((1, 2, 3)))
    np.testing.assert_array_equal(dx1, dx2)
    for a, b in zip(g1, m.parameters()):
        np.testing.assert_array_equal(a, b.grad)


def lenet_like(dtype=F64, rng=0):
    return nn.Sequential(
        nn.Conv2d(1, 3, 5, padding=2, dtype=dtype, rng=rng), nn.ReLU(dtype=dtype), nn.MaxPool2d(2, dtype=dtype),
        nn.Conv2d(3, 4, 3, dtype=dtype, rng=rng), nn.Sigmoid(dtype=dtype), nn.AvgPool2d(2, dtype=dtype),
        nn.Flatten(dtype=dtype), nn.Linear(16, 10, dtype=dtype, rng=rng), nn.Tanh(dtype=dtype),
        nn.Linear(10, 5, dtype=dtype, rng=rng))


def test_lenet_like_sequential_gradcheck():
    assert cnn_core.gradcheck(lenet_like(), rand(2, 1, 12, 12))


def test_mlp_sequential_gradcheck():
    mlp = nn.Sequential(nn.Linear(8, 6, dtype=F64, rng=0), nn.ELU(dtype=F64), nn.Linear(6, 5, dtype=F64, rng=1),
                        nn.Sigmoid(dtype=F64), nn.Linear(5, 3, dtype=F64, rng=2))
    assert cnn_core.gradcheck(mlp, rand(4, 8))


def test_mlp_with_loss_end_to_end_gradient():
    """d CrossEntropy(model(x)) / d w by finite differences, through loss.backward() and model.backward()."""
    mlp = nn.Sequential(nn.Linear(5, 4, dtype=F64, rng=0), nn.Tanh(dtype=F64), nn.Linear(4, 3, dtype=F64, rng=1))
    crit = nn.CrossEntropyLoss()
    x, y = rand(6, 5), np.array([0, 1, 2, 2, 1, 0])
    crit(mlp(x), y)
    mlp.backward(crit.backward())
    w = mlp[0].weight.data
    eps = 1e-6
    for idx in [(0, 0), (2, 3), (3, 4)]:
        orig = w[idx]
        w[idx] = orig + eps
        up = crit(mlp(x), y)
        w[idx] = orig - eps
        down = crit(mlp(x), y)
        w[idx] = orig
        assert abs((up - down) / (2 * eps) - mlp[0].weight.grad[idx]) < 1e-7


def test_backward_accumulates_gradients():
    m = nn.Conv2d(2, 3, 3, dtype=F64, rng=0)
    x = rand(2, 2, 5, 5)
    dy = rand(2, 3, 3, 3, seed=1)
    m(x)
    m.backward(dy)
    once = [p.grad.copy() for p in m.parameters()]
    m(x)
    m.backward(dy)
    for a, p in zip(once, m.parameters()):
        np.testing.assert_allclose(p.grad, 2 * a, rtol=1e-12)
    m.zero_grad()
    assert all(not p.grad.any() for p in m.parameters())


def test_float32_backward_close_to_float64():
    m64 = lenet_like(F64, rng=3)
    m32 = lenet_like(np.float32, rng=3)
    x = rand(3, 1, 12, 12)
    dy = rand(3, 5, seed=1)
    y64, y32 = m64(x), m32(x.astype(np.float32))
    dx64, dx32 = m64.backward(dy), m32.backward(dy.astype(np.float32))
    assert y32.dtype == dx32.dtype == np.float32
    # float32 has ~7 significant digits; a few layers of rounding stay well below 1e-4 relative
    np.testing.assert_allclose(y32, y64, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dx32, dx64, rtol=1e-4, atol=1e-5)
    for p32, p64 in zip(m32.parameters(), m64.parameters()):
        np.testing.assert_allclose(p32.grad, p64.grad, rtol=1e-4, atol=1e-5)


def test_non_contiguous_input_gives_same_result():
    m = nn.Conv2d(2, 3, 3, dtype=F64, rng=0)
    x = rand(2, 5, 5, 2).transpose(0, 3, 1, 2)
    assert not x.flags.c_contiguous
    np.testing.assert_array_equal(m(x), m(np.ascontiguousarray(x)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_bias_grad_is_delta_sum_across_batch_sizes(dtype):
    """The bias gradient runs as a batched product with a cached ones array (keyed by shape and dtype):
    it must equal the sum of delta over the batch and positions, accumulate, and follow batch-size changes."""
    rng = np.random.default_rng(12)
    conv = nn.Conv2d(3, 5, 3, dtype=dtype)
    expect = np.zeros(5)
    for n, h in ((4, 7), (2, 7), (3, 9)):
        conv(rng.standard_normal((n, 3, h, 6)).astype(dtype))
        dy = rng.standard_normal((n, 5, h - 2, 4)).astype(dtype)
        conv.backward(dy)
        expect += dy.astype(np.float64).sum(axis=(0, 2, 3))
        # float32: sums of <= 3*7*4 = 84 terms of size ~1 accumulated over steps: error ~ 84 * eps32 ~ 1e-5
        tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(conv.bias.grad, expect, **tol)
