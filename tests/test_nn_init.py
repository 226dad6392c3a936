"""Initialization statistics: PyTorch's uniform bounds, the deck's N(0, 1/n_in)."""
import math

import numpy as np
import pytest

from cnn_core import nn


@pytest.mark.parametrize("make,fan_in", [(lambda **k: nn.Linear(400, 120, **k), 400),
                                          (lambda **k: nn.Conv2d(6, 16, 5, **k), 150)])
def test_default_init_is_uniform_with_pytorch_bounds(make, fan_in):
    m = make(rng=0)
    bound = 1 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)) and the bias rule both give 1/sqrt(fan_in)
    w, b = m.weight.data, m.bias.data
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    # a uniform sample of this size spans nearly all of its range, and has variance bound^2/3
    assert np.abs(w).max() > 0.95 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.05 * bound


@pytest.mark.parametrize("make,fan_in", [(lambda **k: nn.Linear(400, 120, **k), 400),
                                          (lambda **k: nn.Conv2d(6, 16, 5, **k), 150)])
def test_normal_init_is_the_decks(make, fan_in):
    m = make(rng=0, init="normal")
    w = m.weight.data.astype(np.float64)
    # std of ~2e4 (or 2.4e3) Gaussian draws is within a few percent of sigma
    assert abs(w.std() - 1 / math.sqrt(fan_in)) < 0.05 / math.sqrt(fan_in)
    assert abs(w.mean()) < 0.1 / math.sqrt(fan_in)
    b = nn.Linear(10, 4000, rng=1, init="normal").bias.data
    assert abs(b.std() - 1) < 0.05


def test_rnn_default_init_bounds():
    m = nn.RNN(10, 64, rng=0)
    k = 1 / math.sqrt(64)
    for p in m.parameters():
        assert np.abs(p.data).max() <= k
    assert np.abs(m.weight_hh_l0.data).max() > 0.95 * k


def test_unknown_init_scheme():
    with pytest.raises(ValueError, match="init"):
        nn.Linear(3, 2, init="xavier")
