"""Optimizers, learning-rate schedules and gradient clipping (PyTorch's names, parameter groups, update rules
and state_dict layout)."""
from cnn_core.optim.adagrad import Adagrad
from cnn_core.optim.adam import Adam, AdamW
from cnn_core.optim.clip import clip_grad_norm, clip_grad_norm_, clip_grad_value_
from cnn_core.optim.lr_scheduler import (CosineAnnealingLR, LinearLR, LRScheduler, OneCycleLR, ReduceLROnPlateau,
                                         SequentialLR, StepLR)
from cnn_core.optim.optimizer import Optimizer
from cnn_core.optim.rmsprop import RMSprop
from cnn_core.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "LRScheduler", "StepLR", "CosineAnnealingLR",
           "LinearLR", "SequentialLR", "OneCycleLR", "ReduceLROnPlateau", "clip_grad_norm_", "clip_grad_value_",
           "clip_grad_norm"]
