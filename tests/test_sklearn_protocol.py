"""scikit-learn's estimator protocol as cnn_core implements it, tested without scikit-learn.

This file never imports scikit-learn; the subprocess tests block it outright (a sys.meta_path finder that
refuses `sklearn`), so what they show holds on an installation without it.
"""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cnn_core
from cnn_core.models import LinearSVM, NotFittedError, Perceptron
from cnn_core.models._base import DataConversionWarning
from cnn_core.sklearn import NeuralNetClassifier

PKG_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(cnn_core.__file__)))
CLASSES = [Perceptron, LinearSVM, NeuralNetClassifier]
RNG = np.random.default_rng(0)
X = RNG.normal(size=(60, 3))
Y = np.where(X[:, 0] - X[:, 1] > 0, "pos", "neg")


class FakeSparse:
    """Quacks like a scipy.sparse matrix (scipy is not a dependency): format, toarray, tocsr."""

    format = "csr"
    shape = (60, 3)

    def toarray(self) -> np.ndarray:
        return np.zeros(self.shape)

    def tocsr(self) -> "FakeSparse":
        return self


def fitted(cls):
    return cls(random_state=0, **({"lr": 0.05} if cls is NeuralNetClassifier else {})).fit(X, Y)


@pytest.mark.parametrize("cls", CLASSES)
def test_params_round_trip_and_hand_clone(cls):
    est = cls()
    params = est.get_params()
    assert list(params) == [p for p in cls.__init__.__code__.co_varnames[1:cls.__init__.__code__.co_argcount]]
    assert est.set_params(max_epochs=3, random_state=1) is est
    assert est.get_params()["max_epochs"] == 3 and est.get_params()["random_state"] == 1
    with pytest.raises(ValueError, match="invalid parameter 'nope'"):
        est.set_params(nope=1)
    # what scikit-learn's clone does: rebuild from get_params(deep=False); the rebuilt one is unfitted
    model = fitted(cls)
    copy = type(model)(**model.get_params(deep=False))
    assert copy.get_params() == model.get_params() and not copy.__sklearn_is_fitted__()
    np.testing.assert_array_equal(copy.fit(X, Y).predict(X), model.predict(X))  # seeded: the same model
    assert repr(cls(max_epochs=3)).startswith(f"{cls.__name__}(") and "max_epochs=3" in repr(cls(max_epochs=3))


@pytest.mark.parametrize("cls", CLASSES)
def test_constructor_only_stores(cls):
    """scikit-learn's rule: anything is accepted by __init__ and kept as given; fit validates."""
    est = cls(max_epochs="many", random_state=-3)
    assert est.max_epochs == "many" and est.random_state == -3
    assert vars(est) == est.get_params()  # no other attribute set in __init__
    with pytest.raises(TypeError, match="max_epochs: expected"):
        est.fit(X, Y)
    est.set_params(max_epochs=2)
    with pytest.raises(ValueError, match="random_state: expected a non-negative seed"):
        est.fit(X, Y)


@pytest.mark.parametrize("cls", CLASSES)
def test_fitted_attributes(cls):
    est = cls()
    assert est._estimator_type == "classifier"
    assert not est.__sklearn_is_fitted__() and not hasattr(est, "n_features_in_")
    with pytest.raises(NotFittedError, match="not fitted yet"):
        est.predict(X)
    # scikit-learn's NotFittedError is both of these, and code catches it as either
    with pytest.raises(ValueError):
        est.predict(X)
    with pytest.raises(AttributeError):
        est.predict(X)
    est = fitted(cls)
    assert est.__sklearn_is_fitted__() and est.n_features_in_ == 3
    assert est.classes_.tolist() == ["neg", "pos"]
    assert est.score(X, Y) > 0.9
    with pytest.raises(ValueError, match="X: expected 3 features .*X has 2 features, but .* is expecting 3"):
        est.predict(X[:, :2])
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.predict(X), est.predict(X))


@pytest.mark.parametrize("cls", CLASSES)
def test_input_rules(cls):
    est = cls(random_state=0)
    with pytest.raises(TypeError, match=r"X: sparse input is not supported; convert with X\.toarray\(\)"):
        est.fit(FakeSparse(), Y)
    with pytest.raises(TypeError, match="Complex data not supported"):
        est.fit(X + 1j, Y)
    with pytest.raises(ValueError, match="Complex data not supported"):  # scikit-learn's class for it
        est.fit(X + 1j, Y)
    with pytest.raises(TypeError, match="X: expected numbers, got an object array .*argument must be"):
        est.fit(np.array([[{"a": 1}, 2.0]] * 60, dtype=object), Y)
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        est.fit(X, X[:, 0])
    with pytest.raises(ValueError, match="requires y to be passed, but the target y is None"):
        est.fit(X, None)
    with pytest.raises(ValueError, match="Reshape your data"):
        est.fit(X[:, 0], Y)
    with pytest.raises(ValueError, match=r"0 feature\(s\) \(shape=\(60, 0\)\) while a minimum of 1"):
        est.fit(X[:, :0], Y)
    with pytest.raises(ValueError, match="1 class"):
        est.fit(X[:1], Y[:1])
    with pytest.raises(ValueError, match="X: expected finite values, got NaN"):
        est.fit(np.where(X > 2, np.nan, X), Y)
    # accepted: object arrays of numbers, integral float labels, a column-vector y (with a warning)
    as_objects = est.fit(X.astype(object), Y).predict(X)
    np.testing.assert_array_equal(as_objects, cls(random_state=0).fit(X, Y).predict(X))
    assert est.fit(X, (Y == "pos") * 1.0).classes_.tolist() == [0.0, 1.0]
    with pytest.warns(DataConversionWarning, match="A column-vector y was passed when a 1d array was expected"):
        est.fit(X, Y[:, None])
    assert est.classes_.tolist() == ["neg", "pos"]


def _run(script: str, cwd, prelude: str = "") -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=PKG_PARENT, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(script)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


BLOCK_SKLEARN = """
import sys

class BlockSklearn:
    def find_spec(self, name, path=None, target=None):
        if name == "sklearn" or name.startswith("sklearn."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None

sys.meta_path.insert(0, BlockSklearn())
"""


def test_estimators_work_without_sklearn(tmp_path):
    """With `import sklearn` failing, the three estimators fit, predict, pickle and check their input."""
    r = _run("""
    import pickle, warnings
    import numpy as np
    try:
        import sklearn
    except ModuleNotFoundError:
        pass
    else:
        raise SystemExit("the finder did not block sklearn")
    from cnn_core.models import LinearSVM, NotFittedError, Perceptron
    from cnn_core.models._base import DataConversionWarning
    from cnn_core.sklearn import NeuralNetClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 4))
    y = np.where(X[:, 0] + X[:, 2] > 0, 7, 3)
    for est in (Perceptron(random_state=0), LinearSVM(random_state=0), NeuralNetClassifier(lr=0.05, random_state=0)):
        name = type(est).__name__
        try:
            est.predict(X)
        except NotFittedError as e:
            assert type(e) is NotFittedError, type(e).__mro__  # cnn_core's own class, no scikit-learn flavour
        else:
            raise AssertionError("predict before fit did not raise")
        est.fit(X, y)
        assert est.classes_.tolist() == [3, 7] and est.n_features_in_ == 4, name
        assert est.score(X, y) > 0.9, (name, est.score(X, y))
        again = pickle.loads(pickle.dumps(est))
        assert (again.predict(X) == est.predict(X)).all(), name
        clone = type(est)(**est.get_params(deep=False)).fit(X, y)
        assert (clone.predict(X) == est.predict(X)).all(), name
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            est.fit(X, y[:, None])
        assert [type(m.message) for m in w] == [DataConversionWarning], [str(m.message) for m in w]
        for bad, word in ((X + 1j, "Complex data not supported"), (X[:, 0], "Reshape your data")):
            try:
                est.fit(bad, y)
            except ValueError as e:
                assert word in str(e), str(e)
            else:
                raise AssertionError(f"{name} accepted {word}")
        try:
            est.__sklearn_tags__()
        except ModuleNotFoundError:
            pass  # only scikit-learn calls it
        else:
            raise AssertionError("__sklearn_tags__ worked without scikit-learn")
    assert not any(m == "sklearn" or m.startswith("sklearn.") for m in sys.modules)
    print("ok")
    """, tmp_path, prelude=BLOCK_SKLEARN)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]


def test_import_does_not_load_sklearn(tmp_path):
    """cnn_core never imports scikit-learn itself (it takes seconds): not at import, not to fit or predict."""
    r = _run("""
    import sys
    import numpy as np
    import cnn_core, cnn_core.models, cnn_core.sklearn
    from cnn_core.models import Perceptron
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    Perceptron().fit(X, [0, 1, 1, 1]).predict(X)
    print(sorted(m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")))
    """, tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "[]"
