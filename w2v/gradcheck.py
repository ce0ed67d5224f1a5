"""Gradient checking by centred finite differences.

    result = gradcheck(lambda v: naive_softmax_loss_and_gradient(v, o, U)[:2], v_c)
    assert result.passed, result
"""
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GradcheckResult:
    """Outcome of a gradient check.

    max_rel_error: the largest relative error |num - grad| / max(1, |num|, |grad|) over all entries
        (inf where the analytic gradient is not finite).
    worst_index: the index into x (a tuple, () for a scalar x) where that error occurs.
    passed: max_rel_error <= tol.
    """
    max_rel_error: float
    worst_index: tuple[int, ...]
    passed: bool


def gradcheck(f, x, h: float = 1e-4, tol: float = 1e-5) -> GradcheckResult:
    """Compare the gradient that `f` returns with centred differences of its value.

    f(x) -> (value, gradient): a deterministic function (draw any randomness, such as negative
    samples, outside f) of a float array x, returning a scalar value and a gradient of x's shape.
    Each entry i is checked against (f(x + h e_i) - f(x - h e_i)) / (2h). x itself is never
    modified: f only ever sees a private copy. Nothing is printed; inspect the returned result.
    """
    if not h > 0:
        raise ValueError(f"h: step {h!r} must be positive")
    if not tol > 0:
        raise ValueError(f"tol: tolerance {tol!r} must be positive")
    x0 = np.array(x, dtype=np.float64, copy=True)
    if x0.size == 0:
        raise ValueError("x: empty array; nothing to check")
    value, grad = f(x0.copy())
    grad = np.asarray(grad, dtype=np.float64)
    if grad.shape != x0.shape:
        raise ValueError(f"f: returned a gradient of shape {grad.shape} for x of shape {x0.shape}")
    if np.ndim(value) != 0:
        raise ValueError(f"f: returned a value of shape {np.shape(value)}; expected a scalar")

    numerical = np.empty_like(x0)
    work = x0.copy()
    for index in np.ndindex(x0.shape):
        work[index] = x0[index] + h
        value_plus = float(f(work)[0])
        work[index] = x0[index] - h
        value_minus = float(f(work)[0])
        work[index] = x0[index]
        numerical[index] = (value_plus - value_minus) / (2.0 * h)

    rel_error = np.abs(numerical - grad) / np.maximum(1.0, np.maximum(np.abs(numerical), np.abs(grad)))
    rel_error = np.where(np.isfinite(rel_error), rel_error, np.inf)
    flat_worst = int(np.argmax(rel_error))
    worst_index = tuple(int(i) for i in np.unravel_index(flat_worst, x0.shape))
    max_rel_error = float(rel_error.flat[flat_worst])
    return GradcheckResult(max_rel_error=max_rel_error, worst_index=worst_index,
                           passed=bool(max_rel_error <= tol))
