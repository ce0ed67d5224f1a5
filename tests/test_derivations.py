"""Every derivation check passes on both engines, and each one fails when its gradient is broken."""
import dataclasses

import numpy as np
import pytest

from w2v import derivations, losses
from w2v.activations import sigmoid
from w2v.derivations import (ENGINE_CHECKS, batched_engine, default_engines, per_pair_engine,
                             random_inputs, run_all_checks, vocabulary_inputs)
from w2v.readers import read_sst


@pytest.fixture(scope="module")
def sst_words(sst_dir):
    """The first 50 words of the real SST vocabulary (ids by first occurrence)."""
    return list(read_sst(sst_dir).words[:50])


def test_checks_cover_derivations_a_to_i():
    assert [name[0] for name in derivations.CHECK_NAMES] == list("abcdefghi")
    assert set(derivations.DESCRIPTIONS) == set(derivations.CHECK_NAMES)


def test_every_check_passes_on_both_engines(sst_words):
    results = run_all_checks([random_inputs(), vocabulary_inputs(sst_words)], default_engines())
    expected = {(check, engine, inputs) for check in ENGINE_CHECKS for engine in ("per_pair", "batched")
                for inputs in ("random", "vocabulary")}
    expected |= {("e_leaky_relu_derivative", "activations", "random"),
                 ("f_sigmoid_derivative", "activations", "random")}
    assert {(r.check, r.engine, r.inputs) for r in results} == expected
    assert [r for r in results if not r.passed] == []
    # centred differences with h = 1e-4 leave errors around h^2; far below the tolerance
    assert max(r.max_rel_error for r in results) < 1e-7


def test_checks_are_reproducible():
    engines = [per_pair_engine()]
    assert run_all_checks([random_inputs(seed=3)], engines) == run_all_checks([random_inputs(seed=3)], engines)


# --------------------------------------------------------------------------- broken gradients

def _softmax_center_gradient_off(v_c, o, U):
    loss, grad_center, grad_outside = losses.naive_softmax_loss_and_gradient(v_c, o, U)
    return loss, grad_center * 1.01, grad_outside


def _softmax_forgot_minus_y_in_outside_gradient(v_c, o, U):
    loss, grad_center, _ = losses.naive_softmax_loss_and_gradient(v_c, o, U)
    scores = U @ v_c
    y_hat = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
    return loss, grad_center, np.outer(y_hat, v_c)


def _softmax_loss_off(v_c, o, U):
    loss, grad_center, grad_outside = losses.naive_softmax_loss_and_gradient(v_c, o, U)
    return loss + 0.01, grad_center, grad_outside


def _neg_sampling_each_negative_once(v_c, o, U, negatives):
    """Consistent loss and gradient, but a word drawn twice counts once (a wrong model)."""
    return losses.neg_sampling_loss_and_gradient(v_c, o, U, np.unique(negatives))


def _neg_sampling_buffered_update(v_c, o, U, negatives):
    """Right loss; `grad[negatives] += ...` keeps only one of a repeated id's contributions."""
    loss, grad_center, _ = losses.neg_sampling_loss_and_gradient(v_c, o, U, negatives)
    negatives = np.asarray(negatives)
    grad_outside = np.zeros_like(U)
    grad_outside[o] += (sigmoid(U[o] @ v_c) - 1.0) * v_c
    grad_outside[negatives] += np.outer(sigmoid(U[negatives] @ v_c), v_c)
    return loss, grad_center, grad_outside


def _window_drops_repeated_outside_words(words, center_vectors, U, c, outside_ids, loss, negatives):
    first = sorted(np.unique(outside_ids, return_index=True)[1])
    return per_pair_engine().window(words, center_vectors, U, c, np.asarray(outside_ids)[first], loss,
                                    None if negatives is None else np.asarray(negatives)[first])


def _window_leaks_into_other_centre_rows(words, center_vectors, U, c, outside_ids, loss, negatives):
    value, grad_center, grad_outside = per_pair_engine().window(words, center_vectors, U, c,
                                                                outside_ids, loss, negatives)
    grad_center = grad_center.copy()
    grad_center[(c + 1) % len(grad_center)] += 1e-3
    return value, grad_center, grad_outside


@pytest.mark.parametrize("field, broken, failing, passing", [
    ("naive_softmax", _softmax_center_gradient_off, "b_softmax_grad_center",
     ["a_cross_entropy_is_softmax_loss", "c_softmax_grad_outside_row", "d_softmax_grad_outside_matrix"]),
    ("naive_softmax", _softmax_forgot_minus_y_in_outside_gradient, "c_softmax_grad_outside_row",
     ["a_cross_entropy_is_softmax_loss", "b_softmax_grad_center"]),
    ("naive_softmax", _softmax_forgot_minus_y_in_outside_gradient, "d_softmax_grad_outside_matrix", []),
    ("naive_softmax", _softmax_loss_off, "a_cross_entropy_is_softmax_loss",
     ["c_softmax_grad_outside_row", "d_softmax_grad_outside_matrix"]),
    ("neg_sampling", _neg_sampling_each_negative_once, "h_neg_sampling_repeated", ["g_neg_sampling_distinct"]),
    ("neg_sampling", _neg_sampling_buffered_update, "h_neg_sampling_repeated", ["g_neg_sampling_distinct"]),
    ("window", _window_drops_repeated_outside_words, "i_skipgram_window", ["d_softmax_grad_outside_matrix"]),
    ("window", _window_leaks_into_other_centre_rows, "i_skipgram_window", ["g_neg_sampling_distinct"]),
])
def test_broken_per_pair_gradient_fails_its_check(field, broken, failing, passing):
    engine = dataclasses.replace(per_pair_engine(), **{field: broken})
    for inputs in (random_inputs(), vocabulary_inputs([f"v{i}" for i in range(30)])):
        result = ENGINE_CHECKS[failing](engine, inputs)
        assert not result.passed, result
        assert result.max_rel_error > 1e-4
        for name in passing:
            assert ENGINE_CHECKS[name](engine, inputs).passed, name


def test_broken_batched_engine_fails_its_checks():
    from w2v.engines.batched import minibatch_loss_and_gradient

    def outside_gradient_off(center_vectors, outside_vectors, batch, loss):
        value, grad_center, grad_outside = minibatch_loss_and_gradient(center_vectors, outside_vectors,
                                                                       batch, loss)
        return value, grad_center, grad_outside * 1.001

    engine = batched_engine(outside_gradient_off)
    inputs = random_inputs()
    assert engine.name == "batched"
    for name in ("c_softmax_grad_outside_row", "d_softmax_grad_outside_matrix", "g_neg_sampling_distinct",
                 "h_neg_sampling_repeated", "i_skipgram_window"):
        assert not ENGINE_CHECKS[name](engine, inputs).passed, name
    for name in ("a_cross_entropy_is_softmax_loss", "b_softmax_grad_center"):
        assert ENGINE_CHECKS[name](engine, inputs).passed, name


def test_broken_activation_derivatives_fail():
    relu_derivative = lambda x, alpha: np.where(x > 0, 1.0, 0.0)  # forgot alpha
    assert not derivations.check_e_leaky_relu_derivative(derivative=relu_derivative).passed
    wrong_sigmoid_derivative = lambda x: sigmoid(x) * (1.0 + sigmoid(x))
    assert not derivations.check_f_sigmoid_derivative(derivative=wrong_sigmoid_derivative).passed
    assert derivations.check_e_leaky_relu_derivative().passed
    assert derivations.check_f_sigmoid_derivative().passed


def test_result_names_the_worst_comparison():
    engine = dataclasses.replace(per_pair_engine(), neg_sampling=_neg_sampling_buffered_update)
    result = derivations.check_h_neg_sampling_repeated(engine, random_inputs())
    assert result.check == "h_neg_sampling_repeated" and result.engine == "per_pair"
    assert result.inputs == "random"
    assert "dJ/dU" in result.worst


@pytest.mark.parametrize("words, K, argument", [
    (["a", "b", "a"] + [f"w{i}" for i in range(20)], 10, "words"),   # duplicate word
    ([f"w{i}" for i in range(11)], 10, "words"),                      # fewer than K + 2 words
    ([f"w{i}" for i in range(20)], 1, "K"),
])
def test_bad_check_inputs(words, K, argument):
    with pytest.raises(ValueError, match=f"^{argument}"):
        vocabulary_inputs(words, K=K)


def test_tolerance_must_be_positive():
    with pytest.raises(ValueError, match="^tol"):
        run_all_checks([random_inputs()], [per_pair_engine()], tol=0.0)


def test_engine_that_raises_fails_its_checks_with_the_error():
    def crashes(*args):
        raise RuntimeError("kernel crashed")

    engine = dataclasses.replace(per_pair_engine(), neg_sampling=crashes)
    results = run_all_checks([random_inputs()], [engine])
    failed = [r for r in results if not r.passed]
    assert {r.check for r in failed} == {"g_neg_sampling_distinct", "h_neg_sampling_repeated"}
    assert all(r.worst == "raised RuntimeError: kernel crashed" and r.max_rel_error == np.inf for r in failed)
