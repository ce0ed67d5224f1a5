"""Activation functions of the skip-gram model and of the written questions.

All functions take a Python scalar or a numpy array and return float64 of the same shape
(a numpy float64 scalar for scalar input).
"""
import numpy as np


def sigmoid(x):
    """Logistic function 1 / (1 + exp(-x)), numerically stable for any finite or infinite x.

    exp is only ever taken of -|x| <= 0, so it cannot overflow (no warning at x = +-1000):
    sigma(x) = 1 / (1 + e^{-|x|}) for x >= 0 and e^{-|x|} / (1 + e^{-|x|}) for x < 0.
    """
    x = np.asarray(x, dtype=np.float64)
    z = np.exp(-np.abs(x))
    result = np.where(x >= 0, 1.0 / (1.0 + z), z / (1.0 + z))
    return result[()] if result.ndim == 0 else result


def sigmoid_derivative(x):
    """sigma'(x) = sigma(x) (1 - sigma(x)), derived in docs/derivations.md (check f)."""
    s = sigmoid(x)
    return s * (1.0 - s)


def log_sigmoid(x):
    """log sigma(x) = -log(1 + e^{-x}), without overflow or log(0) for large |x|."""
    result = -np.logaddexp(0.0, -np.asarray(x, dtype=np.float64))
    return result[()] if result.ndim == 0 else result


def softmax(scores):
    """Softmax of a score vector (V,) -> probabilities (V,); shifted by the maximum so exp cannot overflow."""
    scores = np.asarray(scores, dtype=np.float64)
    e = np.exp(scores - scores.max())
    return e / e.sum()


def leaky_relu(x, alpha: float = 0.01):
    """Leaky ReLU: x for x > 0, alpha * x otherwise."""
    x = np.asarray(x, dtype=np.float64)
    result = np.where(x > 0, x, alpha * x)
    return result[()] if result.ndim == 0 else result


def leaky_relu_derivative(x, alpha: float = 0.01):
    """d/dx Leaky ReLU: 1 for x > 0, alpha for x < 0 (check e).

    At x = 0 the function has no derivative; alpha is returned there (a valid subgradient).
    """
    x = np.asarray(x, dtype=np.float64)
    result = np.where(x > 0, 1.0, alpha)
    return result[()] if result.ndim == 0 else result
