"""Layers, containers and losses with forward and backward passes (PyTorch names)."""
from cnn_core.nn.activation import ELU, ReLU, Sigmoid, Tanh
from cnn_core.nn.container import Sequential
from cnn_core.nn.conv import Conv2d
from cnn_core.nn.flatten import Flatten
from cnn_core.nn.linear import Linear
from cnn_core.nn.loss import BCELoss, CrossEntropyLoss, MSELoss, QuadraticLoss
from cnn_core.nn.module import Module, Parameter, module_from_config, module_to_config, register_module
from cnn_core.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from cnn_core.nn.rnn import RNN
from cnn_core.nn import functional, init

__all__ = ["Module", "Parameter", "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Flatten", "Sigmoid", "Tanh",
           "ReLU", "ELU", "RNN", "Sequential", "CrossEntropyLoss", "MSELoss", "BCELoss", "QuadraticLoss",
           "register_module", "module_from_config", "module_to_config", "functional", "init"]
