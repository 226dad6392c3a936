"""Embedding: lookup against indexing, scatter-add backward against a loop (repeated indices, padding_idx),
finite differences, input validation, and fit/evaluate/predict/summary/save on a model that reads indices."""
import numpy as np
import pytest
from oracles_layers import embedding_backward

import cnn_core
from cnn_core import nn, optim
from cnn_core.gradcheck import gradcheck


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("padding_idx", [None, 2, -1])
def test_forward_and_scatter_add_backward(dtype, padding_idx):
    emb = nn.Embedding(6, 4, padding_idx=padding_idx, dtype=dtype, rng=0)
    pad = None if padding_idx is None else padding_idx % 6
    if pad is not None:
        assert not emb.weight.data[pad].any()
    idx = np.array([[1, 2, 2, 5], [5, 5, 0, 1], [2, 3, 1, 1]], np.uint8)
    y = emb(idx)
    assert y.shape == (3, 4, 4) and y.dtype == dtype
    assert np.array_equal(y, emb.weight.data[idx.astype(np.intp)])
    dy = np.random.default_rng(1).standard_normal(y.shape).astype(dtype)
    assert emb.backward(dy) is None
    ref = embedding_backward(idx, dy.astype(np.float64), 6, 4, pad)
    # float32 sums of up to 4 rows of O(1) values may cancel: the error bound is a few ulps of sum |terms|,
    # so an absolute tolerance of 4 * 2**-23 * 4 (about 2e-6) rather than a relative one
    tol = 2e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(emb.weight.grad, ref, rtol=tol, atol=tol)
    if pad is not None:
        assert not emb.weight.grad[pad].any()


def test_backward_passes_finite_differences_with_repeated_indices_and_padding():
    idx = np.array([[0, 1, 1, 4], [4, 4, 0, 2]])
    assert gradcheck(nn.Embedding(5, 3, dtype=np.float64, rng=2), (idx,))
    # padding_idx: the output does depend on the padding row, but by definition (PyTorch's) it gets no
    # gradient; every other row gets exactly the finite-difference-checked gradient of the layer without it
    plain, padded = nn.Embedding(5, 3, dtype=np.float64, rng=2), nn.Embedding(5, 3, padding_idx=0, dtype=np.float64)
    dy = np.random.default_rng(3).standard_normal((2, 4, 3))
    for m in (plain, padded):
        m(idx)
        m.backward(dy)
    assert not padded.weight.grad[0].any() and plain.weight.grad[0].any()
    assert np.array_equal(padded.weight.grad[1:], plain.weight.grad[1:])


def test_inputs_are_validated():
    emb = nn.Embedding(4, 2)
    with pytest.raises(TypeError, match="integer indices"):
        emb(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"indices in \[0, 4\).*got values in \[0, 4\]"):
        emb(np.array([0, 4]))
    with pytest.raises(ValueError, match=r"got values in \[-1, 1\]"):
        emb(np.array([-1, 1]))
    with pytest.raises(ValueError, match="padding_idx"):
        nn.Embedding(4, 2, padding_idx=4)
    with pytest.raises(ValueError, match="num_embeddings"):
        nn.Embedding(0, 2)


def _model():
    """Embedding first, and a BatchNorm1d over the 3 positions (N, 3, 4), so that save/load carries buffers too."""
    return nn.Sequential(nn.Embedding(10, 4, rng=0), nn.BatchNorm1d(3), nn.Flatten(), nn.Linear(12, 3, rng=1))


def test_fit_evaluate_predict_and_summary_take_integer_inputs(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 10, (60, 3))
    y = X[:, 0] % 3  # learnable from the first token alone
    model = _model()
    before = cnn_core.evaluate(model, nn.CrossEntropyLoss(), X, y).loss
    cnn_core.fit(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=0.05), X, y, epochs=30,
                 batch_size=20, seed=0)
    after = cnn_core.evaluate(model, nn.CrossEntropyLoss(), X, y)
    assert after.loss < before / 3 and after.accuracy > 0.9
    assert cnn_core.predict(model, X).shape == (60, 3)
    text = cnn_core.summary(model, (3,))
    assert "input (N, 3) int64" in text.splitlines()[0] and "(N, 3, 4)" in text
    cnn_core.save(model, tmp_path / "emb.npz")
    back = cnn_core.load(tmp_path / "emb.npz")
    assert back[1].num_batches_tracked == model[1].num_batches_tracked == 90  # 30 epochs of 3 batches
    for k, v in model.state_dict().items():
        assert v.tobytes() == back.state_dict()[k].tobytes()
    assert np.array_equal(cnn_core.predict(back, X), cnn_core.predict(model, X))


def test_a_float_model_still_refuses_integer_inputs():
    with pytest.raises(TypeError, match="floating-point"):
        cnn_core.predict(nn.Sequential(nn.Linear(3, 2)), np.ones((2, 3), np.int64))
