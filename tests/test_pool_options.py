"""Pooling with PyTorch's options (issue 11): MaxPool2d's padding, dilation and ceil_mode, AvgPool2d's
padding, ceil_mode and count_include_pad, AdaptiveAvgPool2d; parameter-free layers (pooling, Flatten) take
either float dtype; bad arguments; configs through save/load; thread-count invariance of the general loops.

References: the plain-loop oracles in oracles_pooling.py, written from PyTorch's formulas; gradients by
central finite differences in float64 (cnn_core.gradcheck).
"""
from __future__ import annotations

import numpy as np
import pytest
from oracles_pooling import (adaptive_avg_pool2d_ref, avg_pool2d_general_ref, max_pool2d_backward_ref,
                             max_pool2d_general_ref, pool_out_size)

import cnn_core
from cnn_core import gradcheck, nn

DTYPES = [np.float32, np.float64]

# (input H, W, kernel_size, stride, padding, dilation, ceil_mode): padded, dilated, ceil-mode overhangs,
# rectangular windows, and the plain case (fast loops) for comparison
MAX_CASES = [
    (7, 7, 3, 2, 1, 1, False), (7, 7, 3, 2, 1, 1, True), (8, 8, 3, 2, 1, 1, True), (6, 9, (2, 3), (2, 1), (1, 0), 1, False),
    (9, 9, 3, 1, 1, 2, False), (10, 11, 3, 2, 0, (2, 3), True), (5, 5, 2, 2, 0, 1, True), (28, 28, 2, 2, 0, 1, False),
    (6, 6, 4, 3, 2, 1, True), (3, 4, 2, 1, 1, 1, False),
]
AVG_CASES = [
    (7, 7, 3, 2, 1, False), (7, 7, 3, 2, 1, True), (8, 8, 3, 2, 1, True), (6, 9, (2, 3), (2, 1), (1, 0), False),
    (5, 5, 2, 2, 0, True), (6, 6, 4, 3, 2, True), (3, 4, 2, 1, 1, False), (12, 12, 2, 2, 0, False),
]


def _x(shape, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("h, w, k, s, p, d, ceil", MAX_CASES)
def test_max_pool_options_match_oracle(h, w, k, s, p, d, ceil, dtype):
    x = _x((2, 3, h, w), dtype)
    pool = nn.MaxPool2d(k, s, p, d, False, ceil)
    out = pool(x)
    ref, argmax = max_pool2d_general_ref(x, k, s, p, d, ceil)
    assert out.dtype == dtype and out.shape == ref.shape
    np.testing.assert_array_equal(out, ref)   # a max copies one input value: exact
    dy = _x(out.shape, dtype, 1)
    np.testing.assert_allclose(pool.backward(dy), max_pool2d_backward_ref(dy, argmax, x.shape), rtol=1e-6)


@pytest.mark.parametrize("h, w, k, s, p, d, ceil", MAX_CASES)
def test_max_pool_options_gradcheck(h, w, k, s, p, d, ceil):
    # distinct values (a permutation) so that no finite-difference step changes a window's winner
    x = np.random.default_rng(2).permutation(2 * 2 * h * w).reshape(2, 2, h, w) / 7.0
    assert gradcheck(nn.MaxPool2d(k, s, p, d, ceil_mode=ceil), x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("include_pad", [True, False])
@pytest.mark.parametrize("h, w, k, s, p, ceil", AVG_CASES)
def test_avg_pool_options_match_oracle(h, w, k, s, p, ceil, include_pad, dtype):
    x = _x((2, 3, h, w), dtype)
    out = nn.AvgPool2d(k, s, p, ceil, include_pad)(x)
    ref = avg_pool2d_general_ref(x, k, s, p, ceil, include_pad)
    assert out.dtype == dtype and out.shape == ref.shape
    # float32 sums of up to 16 terms of |x| ~ 1: a few ulps of the sum
    np.testing.assert_allclose(out, ref, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6 if dtype == np.float32 else 0)


@pytest.mark.parametrize("include_pad", [True, False])
@pytest.mark.parametrize("h, w, k, s, p, ceil", AVG_CASES)
def test_avg_pool_options_gradcheck(h, w, k, s, p, ceil, include_pad):
    assert gradcheck(nn.AvgPool2d(k, s, p, ceil, include_pad), _x((2, 2, h, w), np.float64))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("hw, out", [((7, 7), 1), ((7, 5), (3, 2)), ((6, 6), 3), ((5, 9), (4, 4)),
                                     ((3, 3), 5), ((7, 6), (2, None))])
def test_adaptive_avg_pool_matches_oracle_and_gradcheck(hw, out, dtype):
    x = _x((2, 3, *hw), dtype)
    pool = nn.AdaptiveAvgPool2d(out)
    got = pool(x)
    out_hw = tuple(hw[a] if (out if isinstance(out, tuple) else (out, out))[a] is None
                   else (out if isinstance(out, tuple) else (out, out))[a] for a in (0, 1))
    ref = adaptive_avg_pool2d_ref(x, out_hw)
    assert got.dtype == dtype and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6 if dtype == np.float32 else 0)
    assert gradcheck(nn.AdaptiveAvgPool2d(out), x.astype(np.float64))


def test_global_average_pooling_is_the_mean():
    x = _x((4, 5, 6, 7), np.float64)
    np.testing.assert_allclose(nn.AdaptiveAvgPool2d(1)(x)[:, :, 0, 0], x.mean(axis=(2, 3)), rtol=1e-13)


def test_output_size_formulas_match_pytorchs_examples():
    # PyTorch's docs: H_out = floor_or_ceil((H + 2p - d(k-1) - 1)/s) + 1; ceil drops a window starting in the padding
    assert nn.MaxPool2d(3, 2, ceil_mode=True)(np.zeros((1, 1, 6, 6), np.float32)).shape[2:] == (3, 3)
    assert nn.MaxPool2d(3, 2, ceil_mode=False)(np.zeros((1, 1, 6, 6), np.float32)).shape[2:] == (2, 2)
    assert nn.MaxPool2d(2, 2, 1, ceil_mode=True)(np.zeros((1, 1, 4, 4), np.float32)).shape[2:] == (3, 3)
    assert pool_out_size(4, 2, 2, 1, 1, True) == 3   # 4 would start at 6 >= H + p = 5: dropped
    assert nn.MaxPool2d(3, 1, 0, 2)(np.zeros((1, 1, 9, 9), np.float32)).shape[2:] == (5, 5)


def test_torch_agrees_where_installed():
    torch = pytest.importorskip("torch")
    x = _x((2, 3, 9, 8), np.float64)
    for h, w, k, s, p, d, ceil in MAX_CASES:
        xt = torch.from_numpy(_x((2, 3, h, w), np.float64))
        ref = torch.nn.MaxPool2d(k, s, p, d, ceil_mode=ceil)(xt).numpy()
        np.testing.assert_array_equal(nn.MaxPool2d(k, s, p, d, ceil_mode=ceil)(xt.numpy()), ref)
    for h, w, k, s, p, ceil in AVG_CASES:
        for include_pad in (True, False):
            xt = torch.from_numpy(_x((2, 3, h, w), np.float64))
            ref = torch.nn.AvgPool2d(k, s, p, ceil, include_pad)(xt).numpy()
            np.testing.assert_allclose(nn.AvgPool2d(k, s, p, ceil, include_pad)(xt.numpy()), ref, rtol=1e-12)
    for out in (1, (3, 2), (4, 5)):
        ref = torch.nn.AdaptiveAvgPool2d(out)(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(nn.AdaptiveAvgPool2d(out)(x), ref, rtol=1e-12)


# ---- dtype: parameter-free layers take the float dtype they are given -----------------------------------------

@pytest.mark.parametrize("layer", [nn.MaxPool2d(2), nn.AvgPool2d(2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                   nn.MaxPool2d(3, 2, 1, ceil_mode=True), nn.AvgPool2d(3, 2, 1, True, False)],
                         ids=repr)
@pytest.mark.parametrize("dtype", DTYPES)
def test_parameter_free_layers_take_either_float_dtype(layer, dtype):
    x = _x((2, 3, 6, 6), dtype)
    out = layer(x)
    assert out.dtype == dtype
    dx = layer.backward(np.ones_like(out))
    assert dx.dtype == dtype and dx.shape == x.shape
    other = np.float64 if dtype == np.float32 else np.float32
    layer(x)
    with pytest.raises(TypeError, match=r"expected dtype \S+ \(the forward input's\)"):
        layer.backward(np.ones(out.shape, other))
    with pytest.raises(TypeError, match="float32 or float64"):
        layer(x.astype(np.float16))
    with pytest.raises(TypeError, match="float32 or float64"):
        layer(np.ones(x.shape, np.int64))


def test_a_float32_network_with_float64_pooling_in_the_middle_is_not_required():
    # Layers with weights still ask for their own dtype: only the parameter-free ones are dtype-agnostic.
    with pytest.raises(TypeError, match="dtype float32"):
        nn.Sequential(nn.MaxPool2d(2), nn.Flatten(), nn.Linear(9, 2))(np.ones((1, 1, 6, 6)))


# ---- bad arguments: ValueError/TypeError naming the argument ----------------------------------------------

@pytest.mark.parametrize("make, name", [
    (lambda: nn.MaxPool2d(2, padding=2), "padding"),
    (lambda: nn.MaxPool2d(3, dilation=1, padding=2), "padding"),
    (lambda: nn.AvgPool2d(2, padding=2), "padding"),
    (lambda: nn.MaxPool2d(2, dilation=0), "dilation"),
    (lambda: nn.MaxPool2d(0), "kernel_size"),
    (lambda: nn.MaxPool2d(2, 0), "stride"),
    (lambda: nn.AvgPool2d(2, padding=-1), "padding"),
    (lambda: nn.MaxPool2d(2, return_indices=True), "return_indices"),
    (lambda: nn.AdaptiveAvgPool2d(0), "output_size"),
    (lambda: nn.AdaptiveAvgPool2d((2, -1)), "output_size"),
])
def test_bad_values_raise_value_error_naming_them(make, name):
    with pytest.raises(ValueError, match=f"^{name}:"):
        make()


@pytest.mark.parametrize("make, name", [
    (lambda: nn.MaxPool2d(2, ceil_mode="yes"), "ceil_mode"),
    (lambda: nn.AvgPool2d(2, count_include_pad=1), "count_include_pad"),
    (lambda: nn.MaxPool2d(2.5), "kernel_size"),
    (lambda: nn.AdaptiveAvgPool2d("1"), "output_size"),
])
def test_bad_types_raise_type_error_naming_them(make, name):
    with pytest.raises(TypeError, match=f"^{name}:"):
        make()


def test_window_larger_than_padded_input_is_a_value_error():
    with pytest.raises(ValueError, match="MaxPool2d: x: kernel_size: the height window"):
        nn.MaxPool2d(3, dilation=2)(np.zeros((1, 1, 4, 9), np.float32))
    with pytest.raises(ValueError, match="AvgPool2d: x: kernel_size"):
        nn.AvgPool2d(5, padding=1)(np.zeros((1, 1, 2, 9), np.float32))


# ---- configs and threads ----------------------------------------------------------------------------------

def test_configs_round_trip_through_save_and_load(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.MaxPool2d(3, 2, 1, 1, False, True),
                          nn.AvgPool2d(3, 1, 1, True, False), nn.MaxPool2d((2, 3), (1, 2), (1, 0), (2, 1)),
                          nn.AdaptiveAvgPool2d((2, None)), nn.Flatten())
    x = _x((2, 1, 11, 12), np.float32)
    path = tmp_path / "m.npz"
    cnn_core.save(model, path)
    back = cnn_core.load(path)
    assert repr(back) == repr(model)
    for a, b in zip(model, back):
        assert a.get_config() == b.get_config()
    np.testing.assert_array_equal(back.eval()(x), model.eval()(x))


def test_old_configs_without_the_new_options_still_load():
    from cnn_core.nn import module_from_config
    pool = module_from_config({"type": "MaxPool2d", "config": {"kernel_size": [2, 2], "stride": [2, 2],
                                                                "dtype": "float32"}})
    assert (pool.padding, pool.dilation, pool.ceil_mode) == ((0, 0), (1, 1), False)


@pytest.mark.parametrize("layer", [nn.MaxPool2d(3, 2, 1, 2, False, True), nn.AvgPool2d(3, 2, 1, True, False),
                                   nn.AdaptiveAvgPool2d((5, 3))], ids=repr)
def test_general_loops_give_the_same_bits_on_any_thread_count(layer):
    # 64 planes of 96x96: 4.5 * 2**17 elements, above the pooling threshold, so 2 and 3 threads really run
    x = _x((4, 16, 96, 96), np.float64)
    before = cnn_core.get_num_threads()
    results = []
    try:
        for n in (1, 2, 3):
            cnn_core.set_num_threads(n)
            out = layer(x)
            results.append((out, layer.backward(np.ones_like(out))))
    finally:
        cnn_core.set_num_threads(before)
    for out, dx in results[1:]:
        assert out.tobytes() == results[0][0].tobytes() and dx.tobytes() == results[0][1].tobytes()


def test_a_window_of_padding_only_gives_minus_infinity_and_no_gradient():
    # H = 2, 2 taps dilated by 4, padding 2: output rows 0 and 1 tap rows (-2, 2) and (-1, 3), all outside
    pool = nn.MaxPool2d((2, 1), 1, (2, 0), (4, 1))
    x = _x((1, 1, 2, 3), np.float64)
    out = pool(x)
    ref, _ = max_pool2d_general_ref(x, (2, 1), 1, (2, 0), (4, 1), False)
    np.testing.assert_array_equal(out, ref)
    assert out.shape == (1, 1, 2, 3) and np.isneginf(out).all()    # as PyTorch
    np.testing.assert_array_equal(pool.backward(np.ones_like(out)), np.zeros_like(x))
    with pytest.raises(ValueError, match="argmax"):   # the public kernel still refuses -1 from a caller
        cnn_core.kernels.max_pool2d_backward(np.ones((1, 1, 1, 1)), -np.ones((1, 1, 1, 1), np.int64), (1, 1, 2, 2))


@pytest.mark.parametrize("dtype", DTYPES)
def test_max_pool_recycled_arrays_never_overwrite_a_held_result(dtype):
    """The layer refills its output, argmax and input gradient arrays from step to step (Module._handout):
    every array a caller still holds (whole, or through a view) keeps its values through later calls."""
    pool = nn.MaxPool2d(2)
    xs = [_x((2, 3, 6, 6), dtype, seed) for seed in range(6)]
    kept, views = [], []
    for step, x in enumerate(xs):
        a = pool(x)
        dy = _x(a.shape, dtype, 10 + step)
        dx = pool.backward(dy)
        ref, argmax = max_pool2d_general_ref(x, 2, 2, 0, 1, False)
        np.testing.assert_array_equal(a, ref)
        np.testing.assert_array_equal(dx, max_pool2d_backward_ref(dy, argmax, x.shape))
        if step % 2:
            kept.append((a, dx, ref, max_pool2d_backward_ref(dy, argmax, x.shape)))
        else:
            views.append((a[0], ref[0]))
    for a, dx, ref, dref in kept:
        np.testing.assert_array_equal(a, ref)
        np.testing.assert_array_equal(dx, dref)
    for v, ref in views:
        np.testing.assert_array_equal(v, ref)


def test_max_pool_reuses_its_arrays_in_a_training_loop():
    import weakref
    pool = nn.MaxPool2d(2)
    x = _x((2, 3, 6, 6), np.float32)
    outs, grads = [], []
    for _ in range(4):
        a = pool(x)
        dx = pool.backward(np.ones_like(a))
        outs.append(weakref.ref(a))
        grads.append(weakref.ref(dx))
        del a, dx
    # nothing held them between steps: every step filled the same two arrays again (new ones would have died)
    assert outs[0]() is not None and all(r() is outs[0]() for r in outs)
    assert grads[0]() is not None and all(r() is grads[0]() for r in grads)
