"""predict/evaluate's per-call work (issue 10, per-layer overhead): a model already in eval mode is not
switched and restored on every call, X is screened for NaN/inf once (not again by the first layer), and the
boundary checks stay."""
from __future__ import annotations

import numpy as np
import pytest

from cnn_core import evaluate, nn, predict
from cnn_core.models import lenet5

X = np.random.default_rng(0).random((10, 1, 28, 28), dtype=np.float32)
Y = np.arange(10) % 10


def test_a_model_in_eval_mode_is_not_switched(monkeypatch):
    model = lenet5().eval()
    calls = []
    for m in model.modules():
        monkeypatch.setattr(m, "train", lambda mode=True, m=m: calls.append((m, mode)) or m)
    out = predict(model, X)
    evaluate(model, nn.CrossEntropyLoss(), X, Y)
    assert calls == []
    assert out.shape == (10, 10) and all(not m.training for m in model.modules())


def test_mixed_modes_are_restored_and_results_agree():
    model = lenet5()
    model[2].eval()                                    # a mix: one pooling layer alone in eval mode
    before = [m.training for m in model.modules()]
    out = predict(model, X, batch_size=3)
    assert [m.training for m in model.modules()] == before
    np.testing.assert_array_equal(out, predict(model.eval(), X, batch_size=3))


def test_the_boundary_still_screens_x_once_and_the_first_layer_is_not_asked_again(monkeypatch):
    model = lenet5().eval()
    bad = X.copy()
    bad[3, 0, 5, 5] = np.nan
    with pytest.raises(ValueError, match="X: expected finite"):
        predict(model, bad)
    import cnn_core.nn.module as module
    screened = []
    real = module.check_finite
    monkeypatch.setattr(module, "check_finite", lambda x, name: screened.append(name) or real(x, name))
    predict(model, X, batch_size=4)
    assert screened == []                              # predict's own screen covered every batch
    model(X)                                           # a direct call still screens its input
    assert screened == ["Conv2d: x"]
