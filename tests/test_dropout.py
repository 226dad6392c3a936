"""Dropout and Dropout2d: inverted scaling, mask statistics, the seeded generator, eval identity, finite
differences with a fixed mask, dtypes and argument errors."""
import numpy as np
import pytest

import cnn_core
from cnn_core import nn
from cnn_core.gradcheck import gradcheck


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kept_elements_are_scaled_and_the_rate_is_p(dtype):
    drop = nn.Dropout(0.3, rng=0)
    x = np.full((200, 500), 2.0, dtype)
    y = drop(x)
    assert y.dtype == dtype
    kept = y != 0
    np.testing.assert_allclose(y[kept], 2.0 / 0.7, rtol=1e-6)
    # 100000 Bernoulli(0.3) draws: the dropped fraction is within 5 standard deviations (0.0072) of p
    assert abs(1 - kept.mean() - 0.3) < 5 * np.sqrt(0.3 * 0.7 / x.size)
    dx = drop.backward(np.ones_like(x))
    assert np.array_equal(dx != 0, kept) and np.allclose(dx[kept], 1 / 0.7)


def test_dropout2d_zeroes_whole_channels():
    drop = nn.Dropout2d(0.5, rng=1)
    y = drop(np.ones((6, 40, 3, 4), np.float64))
    per_channel = y.reshape(6, 40, -1)
    assert (per_channel.min(axis=2) == per_channel.max(axis=2)).all()
    assert set(np.unique(y)) == {0.0, 2.0}
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        drop(np.ones((6, 40, 3)))


@pytest.mark.parametrize("cls", [nn.Dropout, nn.Dropout2d])
def test_eval_mode_and_p_zero_are_the_identity(cls):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4))
    assert cls(0.5).eval()(x) is x
    d = cls(0.0)
    assert d(x) is x and d.backward(x) is x


def test_masks_come_from_the_library_generator():
    x = np.ones((8, 50), np.float32)
    cnn_core.manual_seed(123)
    a = nn.Dropout(0.5)(x)
    cnn_core.manual_seed(123)
    b = nn.Dropout(0.5)(x)
    c = nn.Dropout(0.5)(x)
    assert np.array_equal(a, b) and not np.array_equal(b, c)


class _FixedMask(nn.Dropout):
    """Dropout whose mask is drawn once, so that repeated forwards (finite differences) see the same one."""

    def _draw_mask(self, shape, dtype):
        if not hasattr(self, "fixed"):
            object.__setattr__(self, "fixed", super()._draw_mask(shape, dtype))
        return self.fixed.astype(dtype)


@pytest.mark.parametrize("cls", [_FixedMask])
def test_backward_passes_finite_differences_with_a_fixed_mask(cls):
    drop = cls(0.4, rng=3)
    x = np.random.default_rng(1).standard_normal((5, 6))
    drop(x)
    assert gradcheck(drop, (x,))
    assert 0 < (drop.fixed == 0).sum() < x.size  # the mask does drop some and keep some


@pytest.mark.parametrize("p", [-0.1, 1.0, 1.5, float("nan")])
def test_p_outside_0_1_raises_value_error(p):
    with pytest.raises(ValueError, match="p: expected a dropout probability in"):
        nn.Dropout(p)
    with pytest.raises(ValueError, match="p: "):
        nn.Dropout2d(p)


def test_either_float_dtype_is_taken_but_not_integers():
    assert nn.Dropout(0.5)(np.ones((2, 2), np.float64)).dtype == np.float64
    with pytest.raises(TypeError, match="float32 or float64"):
        nn.Dropout(0.5)(np.ones((2, 2), np.int32))
