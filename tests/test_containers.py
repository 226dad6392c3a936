"""Residual, Concat and ModuleList: forward against the composition written out, backward by finite
differences in float64, PyTorch's state_dict keys, configs and save/load, and shape errors."""
import numpy as np
import pytest

import cnn_core
from cnn_core import nn
from cnn_core.gradcheck import gradcheck

F64 = np.float64


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _block(c=3):
    return nn.Sequential(nn.Conv2d(c, c, 3, padding=1, dtype=F64, rng=0), nn.BatchNorm2d(c, dtype=F64), nn.ReLU(),
                         nn.Conv2d(c, c, 3, padding=1, dtype=F64, rng=1))


def test_residual_identity_forward_and_finite_differences():
    res = nn.Residual(_block())
    x = rand(2, 3, 4, 4)
    block_out = res.block(x)
    np.testing.assert_allclose(res(x), block_out + x, rtol=1e-14)
    assert gradcheck(res, (x,))


def test_residual_with_projection_shortcut():
    block = nn.Sequential(nn.Conv2d(2, 4, 3, stride=2, padding=1, dtype=F64, rng=0), nn.Tanh())
    shortcut = nn.Conv2d(2, 4, 1, stride=2, dtype=F64, rng=1)
    res = nn.Residual(block, shortcut)
    x = rand(2, 2, 5, 5, seed=1)
    np.testing.assert_allclose(res(x), block(x) + shortcut(x), rtol=1e-14)
    assert gradcheck(res, (x,))
    assert [k for k in res.state_dict()] == ["block.0.weight", "block.0.bias", "shortcut.weight", "shortcut.bias"]


def test_residual_shape_mismatch_is_a_value_error():
    res = nn.Residual(nn.Linear(3, 4))
    with pytest.raises(ValueError, match="Residual: block: expected an output of the input's shape"):
        res(np.ones((2, 3), np.float32))


@pytest.mark.parametrize("dim", [1, -1])
def test_concat_forward_and_finite_differences(dim):
    branches = [nn.Conv2d(2, 3, 1, dtype=F64, rng=0), nn.Sequential(nn.Conv2d(2, 1, 3, padding=1, dtype=F64, rng=1),
                                                                    nn.ReLU()), nn.Identity()]
    if dim == -1:
        branches = [nn.Linear(4, 2, dtype=F64, rng=0), nn.Sequential(nn.Linear(4, 5, dtype=F64, rng=1), nn.Tanh())]
    cat = nn.Concat(*branches, dim=dim)
    x = rand(2, 2, 3, 3) if dim == 1 else rand(3, 4)
    np.testing.assert_allclose(cat(x), np.concatenate([b(x) for b in branches], axis=dim), rtol=1e-14)
    assert gradcheck(cat, (x,))


def test_concat_disagreeing_branches_are_a_value_error():
    cat = nn.Concat(nn.Conv2d(1, 2, 3), nn.Conv2d(1, 2, 1))
    with pytest.raises(ValueError, match="agree on every dimension but dim=1"):
        cat(np.ones((1, 1, 5, 5), np.float32))
    with pytest.raises(ValueError, match="branches"):
        nn.Concat()


def test_state_dict_keys_and_save_load_round_trip(tmp_path):
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1, rng=0), nn.BatchNorm2d(4), nn.ReLU(),
        nn.Residual(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, rng=1), nn.BatchNorm2d(4))),
        nn.Concat(nn.Conv2d(4, 2, 1, rng=2), nn.MaxPool2d(1)),
        nn.Flatten(), nn.Dropout(0.2), nn.Linear(6 * 16, 3, rng=3))
    keys = list(model.state_dict())
    assert keys[:7] == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                        "1.num_batches_tracked"]
    assert "3.block.1.running_var" in keys and "4.0.weight" in keys and "7.weight" in keys
    x = rand(5, 1, 4, 4).astype(np.float32)
    for _ in range(2):
        model(x)
    cnn_core.save(model, tmp_path / "m.npz")
    back = cnn_core.load(tmp_path / "m.npz")
    assert repr(back) == repr(model)
    for (k, v), (k2, v2) in zip(model.state_dict().items(), back.state_dict().items()):
        assert k == k2 and v.tobytes() == v2.tobytes()
    assert np.array_equal(model.eval()(x), back.eval()(x))


def test_module_list_registers_its_modules():
    layers = nn.ModuleList([nn.Linear(2, 3, rng=0), nn.ReLU()])
    layers.append(nn.Linear(3, 1, rng=1))
    assert len(layers) == 3 and isinstance(layers[2], nn.Linear)
    assert [k for k in layers.state_dict()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert len(layers.parameters()) == 4 and len(layers[:2]) == 2
    back = nn.module_from_config(nn.module_to_config(layers))
    assert repr(back) == repr(layers)
    with pytest.raises(TypeError, match="module: expected a Module"):
        layers.append(3)
