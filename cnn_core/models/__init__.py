"""The models of the deck: Perceptron and LinearSVM (scikit-learn estimator API), and the neural models
mlp, lenet5 and RNNClassifier built from cnn_core.nn layers, and the modern small_cnn and small_resnet."""
from cnn_core.models._base import ConvergenceWarning, NotFittedError
from cnn_core.models.lenet import lenet5
from cnn_core.models.mlp import mlp
from cnn_core.models.perceptron import Perceptron
from cnn_core.models.rnn import RNNClassifier
from cnn_core.models.small_cnn import small_cnn, small_resnet
from cnn_core.models.svm import LinearSVM

__all__ = ["NotFittedError", "ConvergenceWarning", "Perceptron", "LinearSVM", "mlp", "lenet5", "RNNClassifier", "small_cnn", "small_resnet"]
