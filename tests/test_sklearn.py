"""cnn_core's estimators inside scikit-learn: its conformance suite and its model-selection tools.

Skipped without scikit-learn (the [test] extra installs it); tests/test_sklearn_protocol.py covers the same
protocol with scikit-learn absent.
"""
from __future__ import annotations

import functools
import pickle
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from sklearn.base import clone, is_classifier  # noqa: E402
from sklearn.datasets import load_digits, make_blobs  # noqa: E402
from sklearn.exceptions import DataConversionWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

from cnn_core import _random, nn, optim  # noqa: E402
from cnn_core.models import LinearSVM, Perceptron, mlp  # noqa: E402
from cnn_core.sklearn import NeuralNetClassifier  # noqa: E402

ESTIMATORS = {
    "Perceptron": lambda: Perceptron(random_state=0),
    "LinearSVM": lambda: LinearSVM(random_state=0),
    "NeuralNetClassifier": lambda: NeuralNetClassifier(random_state=0),
}


@pytest.fixture(scope="module")
def digits_3_vs_5():
    X, y = load_digits(return_X_y=True)
    keep = (y == 3) | (y == 5)
    return X[keep], y[keep]


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=240, centers=3, random_state=1)
    return X, y


# The estimators implement the protocol without inheriting sklearn.base.BaseEstimator (importing it would
# add seconds to `import cnn_core`); check_estimator warns about that and then runs every check all the same.
@pytest.mark.filterwarnings("ignore:Estimator .* does not inherit from `sklearn.base.BaseEstimator`")
@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_check_estimator(name):
    """scikit-learn's conformance suite, every check (check_estimator raises on the first failure)."""
    check_estimator(ESTIMATORS[name]())


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_is_classifier_and_tags(name):
    from sklearn.utils import get_tags
    est = ESTIMATORS[name]()
    assert is_classifier(est)
    tags = get_tags(est)
    assert tags.estimator_type == "classifier" and tags.target_tags.required
    assert not tags.input_tags.sparse and not tags.input_tags.allow_nan


def test_grid_search_over_a_pipeline_gives_finite_scores(digits_3_vs_5):
    """The issue's report: with scikit-learn >= 1.6 this scored every fold NaN and still named a 'best'."""
    X, y = digits_3_vs_5
    pipe = Pipeline([("scale", StandardScaler()), ("perceptron", Perceptron(random_state=0))])
    search = GridSearchCV(pipe, {"perceptron__eta": [0.1, 1.0], "perceptron__max_epochs": [2, 20]}, cv=3,
                          error_score="raise").fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert scores.shape == (4,) and np.isfinite(scores).all()
    assert search.best_score_ > 0.9
    assert search.best_estimator_.predict(X).shape == y.shape
    assert search.score(X, y) > 0.9


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_cross_val_score_in_a_pipeline(name, digits_3_vs_5):
    X, y = digits_3_vs_5
    est = ESTIMATORS[name]()
    if name == "NeuralNetClassifier":
        est.set_params(lr=0.01)
    scores = cross_val_score(make_pipeline(StandardScaler(), est), X, y, cv=3, error_score="raise")
    assert scores.shape == (3,) and np.isfinite(scores).all()
    assert scores.min() > 0.85, scores


def test_grid_search_over_neural_net_parameters(blobs):
    X, y = blobs
    search = GridSearchCV(NeuralNetClassifier(random_state=0, max_epochs=5),
                          {"lr": [1e-4, 3e-2], "batch_size": [16, 64]}, cv=3, error_score="raise").fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all()
    # 5 epochs at lr 1e-4 barely move the weights; lr 3e-2 separates the blobs
    assert search.best_params_["lr"] == 3e-2 and search.best_score_ > 0.9


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_clone_and_pickle(name, blobs):
    X, y = blobs
    est = ESTIMATORS[name]().set_params(max_epochs=7)
    fitted = est.fit(X, y)
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    with pytest.raises(NotFittedError):
        copy.predict(X)
    restored = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(restored.predict(X), fitted.predict(X))
    np.testing.assert_array_equal(restored.classes_, fitted.classes_)
    assert restored.n_features_in_ == X.shape[1]


def test_neural_net_is_seeded_and_deterministic(blobs):
    X, y = blobs
    before = _random._global_rng
    a = NeuralNetClassifier(random_state=3).fit(X, y).predict_proba(X)
    b = NeuralNetClassifier(random_state=3).fit(X, y).predict_proba(X)
    c = NeuralNetClassifier(random_state=4).fit(X, y).predict_proba(X)
    assert _random._global_rng is before  # the seeded generator does not outlive fit
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    np.testing.assert_allclose(a.sum(axis=1), 1.0, rtol=1e-6)


def test_neural_net_seeds_dropout_too(blobs):
    """random_state also fixes randomness inside the network (Dropout draws from the global generator)."""
    X, y = blobs

    def with_dropout(n_features, n_classes):
        return nn.Sequential(nn.Linear(n_features, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, n_classes))

    runs = [NeuralNetClassifier(with_dropout, lr=0.01, random_state=5).fit(X, y).predict_proba(X) for _ in range(2)]
    np.testing.assert_array_equal(*runs)


def test_neural_net_module_is_built_for_the_data(blobs):
    X, y = blobs
    seen = []

    def module(n_features, n_classes):
        seen.append((n_features, n_classes))
        return mlp([n_features, 16, n_classes], "tanh", rng=0)

    clf = NeuralNetClassifier(module, lr=0.01, max_epochs=30, random_state=0).fit(X[:, :2], y)
    assert seen == [(2, 3)]
    assert isinstance(clf.module_, nn.Sequential) and clf.module_[0].weight.shape == (16, 2)
    assert clf.score(X[:, :2], y) > 0.9
    assert clf.n_iter_ == 30 and len(clf.history_.train_loss) == 30
    assert clf.history_.train_loss[-1] < clf.history_.train_loss[0]
    # partial functions and other optimizers/criteria, as in skorch
    clf = NeuralNetClassifier(functools.partial(mlp_like, hidden=8), criterion=nn.CrossEntropyLoss,
                              optimizer=optim.SGD, lr=0.1, max_epochs=30, random_state=0).fit(X, y)
    assert clf.module_[0].weight.shape == (8, X.shape[1]) and isinstance(clf.optimizer_, optim.SGD)
    assert clf.score(X, y) > 0.9


def mlp_like(n_features, n_classes, hidden):
    return mlp([n_features, hidden, n_classes], "relu", rng=0)


def test_neural_net_binary_with_one_output(blobs):
    """A single-output network with BCEWithLogitsLoss: predict_proba is [1 - sigmoid, sigmoid]."""
    X, y = blobs
    y = np.where(y == 0, "a", "b")
    clf = NeuralNetClassifier(lambda n_features, n_classes: mlp([n_features, 16, 1], "relu", rng=0),
                              criterion=nn.BCEWithLogitsLoss, lr=0.01, max_epochs=20, random_state=0).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert clf.score(X, y) > 0.95


def test_neural_net_partial_fit(blobs):
    X, y = blobs
    clf = NeuralNetClassifier(lr=0.01, max_epochs=2, random_state=0)
    # the first call may see only some of the classes: `classes` names them all
    clf.partial_fit(X[y != 2], y[y != 2], classes=[0, 1, 2])
    assert clf.classes_.tolist() == [0, 1, 2] and clf.n_iter_ == 2
    weights = clf.module_[0].weight.data.copy()
    module = clf.module_
    clf.partial_fit(X, y)
    assert clf.module_ is module and clf.n_iter_ == 4  # trained on, not rebuilt
    assert not np.array_equal(weights, clf.module_[0].weight.data)
    with pytest.raises(ValueError, match="y: expected labels among classes"):
        clf.partial_fit(X, y + 1)
    with pytest.raises(ValueError, match="X: expected 2 features"):
        clf.partial_fit(X[:, :1], y)
    with pytest.raises(ValueError, match="classes: expected the classes of the first"):
        clf.partial_fit(X, y, classes=[0, 1])
    # two runs of the same calls give the same network
    other = NeuralNetClassifier(lr=0.01, max_epochs=2, random_state=0)
    other.partial_fit(X[y != 2], y[y != 2], classes=[0, 1, 2]).partial_fit(X, y)
    np.testing.assert_array_equal(other.predict_proba(X), clf.predict_proba(X))


@pytest.mark.parametrize("params, exc, match", [
    ({"lr": 0.0}, ValueError, "lr: expected"),
    ({"lr": "0.1"}, TypeError, "lr: expected"),
    ({"max_epochs": 0}, ValueError, "max_epochs: expected"),
    ({"batch_size": 1.5}, TypeError, "batch_size: expected"),
    ({"shuffle": 1}, TypeError, "shuffle: expected"),
    ({"random_state": -1}, ValueError, "random_state: expected"),
    ({"module": "mlp"}, TypeError, "module: expected"),
    ({"module": lambda n_features, n_classes: "not a module"}, TypeError, "module: expected a callable returning"),
    ({"optimizer": None}, TypeError, "optimizer: expected"),
    ({"predict_nonlinearity": "softmax"}, TypeError, "predict_nonlinearity: expected"),
    ({"verbose": 3}, ValueError, "verbose: expected"),
])
def test_neural_net_parameters_checked_at_fit(params, exc, match, blobs):
    """scikit-learn's rule: the constructor stores, fit validates."""
    X, y = blobs
    clf = NeuralNetClassifier(**params)
    assert all(clf.get_params()[k] is v for k, v in params.items())
    with pytest.raises(exc, match=match):
        clf.fit(X, y)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_sklearn_exception_classes(name, blobs):
    """With scikit-learn loaded, its own NotFittedError and DataConversionWarning catch cnn_core's."""
    X, y = blobs
    est = ESTIMATORS[name]()
    with pytest.raises(NotFittedError, match="not fitted yet"):
        est.predict(X)
    with pytest.warns(DataConversionWarning, match="A column-vector y was passed"):
        est.fit(X, y[:, None])
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        est.fit(X, y + 0.5)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_data_frames_and_feature_names(name, blobs):
    pd = pytest.importorskip("pandas")
    X, y = blobs
    frame = pd.DataFrame(X, columns=["a", "b"])
    est = ESTIMATORS[name]().fit(frame, y)
    assert est.feature_names_in_.tolist() == ["a", "b"]
    np.testing.assert_array_equal(est.predict(frame), ESTIMATORS[name]().fit(X, y).predict(X))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.predict(frame)  # the same names: no warning
    with pytest.raises(ValueError, match="Feature names must be in the same order"):
        est.predict(frame[["b", "a"]])
    with pytest.warns(UserWarning, match="X does not have valid feature names"):
        est.predict(X)
    est.fit(X, y)
    assert not hasattr(est, "feature_names_in_")  # a refit without names forgets them
