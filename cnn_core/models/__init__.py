"""The models of the deck with scikit-learn's estimator API (Perceptron, LinearSVM)."""
from cnn_core.models._base import NotFittedError
from cnn_core.models.perceptron import Perceptron
from cnn_core.models.svm import LinearSVM

__all__ = ["NotFittedError", "Perceptron", "LinearSVM"]
