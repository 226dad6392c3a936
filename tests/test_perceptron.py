"""Perceptron: the deck's algorithms checked against straight-Python replays, logic gates, Novikoff's bound."""
import numpy as np
import pytest

from cnn_core.models import NotFittedError, Perceptron

GATES_X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
GATES = {"AND": [0, 0, 0, 1], "OR": [0, 1, 1, 1], "NAND": [1, 1, 1, 0]}
XOR = [0, 1, 1, 0]


# ---------------------------------------------------------------- straight-Python replays of the deck's rules

def loss_ref(X, t, w, b):
    """L(w, b) = -sum over points with y (w.x + b) < 0 of y (w.x + b), one point at a time."""
    L = 0.0
    for x_i, t_i in zip(X, t):
        m = t_i * (float(np.dot(w, x_i)) + b)
        if m < 0:
            L -= m
    return L


def errors_ref(X, t, w, b):
    return sum(1 for x_i, t_i in zip(X, t) if t_i * (float(np.dot(w, x_i)) + b) <= 0)


def replay(X, t, algorithm, eta, max_epochs, seed):
    """The three rules for one binary problem, with fit's visiting order (one permutation per pass)."""
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    rng = np.random.default_rng(seed)
    w, b = np.zeros(d), 0.0
    pocket, best = (w.copy(), 0.0), n
    curve, updates = [], 0
    for _ in range(max_epochs):
        if algorithm == "pocket":
            if best == 0:
                break
        elif errors_ref(X, t, w, b) == 0:
            break
        kept = 0
        for i in rng.permutation(n):
            if t[i] * (float(np.dot(w, X[i])) + b) > 0:
                continue
            w_hat, b_hat = w + eta * t[i] * X[i], b + eta * t[i]
            if algorithm == "greedy":
                L, L_hat = loss_ref(X, t, w, b), loss_ref(X, t, w_hat, b_hat)
                better = L_hat < L or (L_hat == L and errors_ref(X, t, w_hat, b_hat) < errors_ref(X, t, w, b))
                if not (better or (b == 0.0 and not w.any())):
                    continue
            w, b = w_hat, b_hat
            kept += 1
            if algorithm == "pocket" and errors_ref(X, t, w, b) < best:
                best, pocket = errors_ref(X, t, w, b), (w.copy(), b)
        updates += kept
        out = pocket if algorithm == "pocket" else (w, b)
        curve.append(loss_ref(X, t, *out))
        if algorithm == "greedy" and kept == 0:
            break
    out = pocket if algorithm == "pocket" else (w, b)
    return out[0], out[1], curve, updates


def noisy_blobs(seed, n=60):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(1.0, 1.0, (n // 2, 3)), rng.normal(-1.0, 1.0, (n - n // 2, 3))])
    y = np.r_[np.ones(n // 2), -np.ones(n - n // 2)]
    return X, y


@pytest.mark.parametrize("algorithm", ["primal", "greedy", "pocket"])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_replay(algorithm, seed):
    X, y = noisy_blobs(seed)
    eta = 0.5
    p = Perceptron(eta=eta, max_epochs=15, algorithm=algorithm, random_state=seed).fit(X, y)
    w, b, curve, updates = replay(X, y, algorithm, eta, 15, seed)
    np.testing.assert_allclose(p.coef_[0], w, rtol=1e-12, atol=1e-12)
    assert p.intercept_[0] == pytest.approx(b, abs=1e-12)
    np.testing.assert_allclose(p.loss_curve_, curve, rtol=1e-10, atol=1e-12)
    assert p.n_iter_ == len(curve)
    assert p.n_updates_ == updates


@pytest.mark.parametrize("algorithm", ["primal", "greedy", "pocket"])
@pytest.mark.parametrize("gate", ["AND", "NAND", "XOR"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_replay_on_gates(algorithm, gate, seed):
    # integer data: points land exactly on the hyperplane, which exercises the greedy rule's tie-break
    t = 2 * np.array(XOR if gate == "XOR" else GATES[gate]) - 1
    p = Perceptron(max_epochs=20, algorithm=algorithm, random_state=seed).fit(GATES_X, t)
    w, b, curve, updates = replay(GATES_X, t, algorithm, 1.0, 20, seed)
    np.testing.assert_array_equal(p.coef_[0], w)
    assert p.intercept_[0] == b
    assert p.loss_curve_ == curve and p.n_updates_ == updates


def test_greedy_loss_never_rises_after_first_pass():
    X, y = noisy_blobs(3, n=200)
    p = Perceptron(algorithm="greedy", random_state=0, max_epochs=100).fit(X, y)
    assert np.all(np.diff(p.loss_curve_) <= 0)
    assert not p.converged_  # the blobs overlap
    assert p.score(X, y) >= 0.85  # Bayes accuracy of these blobs is about 0.96


def test_pocket_keeps_fewest_errors():
    X, y = noisy_blobs(4, n=200)
    primal = Perceptron(algorithm="primal", random_state=0, max_epochs=30).fit(X, y)
    pocket = Perceptron(algorithm="pocket", random_state=0, max_epochs=30).fit(X, y)
    # same visiting order, same updates: the pocket holds the best of the primal's own iterates
    assert pocket.n_updates_ == primal.n_updates_
    assert pocket.score(X, y) >= primal.score(X, y)
    assert pocket.score(X, y) >= 0.9


# ---------------------------------------------------------------- logic gates

@pytest.mark.parametrize("gate", sorted(GATES))
@pytest.mark.parametrize("algorithm", ["primal", "pocket"])
@pytest.mark.parametrize("shuffle", [True, False])
def test_learns_gate(gate, algorithm, shuffle):
    y = np.array(GATES[gate])
    p = Perceptron(algorithm=algorithm, shuffle=shuffle, random_state=0).fit(GATES_X, y)
    assert p.converged_
    np.testing.assert_array_equal(p.predict(GATES_X), y)
    assert p.loss_curve_[-1] == 0.0
    assert p.n_iter_ < p.max_epochs


@pytest.mark.parametrize("algorithm", ["primal", "greedy", "pocket"])
def test_xor_does_not_converge(algorithm):
    p = Perceptron(algorithm=algorithm, max_epochs=200, random_state=0).fit(GATES_X, XOR)
    assert not p.converged_
    assert p.score(GATES_X, XOR) <= 0.75  # no line separates XOR: at least one point is wrong
    if algorithm != "greedy":
        assert p.n_iter_ == 200


# ---------------------------------------------------------------- Novikoff

def separable_with_margin(seed, n=300, d=5, gamma=0.1):
    """Points x in [-1, 1]^d with |w_opt . (x, 1)| >= gamma for a unit w_opt in the augmented space."""
    rng = np.random.default_rng(seed)
    w_opt = rng.normal(size=d + 1)
    w_opt /= np.linalg.norm(w_opt)
    X = rng.uniform(-1.0, 1.0, size=(20 * n, d))
    s = X @ w_opt[:d] + w_opt[d]
    keep = np.abs(s) >= gamma
    X, s = X[keep][:n], s[keep][:n]
    assert X.shape[0] == n
    return X, np.where(s > 0, 1, -1), w_opt


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("eta", [1.0, 0.1])
@pytest.mark.parametrize("shuffle", [True, False])
def test_novikoff_bound(seed, eta, shuffle):
    # Li Hang's form (the proof the deck cites): x^ = (x, 1), ||w^_opt|| = 1, gamma = min_i y_i w^_opt . x^_i,
    # R = max_i ||x^_i||; the primal rule from w = 0, b = 0 makes at most (R / gamma)^2 updates for any eta.
    X, y, w_opt = separable_with_margin(seed)
    X_hat = np.hstack([X, np.ones((X.shape[0], 1))])
    gamma = np.min(y * (X_hat @ w_opt))
    R = np.max(np.linalg.norm(X_hat, axis=1))
    p = Perceptron(eta=eta, shuffle=shuffle, random_state=seed).fit(X, y)
    assert p.converged_
    assert p.score(X, y) == 1.0
    assert 0 < p.n_updates_ <= (R / gamma) ** 2


def test_eta_only_scales_primal_weights():
    X, y, _ = separable_with_margin(5, n=100)
    a = Perceptron(eta=1.0, random_state=0).fit(X, y)
    b = Perceptron(eta=0.25, random_state=0).fit(X, y)
    assert a.n_updates_ == b.n_updates_
    np.testing.assert_allclose(b.coef_, 0.25 * a.coef_, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- labels and one-vs-rest

@pytest.mark.parametrize("labels", [(-1, 1), (2, 7), ("no", "yes"), (False, True)])
def test_any_two_labels(labels):
    y = np.array([labels[v] for v in GATES["AND"]])
    p = Perceptron(random_state=0).fit(GATES_X, y)
    np.testing.assert_array_equal(p.classes_, np.array(labels))
    np.testing.assert_array_equal(p.predict(GATES_X), y)
    z = p.decision_function(GATES_X)
    assert z.shape == (4,) and p.coef_.shape == (1, 2) and p.intercept_.shape == (1,)
    np.testing.assert_array_equal(z > 0, y == labels[1])


def test_one_vs_rest():
    rng = np.random.default_rng(0)
    centers = np.array([[0.0, 8.0], [8.0, -4.0], [-8.0, -4.0]])
    X = np.vstack([c + rng.normal(0, 1.0, (30, 2)) for c in centers])
    y = np.repeat(np.array(["a", "b", "c"]), 30)
    p = Perceptron(random_state=0).fit(X, y)
    assert p.coef_.shape == (3, 2) and p.intercept_.shape == (3,)
    assert p.converged_
    z = p.decision_function(X)
    assert z.shape == (90, 3)
    np.testing.assert_array_equal(p.predict(X), p.classes_[z.argmax(axis=1)])
    assert p.score(X, y) == 1.0
    for k, c in enumerate(p.classes_):  # each row separates its class from the rest
        np.testing.assert_array_equal(z[:, k] > 0, y == c)


def test_get_set_params():
    p = Perceptron(eta=0.5, random_state=3)
    assert p.get_params(deep=True) == {"eta": 0.5, "max_epochs": 1000, "algorithm": "primal",
                                       "shuffle": True, "random_state": 3}
    assert p.set_params(algorithm="pocket", max_epochs=7) is p
    assert p.get_params()["algorithm"] == "pocket" and p.max_epochs == 7
    with pytest.raises(ValueError, match="invalid parameter 'lr'"):
        p.set_params(lr=0.1)


# ---------------------------------------------------------------- bad input

def test_predict_before_fit():
    with pytest.raises(NotFittedError, match="not fitted"):
        Perceptron().predict(GATES_X)
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)


def test_wrong_feature_count():
    p = Perceptron().fit(GATES_X, GATES["OR"])
    with pytest.raises(ValueError, match="X: expected 2 features"):
        p.predict(np.zeros((3, 3)))


@pytest.mark.parametrize("X, exc, match", [
    (np.zeros(4), ValueError, "2-D"),
    (np.zeros((4, 2, 1)), ValueError, "2-D"),
    (np.zeros((0, 2)), ValueError, "at least one sample"),
    (np.array([["a", "b"]] * 4), TypeError, "numeric"),  # a wrong dtype is a wrong type (issue 8's policy)
    (np.array([[0, 0], [0, 1], [1, np.nan], [1, 1]]), ValueError, "finite"),
    (np.array([[0, 0], [0, 1], [1, np.inf], [1, 1]]), ValueError, "finite"),
])
def test_bad_X(X, exc, match):
    with pytest.raises(exc, match=f"X: .*{match}"):
        Perceptron().fit(X, GATES["OR"][:len(X)] if len(X) in (0, 4) else GATES["OR"])


def test_y_not_1d():
    with pytest.raises(ValueError, match="y: expected a 1-D"):
        Perceptron().fit(GATES_X, np.array(GATES["OR"])[:, None].repeat(2, axis=1))


def test_y_column_vector_is_ravelled_with_a_warning():
    """scikit-learn's rule: y of shape (n, 1) is taken as (n,), with a DataConversionWarning."""
    from cnn_core.models._base import DataConversionWarning
    with pytest.warns(DataConversionWarning, match="A column-vector y was passed"):
        column = Perceptron(random_state=0).fit(GATES_X, np.array(GATES["OR"])[:, None])
    flat = Perceptron(random_state=0).fit(GATES_X, np.array(GATES["OR"]))
    np.testing.assert_array_equal(column.coef_, flat.coef_)


def test_y_wrong_length():
    with pytest.raises(ValueError, match="y: expected 4 labels"):
        Perceptron().fit(GATES_X, [0, 1, 1])


def test_single_class():
    with pytest.raises(ValueError, match="y: expected at least 2 classes"):
        Perceptron().fit(GATES_X, [1, 1, 1, 1])


@pytest.mark.parametrize("params, exc, match", [
    ({"eta": 0.0}, ValueError, "eta"), ({"eta": -1.0}, ValueError, "eta"),
    ({"eta": float("nan")}, ValueError, "eta"),
    ({"max_epochs": 0}, ValueError, "max_epochs"), ({"max_epochs": 2.5}, TypeError, "max_epochs"),
    ({"algorithm": "dual"}, ValueError, "algorithm"),
])
def test_bad_hyperparameters(params, exc, match):
    p = Perceptron(**params)  # accepted as given (scikit-learn style), rejected at fit time
    with pytest.raises(exc, match=match):
        p.fit(GATES_X, GATES["OR"])
