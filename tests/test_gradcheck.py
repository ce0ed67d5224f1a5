"""gradcheck: centred differences, the relative-error formula, the worst index, no printing, x untouched."""
import dataclasses

import numpy as np
import pytest

from w2v import GradcheckResult, gradcheck, naive_softmax_loss_and_gradient


def cubic(x):
    """sum x^3 with its true gradient 3 x^2."""
    return float(np.sum(x ** 3)), 3.0 * x ** 2


def test_right_gradient_passes():
    x = np.random.default_rng(0).normal(size=(3, 4))
    result = gradcheck(cubic, x)
    assert isinstance(result, GradcheckResult)
    assert result.passed
    # the centred difference of x^3 is 3x^2 + h^2 exactly, so the error is h^2 = 1e-8 at most
    assert result.max_rel_error < 2e-8


def test_wrong_entry_fails_at_its_index():
    x = np.random.default_rng(1).normal(size=(3, 4))

    def wrong_at_1_2(x):
        value, grad = cubic(x)
        grad = grad.copy()
        grad[1, 2] += 0.01
        return value, grad

    result = gradcheck(wrong_at_1_2, x)
    assert not result.passed
    assert result.worst_index == (1, 2)
    assert result.max_rel_error == pytest.approx(0.01 / max(1.0, 3 * x[1, 2] ** 2 + 0.01), rel=1e-4)


def test_relative_error_formula():
    # f = x^2 (centred differences exact up to rounding), gradient reported with an error of 0.5
    half_off = lambda x: (float(x[0] ** 2), 2 * x + 0.5)
    # |num| = 6, |grad| = 6.5 -> 0.5 / 6.5
    assert gradcheck(half_off, np.array([3.0])).max_rel_error == pytest.approx(0.5 / 6.5, rel=1e-7)
    # |num| = 0.2, |grad| = 0.7, both below 1 -> denominator 1 -> 0.5
    assert gradcheck(half_off, np.array([0.1])).max_rel_error == pytest.approx(0.5, rel=1e-7)


def test_tolerance_decides_passed():
    slightly_off = lambda x: (float(np.sum(x ** 2)), 2 * x + 1e-7)
    x = np.array([0.3, -0.2])
    assert gradcheck(slightly_off, x).passed                 # 1e-7 <= default 1e-5
    assert not gradcheck(slightly_off, x, tol=1e-8).passed


def test_wrong_derivation_of_softmax_gradient_is_caught():
    rng = np.random.default_rng(2)
    U, v_c = rng.normal(size=(5, 3)), rng.normal(size=3)

    def forgot_minus_y(v):  # U^T y_hat instead of U^T (y_hat - y)
        loss, _, _ = naive_softmax_loss_and_gradient(v, 2, U)
        scores = U @ v
        y_hat = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
        return loss, U.T @ y_hat

    assert gradcheck(lambda v: naive_softmax_loss_and_gradient(v, 2, U)[:2], v_c).passed
    assert not gradcheck(forgot_minus_y, v_c).passed


def test_does_not_print(capsys):
    gradcheck(cubic, np.ones(3))
    gradcheck(lambda x: (float(np.sum(x)), np.zeros_like(x)), np.ones(3))  # failing
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_x_is_left_unchanged_even_when_f_modifies_its_argument():
    x = np.array([[0.5, -1.5], [2.0, 0.25]])
    original = x.copy()

    def vandal(z):
        value, grad = cubic(z)
        z += 100.0  # f scribbling on its argument must not reach the caller's x
        return value, grad

    gradcheck(cubic, x)
    assert np.array_equal(x, original)
    gradcheck(vandal, x)
    assert np.array_equal(x, original)


def test_scalar_and_list_inputs():
    result = gradcheck(lambda x: (float(x ** 3), 3 * x ** 2), 0.7)
    assert result.passed and result.worst_index == ()
    assert gradcheck(cubic, [0.1, 0.2]).passed


def test_non_finite_gradient_fails():
    result = gradcheck(lambda x: (float(np.sum(x ** 2)), np.array([0.0, np.nan])), np.array([1.0, 2.0]))
    assert not result.passed
    assert result.max_rel_error == np.inf and result.worst_index == (1,)


def test_result_is_frozen():
    result = gradcheck(cubic, np.ones(2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.passed = False


@pytest.mark.parametrize("kwargs, argument", [
    ({"h": 0.0}, "h"),
    ({"tol": -1.0}, "tol"),
    ({"x": np.zeros(0)}, "x"),
    ({"f": lambda x: (0.0, np.zeros(3))}, "f"),               # gradient of the wrong shape
    ({"f": lambda x: (np.zeros(2), np.zeros_like(x))}, "f"),  # value not a scalar
])
def test_bad_arguments(kwargs, argument):
    call = {"f": cubic, "x": np.ones(2)}
    call.update(kwargs)
    with pytest.raises(ValueError, match=f"^{argument}"):
        gradcheck(**call)
