"""The deck's perceptron on the logic gates: it learns AND, OR and NAND, and cannot learn XOR.
Then a 2-4-1 MLP (tanh hidden layer, sigmoid output) learns XOR, as the deck's MLP section says it must.

Run: python examples/perceptron_logic_gates.py
"""
import numpy as np

import cnn_core
from cnn_core.metrics import accuracy_score
from cnn_core.models import Perceptron

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
GATES = {"AND": [0, 0, 0, 1], "OR": [0, 1, 1, 1], "NAND": [1, 1, 1, 0], "XOR": [0, 1, 1, 0]}


def perceptron_part() -> None:
    print("Perceptron (primal algorithm, eta = 1, w0 = 0, b0 = 0, at most 1000 passes)")
    print(f"{'gate':5} {'targets':10} {'predicted':10} {'converged':9} {'passes':>6} {'updates':>7} "
          f"{'final L':>7}  w, b")
    for gate, y in GATES.items():
        p = Perceptron(random_state=0).fit(X, y)
        w, b = p.coef_[0], p.intercept_[0]
        print(f"{gate:5} {str(y):10} {str(p.predict(X).tolist()):10} {str(p.converged_):9} {p.n_iter_:6d} "
              f"{p.n_updates_:7d} {p.loss_curve_[-1]:7.1f}  w = {w.tolist()}, b = {b}")
        if not p.converged_:
            print(f"  -> {gate} is not linearly separable: after {p.n_iter_} passes some point is still "
                  f"misclassified (training accuracy {p.score(X, y):.2f}); the perceptron cannot learn it.")


def mlp_part() -> None:
    from cnn_core import nn, optim

    print("\nMLP 2-4-1 (tanh, sigmoid), BCELoss, SGD lr 1.0, full batch, 2000 epochs on XOR")
    cnn_core.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1), nn.Sigmoid())
    Xf = X.astype(np.float32)
    y = np.array(GATES["XOR"], dtype=np.float32)[:, None]
    history = cnn_core.fit(model, nn.BCELoss(), optim.SGD(model.parameters(), lr=1.0), Xf, y,
                           epochs=2000, batch_size=4, seed=0)
    model.eval()
    a = model(Xf)[:, 0]
    predicted = (a > 0.5).astype(int)
    print(f"  outputs a = {[round(float(v), 3) for v in a.ravel()]}, predicted {predicted.tolist()}, "
          f"targets {GATES['XOR']}")
    print(f"  final loss {history.train_loss[-1]:.4f}; XOR learned: {accuracy_score(GATES['XOR'], predicted) == 1.0}")


if __name__ == "__main__":
    perceptron_part()
    mlp_part()
