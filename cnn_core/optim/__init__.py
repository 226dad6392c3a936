"""Optimizers, learning-rate schedules and gradient clipping (PyTorch's names and update rules)."""
from cnn_core.optim.adam import Adam
from cnn_core.optim.clip import clip_grad_norm
from cnn_core.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, StepLR
from cnn_core.optim.optimizer import Optimizer
from cnn_core.optim.sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "LRScheduler", "StepLR", "CosineAnnealingLR", "clip_grad_norm"]
