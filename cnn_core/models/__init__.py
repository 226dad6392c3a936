"""The models of the deck: Perceptron and LinearSVM (scikit-learn estimator API), and the neural models
mlp, lenet5 and RNNClassifier built from cnn_core.nn layers."""
from cnn_core.models._base import NotFittedError
from cnn_core.models.lenet import lenet5
from cnn_core.models.mlp import mlp
from cnn_core.models.perceptron import Perceptron
from cnn_core.models.rnn import RNNClassifier
from cnn_core.models.svm import LinearSVM

__all__ = ["NotFittedError", "Perceptron", "LinearSVM", "mlp", "lenet5", "RNNClassifier"]
