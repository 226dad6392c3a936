"""Compiled kernels: the hot loops every layer and model stands on.

All kernels take NCHW float32 or float64 arrays, validate their arguments here at the Python boundary,
and run compiled loops with the GIL released (OpenMP over the batch where it pays).
"""
from cnn_core.kernels.activations import (elu, elu_backward, relu, relu_backward, sigmoid, sigmoid_backward,
                                          tanh, tanh_backward)
from cnn_core.kernels.batched_gemm import gemm_batched, gemm_batched_sum
from cnn_core.kernels.conv import col2im, im2col
from cnn_core.kernels.dense import bias_grad, linear_backward, linear_forward
from cnn_core.kernels.gemm import gemm
from cnn_core.kernels.norm import batch_norm_backward, batch_norm_forward
from cnn_core.kernels.perceptron import perceptron_epoch, perceptron_greedy_epoch, perceptron_ovr_epoch
from cnn_core.kernels.pooling import avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward, max_pool2d_forward
from cnn_core.kernels.recurrent import (gru_backward, gru_forward, lstm_backward, lstm_forward, rnn_backward,
                                        rnn_forward)
from cnn_core.kernels.svm import svm_dual_cd, svm_smo

__all__ = [
    "im2col", "col2im",
    "max_pool2d_forward", "max_pool2d_backward", "avg_pool2d_forward", "avg_pool2d_backward",
    "gemm", "gemm_batched", "gemm_batched_sum", "linear_forward", "linear_backward", "bias_grad",
    "sigmoid", "tanh", "relu", "elu",
    "sigmoid_backward", "tanh_backward", "relu_backward", "elu_backward",
    "perceptron_epoch", "perceptron_ovr_epoch", "perceptron_greedy_epoch", "svm_dual_cd", "svm_smo",
    "batch_norm_forward", "batch_norm_backward",
    "rnn_forward", "rnn_backward", "lstm_forward", "lstm_backward", "gru_forward", "gru_backward",
]
