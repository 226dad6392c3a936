"""Layers, containers and losses with forward and backward passes (PyTorch names)."""
from cnn_core.nn.activation import (ELU, GELU, Identity, LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax,
                                    Tanh)
from cnn_core.nn.container import Concat, ModuleList, Residual, Sequential
from cnn_core.nn.conv import Conv2d
from cnn_core.nn.dropout import Dropout, Dropout2d
from cnn_core.nn.embedding import Embedding
from cnn_core.nn.flatten import Flatten
from cnn_core.nn.linear import Linear
from cnn_core.nn.loss import BCELoss, BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, NLLLoss, QuadraticLoss
from cnn_core.nn.module import Module, Parameter, module_from_config, module_to_config, register_module
from cnn_core.nn.norm import BatchNorm1d, BatchNorm2d
from cnn_core.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from cnn_core.nn.rnn import GRU, LSTM, RNN, LastStep
from cnn_core.nn import functional, init

__all__ = ["Module", "Parameter", "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "Flatten",
           "Sigmoid", "Tanh", "ReLU", "ELU", "RNN", "LSTM", "GRU", "LastStep", "Sequential", "CrossEntropyLoss",
           "MSELoss", "BCELoss", "QuadraticLoss", "register_module", "module_from_config", "module_to_config",
           "functional", "init", "BatchNorm1d", "BatchNorm2d", "Dropout", "Dropout2d", "Embedding", "Softmax",
           "LogSoftmax", "Identity", "LeakyReLU", "GELU", "SiLU", "NLLLoss", "BCEWithLogitsLoss", "Residual",
           "Concat", "ModuleList"]
