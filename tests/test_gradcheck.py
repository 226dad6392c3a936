"""cnn_core.gradcheck itself: passes a correct backward, fails a wrong one, leaves the module alone."""
import numpy as np
import pytest

import cnn_core
from cnn_core import nn
from cnn_core.gradcheck import GradcheckError


class WrongLinear(nn.Linear):
    """Forgets the factor a_prev in dC/dw: a classic BP4 bug."""

    def backward(self, delta):
        dx = super().backward(delta)
        self.weight.grad[0, 0] += 0.5
        return dx


class WrongInputGrad(nn.Tanh):
    def backward(self, dy):
        return dy  # drops sigma'(z)


def test_passes_correct_backward():
    assert cnn_core.gradcheck(nn.Linear(3, 2, dtype=np.float64, rng=0), np.ones((2, 3))) is True


def test_fails_on_wrong_parameter_gradient_and_names_it():
    with pytest.raises(GradcheckError, match=r"weight\[0, 0\]"):
        cnn_core.gradcheck(WrongLinear(3, 2, dtype=np.float64, rng=0), np.ones((2, 3)))


def test_fails_on_wrong_input_gradient():
    with pytest.raises(GradcheckError, match="input 0"):
        cnn_core.gradcheck(WrongInputGrad(dtype=np.float64), np.random.default_rng(0).standard_normal((3, 4)))


def test_fails_on_wrong_loss_gradient():
    class HalfMSE(nn.MSELoss):
        def backward(self):
            return super().backward() / 2

    with pytest.raises(GradcheckError):
        cnn_core.gradcheck(HalfMSE(), (np.ones((2, 2)), np.zeros((2, 2))))


def test_float32_module_is_checked_in_float64_on_a_copy():
    m = nn.Conv2d(1, 2, 3, rng=0)
    before = m.weight.data.copy()
    x = np.random.default_rng(0).standard_normal((1, 1, 4, 4)).astype(np.float32)
    assert cnn_core.gradcheck(m, x)
    assert m.dtype == np.float32 and m.weight.data.dtype == np.float32
    np.testing.assert_array_equal(m.weight.data, before)
    assert not m.weight.grad.any()


def test_rejects_non_module():
    with pytest.raises(TypeError, match="fn_or_module"):
        cnn_core.gradcheck(np.sin, np.ones(3))


def test_rejects_bad_eps():
    with pytest.raises(ValueError, match="eps"):
        cnn_core.gradcheck(nn.Tanh(), np.ones(3), eps=0)
