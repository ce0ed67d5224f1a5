"""The per-pair losses, skipgram and sigmoid on small cases whose numbers are worked out by hand.

Hand cases (V = 3, d = 2), chosen so the softmax and sigmoid values are simple fractions:
- naive softmax: U = [[1, 0], [0, 1], [0, 0]], v_c = (ln 2, 0) -> scores (ln 2, 0, 0),
  y_hat = (1/2, 1/4, 1/4).
- negative sampling: v_c = (1, 0), u_0 = (ln 3, 0), u_1 = (-ln 3, 0), u_2 = (0, 5) -> scores
  (ln 3, -ln 3, 0), and sigma(ln 3) = 3/4, sigma(-ln 3) = 1/4, sigma(0) = 1/2.
"""
import math
import warnings

import numpy as np
import pytest

import w2v
from w2v import naive_softmax_loss_and_gradient, neg_sampling_loss_and_gradient, sigmoid, skipgram

LN2, LN3 = math.log(2.0), math.log(3.0)
U_SOFTMAX = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
V_C_SOFTMAX = np.array([LN2, 0.0])
U_NEG = np.array([[LN3, 0.0], [-LN3, 0.0], [0.0, 5.0]])
V_C_NEG = np.array([1.0, 0.0])
WORDS = {"a": 0, "b": 1, "c": 2}


# --------------------------------------------------------------------------- sigmoid

def test_sigmoid_values_scalar_and_array():
    assert sigmoid(0.0) == 0.5
    assert isinstance(sigmoid(0.0), float)
    assert sigmoid(LN3) == pytest.approx(0.75, abs=1e-15)
    assert sigmoid(-LN3) == pytest.approx(0.25, abs=1e-15)
    x = np.array([[-2.0, -0.5], [0.5, 2.0]])
    expected = np.array([[1 / (1 + math.exp(2.0)), 1 / (1 + math.exp(0.5))],
                         [1 / (1 + math.exp(-0.5)), 1 / (1 + math.exp(-2.0))]])
    result = sigmoid(x)
    assert result.shape == (2, 2)
    np.testing.assert_allclose(result, expected, rtol=1e-15)
    np.testing.assert_allclose(sigmoid(-x), 1.0 - expected, rtol=1e-14)


def test_sigmoid_is_stable_at_large_magnitudes():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow RuntimeWarning fails the test
        assert sigmoid(1000.0) == 1.0
        assert sigmoid(-1000.0) == 0.0
        assert sigmoid(-1000) == 0.0
        np.testing.assert_array_equal(sigmoid(np.array([-1000.0, 1000.0])), [0.0, 1.0])
        # far in the tail the small side keeps relative precision: sigma(-30) = e^-30 / (1 + e^-30)
        assert sigmoid(-30.0) == pytest.approx(math.exp(-30.0) / (1 + math.exp(-30.0)), rel=1e-14)


# --------------------------------------------------------------------------- naive softmax

def test_naive_softmax_hand_computed():
    loss, grad_center, grad_outside = naive_softmax_loss_and_gradient(V_C_SOFTMAX, 1, U_SOFTMAX)
    # -log y_hat_1 = -log(1/4); y_hat - y = (1/2, -3/4, 1/4)
    assert loss == pytest.approx(math.log(4.0), abs=1e-14)
    np.testing.assert_allclose(grad_center, [0.5, -0.75], atol=1e-15)  # U^T (y_hat - y)
    np.testing.assert_allclose(grad_outside, [[LN2 / 2, 0.0], [-3 * LN2 / 4, 0.0], [LN2 / 4, 0.0]],
                               atol=1e-15)  # (y_hat - y) v_c^T


def test_naive_softmax_large_scores_stay_finite():
    U = np.array([[1000.0, 0.0], [-1000.0, 0.0], [0.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, grad_center, grad_outside = naive_softmax_loss_and_gradient(np.array([1.0, 0.0]), 1, U)
    # y_hat_1 = e^-2000 / (1 + e^-2000 + e^-1000) underflows, but -log y_hat_1 = 2000 + log(1 + ...)
    assert loss == pytest.approx(2000.0)
    np.testing.assert_allclose(grad_center, [2000.0, 0.0])  # u_0 - u_1 with y_hat = (1, 0, 0)
    assert np.all(np.isfinite(grad_outside))


# --------------------------------------------------------------------------- negative sampling

def test_neg_sampling_hand_computed_with_a_repeated_negative():
    loss, grad_center, grad_outside = neg_sampling_loss_and_gradient(V_C_NEG, 0, U_NEG, [1, 2, 1])
    # -log sigma(ln 3) - 2 log sigma(ln 3) - log sigma(0) = 3 log(4/3) + log 2
    assert loss == pytest.approx(3 * math.log(4 / 3) + LN2, abs=1e-14)
    # (sigma(s_o) - 1) u_o + 2 sigma(s_1) u_1 + sigma(s_2) u_2 = -1/4 u_0 + 1/2 u_1 + 1/2 u_2
    np.testing.assert_allclose(grad_center, [-3 * LN3 / 4, 2.5], atol=1e-15)
    # row 1 was drawn twice: 2 * sigma(-ln 3) v_c = 1/2 v_c, not 1/4 v_c
    np.testing.assert_allclose(grad_outside, [[-0.25, 0.0], [0.5, 0.0], [0.5, 0.0]], atol=1e-15)


def test_repeated_negative_counts_like_two_separate_draws():
    twice = neg_sampling_loss_and_gradient(V_C_NEG, 0, U_NEG, [1, 1])
    once = neg_sampling_loss_and_gradient(V_C_NEG, 0, U_NEG, [1])
    # adding the second draw of word 1 adds exactly one more term -log sigma(-s_1) = log(4/3)
    assert twice[0] - once[0] == pytest.approx(math.log(4 / 3), abs=1e-14)
    np.testing.assert_allclose(twice[2][1], 2 * once[2][1], atol=1e-15)
    np.testing.assert_allclose(twice[2][0], once[2][0], atol=1e-15)


def test_neg_sampling_accepts_array_ids_and_large_scores():
    U = np.array([[1000.0, 0.0], [1000.0, 0.0], [0.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss, grad_center, _ = neg_sampling_loss_and_gradient(np.array([1.0, 0.0]), 0, U,
                                                              np.array([1], dtype=np.int32))
    # the true word scores 1000 (loss ~ 0), the negative scores 1000 (loss -log sigma(-1000) ~ 1000)
    assert loss == pytest.approx(1000.0)
    np.testing.assert_allclose(grad_center, [1000.0, 0.0])


# --------------------------------------------------------------------------- skipgram

def test_skipgram_sums_hand_computed_pairs():
    center_vectors = np.array([[LN2, 0.0], [7.0, 7.0], [-7.0, 1.0]])
    loss, grad_center, grad_outside = skipgram("a", ["b", "c"], WORDS, center_vectors, U_SOFTMAX)
    # y_hat = (1/2, 1/4, 1/4) for both pairs: loss = 2 log 4; 2 y_hat - y_b - y_c = (1, -1/2, -1/2)
    assert loss == pytest.approx(2 * math.log(4.0), abs=1e-14)
    np.testing.assert_allclose(grad_center, [[1.0, -0.5], [0.0, 0.0], [0.0, 0.0]], atol=1e-15)
    np.testing.assert_allclose(grad_outside, np.outer([1.0, -0.5, -0.5], [LN2, 0.0]), atol=1e-15)


def test_skipgram_keeps_outside_words_exactly_as_given():
    center_vectors = np.array([[LN2, 0.0], [0.0, 0.0], [0.0, 0.0]])
    # the centre word itself as an outside word: -log y_hat_a = log 2; not removed
    loss, _, _ = skipgram("a", ["a"], WORDS, center_vectors, U_SOFTMAX)
    assert loss == pytest.approx(LN2, abs=1e-14)
    # a repeated outside word counts each time
    loss_twice, grad_center_twice, _ = skipgram("a", ["b", "b"], WORDS, center_vectors, U_SOFTMAX)
    assert loss_twice == pytest.approx(2 * math.log(4.0), abs=1e-14)
    np.testing.assert_allclose(grad_center_twice[0], [1.0, -1.5], atol=1e-15)  # U^T (2 y_hat - 2 y_b)


def test_skipgram_neg_sampling_sums_pairs_with_their_own_negatives():
    center_vectors = np.array([[1.0, 0.0], [3.0, 3.0], [3.0, 3.0]])
    negatives = np.array([[1, 2, 1], [2, 2, 2]])
    loss, grad_center, grad_outside = skipgram("a", ["a", "b"], WORDS, center_vectors, U_NEG,
                                               loss="neg_sampling", negatives=negatives)
    first = neg_sampling_loss_and_gradient(V_C_NEG, 0, U_NEG, [1, 2, 1])
    second = neg_sampling_loss_and_gradient(V_C_NEG, 1, U_NEG, [2, 2, 2])
    # second pair by hand: -log sigma(-ln 3) - 3 log sigma(0) = log 4 + 3 log 2
    assert second[0] == pytest.approx(math.log(4.0) + 3 * LN2, abs=1e-14)
    assert loss == pytest.approx(first[0] + second[0], abs=1e-14)
    np.testing.assert_allclose(grad_center[0], first[1] + second[1], atol=1e-15)
    np.testing.assert_array_equal(grad_center[1:], 0.0)
    np.testing.assert_allclose(grad_outside, first[2] + second[2], atol=1e-15)


def test_skipgram_does_not_modify_its_inputs():
    center_vectors, U = np.array([[LN2, 0.0], [1.0, 2.0], [3.0, 4.0]]), U_NEG.copy()
    before = center_vectors.copy(), U.copy()
    skipgram("a", ["b", "c"], WORDS, center_vectors, U, loss="neg_sampling", negatives=[[1, 2], [2, 2]])
    np.testing.assert_array_equal(center_vectors, before[0])
    np.testing.assert_array_equal(U, before[1])


def test_public_names_import_from_the_package():
    for name in ("sigmoid", "naive_softmax_loss_and_gradient", "neg_sampling_loss_and_gradient",
                 "skipgram", "gradcheck", "GradcheckResult", "sample_negatives"):
        assert callable(getattr(w2v, name))


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("call, argument", [
    (lambda: naive_softmax_loss_and_gradient(np.zeros(3), 0, U_SOFTMAX), "center_vec"),
    (lambda: naive_softmax_loss_and_gradient(np.zeros(2), 3, U_SOFTMAX), "outside_idx"),
    (lambda: naive_softmax_loss_and_gradient(np.zeros(2), -1, U_SOFTMAX), "outside_idx"),
    (lambda: naive_softmax_loss_and_gradient(np.zeros(2), 1.0, U_SOFTMAX), "outside_idx"),
    (lambda: naive_softmax_loss_and_gradient(np.zeros(2), 0, np.zeros(6)), "outside_vectors"),
    (lambda: neg_sampling_loss_and_gradient(V_C_NEG, 0, U_NEG, []), "negative_indices"),
    (lambda: neg_sampling_loss_and_gradient(V_C_NEG, 0, U_NEG, [1, 3]), "negative_indices"),
    (lambda: neg_sampling_loss_and_gradient(V_C_NEG, 0, U_NEG, [[1, 2]]), "negative_indices"),
    (lambda: neg_sampling_loss_and_gradient(V_C_NEG, 0, U_NEG, [1.0, 2.0]), "negative_indices"),
    (lambda: neg_sampling_loss_and_gradient(V_C_NEG, 5, U_NEG, [1]), "outside_idx"),
    (lambda: neg_sampling_loss_and_gradient(np.zeros((1, 2)), 0, U_NEG, [1]), "center_vec"),
])
def test_pair_functions_reject_bad_input_naming_the_argument(call, argument):
    with pytest.raises(ValueError, match=f"^{argument}"):
        call()


def test_k_below_one_is_reported_as_such():
    with pytest.raises(ValueError, match=r"negative_indices: K = 0"):
        neg_sampling_loss_and_gradient(V_C_NEG, 0, U_NEG, np.array([], dtype=np.int64))
    with pytest.raises(ValueError, match=r"negatives: K = 0"):
        skipgram("a", ["b"], WORDS, U_NEG, U_NEG, loss="neg_sampling", negatives=np.zeros((1, 0), int))


@pytest.mark.parametrize("kwargs, argument", [
    ({"loss": "hinge"}, "loss"),
    ({"outside_words": []}, "outside_words"),
    ({"outside_words": "b"}, "outside_words"),
    ({"outside_words": ["b", "zebra"]}, "outside_words"),
    ({"center_word": "zebra"}, "center_word"),
    ({"word2ind": {"a": 0, "b": 1, "c": 7}, "outside_words": ["c"]}, "outside_words"),
    ({"word2ind": {"a": 9, "b": 1, "c": 2}}, "center_word"),
    ({"center_vectors": np.zeros((4, 2))}, "center_vectors"),
    ({"outside_vectors": np.zeros(3)}, "outside_vectors"),
    ({"loss": "neg_sampling"}, "negatives"),                                        # negatives=None
    ({"loss": "neg_sampling", "negatives": [[1, 2]]}, "negatives"),                 # one row, two words
    ({"loss": "neg_sampling", "negatives": [1, 2]}, "negatives"),                   # not (n, K)
    ({"loss": "neg_sampling", "negatives": [[1, 2], [1, 3]]}, "negatives"),         # id out of range
    ({"negatives": [[1], [2]]}, "negatives"),                                       # naive softmax
])
def test_skipgram_rejects_bad_input_naming_the_argument(kwargs, argument):
    call = dict(center_word="a", outside_words=["b", "c"], word2ind=WORDS,
                center_vectors=np.zeros((3, 2)), outside_vectors=U_SOFTMAX)
    call.update(kwargs)
    with pytest.raises(ValueError, match=f"^{argument}"):
        skipgram(**call)
