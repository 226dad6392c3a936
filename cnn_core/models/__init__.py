"""The models of the deck: MLP, LeNet-5 and a recurrent classifier built from cnn_core.nn layers."""
from cnn_core.models.lenet import lenet5
from cnn_core.models.mlp import mlp
from cnn_core.models.rnn import RNNClassifier

__all__ = ["mlp", "lenet5", "RNNClassifier"]
