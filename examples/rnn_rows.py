"""A recurrent network reads each digit one row at a time: 28 time steps of 28 pixels, then a Linear layer
classifies the last hidden state (many-to-one, trained by backpropagation through time).

Trains RNNClassifier(28, 128, 10) on the 8,000 embedded 'train' digits and prints the model summary, per-epoch
figures (the library's ProgressBar) and the test accuracy on the 2,000 embedded 'test' digits. The recurrent
layer is the Elman RNN (tanh) by default, or an LSTM or a GRU.

Run: python examples/rnn_rows.py [epochs] [rnn|lstm|gru]
"""
import sys

import cnn_core
from cnn_core import nn, optim
from cnn_core.callbacks import LRSchedulerStep, ProgressBar
from cnn_core.datasets import load_mnist
from cnn_core.models import RNNClassifier
from cnn_core.training import fit


def main(epochs: int = 20, cell: str = "rnn") -> None:
    X, y = load_mnist(split="train")    # (N, 1, 28, 28): RNNClassifier reads the rows as time steps
    Xt, yt = load_mnist(split="test")
    cnn_core.manual_seed(0)
    model = RNNClassifier(input_size=28, hidden_size=128, num_classes=10, rng=0, cell=cell)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    layer = {"rnn": "tanh RNN", "lstm": "LSTM", "gru": "GRU"}[cell]
    print(f"RNNClassifier: 28 steps x 28 pixels -> {layer} (128) -> Linear (10); {len(X)} train / {len(Xt)} test "
          f"digits (val = the test split)")
    print(cnn_core.summary(model, X.shape[1:]))
    h = fit(model, nn.CrossEntropyLoss(), opt, X, y, epochs=epochs, batch_size=32, validation_data=(Xt, yt),
            seed=0, callbacks=[ProgressBar(sys.stdout), LRSchedulerStep(optim.CosineAnnealingLR(opt, T_max=epochs))])
    # The validation split is the test split: the last epoch's val figures are the final test figures.
    print(f"test accuracy {100 * h.val_acc[-1]:.2f}% (loss {h.val_loss[-1]:.4f}) after {epochs} epochs "
          f"in {sum(h.seconds):.1f} s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20, sys.argv[2] if len(sys.argv) > 2 else "rnn")
