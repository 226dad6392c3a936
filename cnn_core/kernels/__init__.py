"""Compiled kernels: the hot loops every layer and model stands on.

All kernels take NCHW float32 or float64 arrays, validate their arguments here at the Python boundary,
and run compiled loops with the GIL released (OpenMP over the batch where it pays).
"""
from cnn_core.kernels.activations import (elu, elu_backward, relu, relu_backward, sigmoid, sigmoid_backward,
                                          tanh, tanh_backward)
from cnn_core.kernels.perceptron import perceptron_epoch

__all__ = [
    "sigmoid", "tanh", "relu", "elu",
    "sigmoid_backward", "tanh_backward", "relu_backward", "elu_backward",
    "perceptron_epoch",
]
