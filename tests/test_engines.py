"""The loop engine (per-pair reference functions) and the batched numba kernel agree."""
import math

import numpy as np
import pytest

from w2v import gradcheck
from w2v.corpus import build_corpus
from w2v.engines import ENGINES, batched, loop
from w2v.sampling import Minibatch, NegativeTable, build_sentence_pool, training_streams
from w2v.trainer import TrainConfig, train

LOSSES = ("neg_sampling", "naive_softmax")


def repeated_ids_batch(with_negatives: bool) -> Minibatch:
    """3 windows over V = 7 with repeats everywhere: centre 2 twice, word 4 as an outside word in
    two windows and as a negative, negatives repeated within a row, a centre (2) as a negative."""
    contexts = np.array([[4, 1, 4, -1], [3, 4, -1, -1], [5, 6, 0, 1]], np.int32)
    lengths = np.array([3, 2, 4], np.int32)
    negatives = np.full((3, 4, 2), -1, np.int32)
    negatives[0, :3] = [[2, 2], [4, 0], [6, 3]]
    negatives[1, :2] = [[4, 4], [2, 5]]
    negatives[2, :4] = [[4, 1], [2, 2], [3, 3], [6, 6]]
    return Minibatch(np.array([2, 5, 2], np.int32), contexts, lengths,
                     negatives if with_negatives else None)


def random_vectors(vocab_size=7, dim=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(vocab_size, dim)), rng.normal(size=(vocab_size, dim))


@pytest.mark.parametrize("loss", LOSSES)
def test_same_batch_same_loss_gradient_and_update(loss):
    batch = repeated_ids_batch(loss == "neg_sampling")
    center_vectors, outside_vectors = random_vectors()
    reference = loop.minibatch_loss_and_gradient(center_vectors, outside_vectors, batch, loss)
    fast = batched.minibatch_loss_and_gradient(center_vectors, outside_vectors, batch, loss)
    assert abs(reference[0] - fast[0]) < 1e-10
    np.testing.assert_allclose(fast[1], reference[1], rtol=0, atol=1e-10)
    np.testing.assert_allclose(fast[2], reference[2], rtol=0, atol=1e-10)
    lr = 0.3
    np.testing.assert_allclose(center_vectors - lr * fast[1], center_vectors - lr * reference[1],
                               rtol=0, atol=1e-10)
    # the batched gradient is zero exactly on centre rows the batch does not touch
    assert np.all(fast[1][[0, 1, 3, 4, 6]] == 0)


def test_hand_computed_minibatch_at_zero_outside_vectors():
    """With U = 0 every score is 0: each (outside or negative) pair costs log 2 and naive softmax
    log V per outside word; dJ/dv_c = 0, dJ/du_o = -v_c/2 / B, dJ/du_k = +v_c/2 / B per draw."""
    batch = Minibatch(np.array([0, 1], np.int32), np.array([[1, 2], [0, -1]], np.int32),
                      np.array([2, 1], np.int32),
                      np.array([[[2, 2], [0, 0]], [[2, 2], [-1, -1]]], np.int32))
    center_vectors = np.array([[1.0, 2.0], [3.0, -1.0], [5.0, 5.0]])
    outside_vectors = np.zeros((3, 2))
    for engine in (loop, batched):
        value, grad_center, grad_outside = engine.minibatch_loss_and_gradient(
            center_vectors, outside_vectors, batch, "neg_sampling")
        assert value == pytest.approx((2 * 3 + 1 * 3) * math.log(2) / 2, abs=1e-12)
        np.testing.assert_array_equal(grad_center, 0)
        v0, v1 = center_vectors[0], center_vectors[1]
        expected_outside = np.array([
            -v1 / 2 + 0 * v0 + v0 / 2 * 2,      # u_0: outside of window 1; negative twice in window 0
            -v0 / 2,                              # u_1: outside of window 0
            -v0 / 2 + v0 / 2 * 2 + v1 / 2 * 2,   # u_2: outside of window 0; negative 2x, 2x
        ]) / 2
        np.testing.assert_allclose(grad_outside, expected_outside, rtol=0, atol=1e-12)
        value, _, _ = engine.minibatch_loss_and_gradient(
            center_vectors, outside_vectors, Minibatch(batch.centers, batch.contexts,
                                                       batch.context_lengths), "naive_softmax")
        assert value == pytest.approx(3 * math.log(3) / 2, abs=1e-12)


@pytest.mark.parametrize("loss", LOSSES)
def test_batched_gradient_matches_finite_differences(loss):
    batch = repeated_ids_batch(loss == "neg_sampling")
    center_vectors, outside_vectors = random_vectors(seed=4)
    shape = center_vectors.shape

    def f(x):
        value, grad_center, grad_outside = batched.minibatch_loss_and_gradient(
            x[:7].reshape(shape), x[7:].reshape(shape), batch, loss)
        return value, np.concatenate([grad_center, grad_outside])

    result = gradcheck(f, np.concatenate([center_vectors, outside_vectors]))
    assert result.passed, result


def test_vectorised_exp_matches_numpy():
    x = np.concatenate([np.linspace(-80, 0, 20001), -np.abs(np.random.default_rng(0).normal(size=5000)) * 30])
    row, powers = x.copy(), np.empty_like(x)
    total = batched._exp_shifted(row, 0.0, powers)
    np.testing.assert_allclose(row, np.exp(x), rtol=5e-15, atol=0)
    assert total == pytest.approx(np.exp(x).sum(), rel=1e-14)
    row = np.array([1000.0, 990.0, -1e6])  # shifted by the maximum: no overflow, tiny not NaN
    batched._exp_shifted(row, 1000.0, np.empty(3))
    np.testing.assert_allclose(row[:2], [1.0, np.exp(-10.0)], rtol=2e-15)
    assert 0 <= row[2] < 1e-300


def small_corpus(seed=0, sentences=120, vocab=40):
    rng = np.random.default_rng(seed)
    zipf = 1.0 / np.arange(1, vocab + 1)
    words = [f"w{i}" for i in range(vocab)]
    return build_corpus([[words[i] for i in rng.choice(vocab, size=rng.integers(3, 15), p=zipf / zipf.sum())]
                         for _ in range(sentences)])


@pytest.mark.parametrize("streams", [False, True])
@pytest.mark.parametrize("loss", LOSSES)
def test_steppers_consume_the_same_draws_and_update_the_same(loss, streams):
    corpus = small_corpus()
    tokens, offsets = corpus.training_sentences()
    pool = build_sentence_pool(tokens, offsets, np.ones(corpus.vocab_size), 2,
                               np.random.default_rng(0))
    table = NegativeTable.from_weights(corpus.neg_weight)
    results = {}
    for name, engine in ENGINES.items():
        center_vectors, outside_vectors = random_vectors(corpus.vocab_size, 5, seed=1)
        stepper = engine.Stepper(pool, table, center_vectors, outside_vectors, loss, 3, 4, 16)
        rngs = training_streams(42) if streams else (np.random.default_rng(42),)
        losses = stepper.run(rngs if streams else rngs[0], 0.5, 1)
        results[name] = (losses, center_vectors, outside_vectors,
                         [rng.bit_generator.state for rng in rngs])
    np.testing.assert_allclose(results["batched"][0], results["loop"][0], rtol=0, atol=1e-10)
    np.testing.assert_allclose(results["batched"][1], results["loop"][1], rtol=0, atol=1e-10)
    np.testing.assert_allclose(results["batched"][2], results["loop"][2], rtol=0, atol=1e-10)
    assert results["batched"][3] == results["loop"][3]


def test_a_batched_step_changes_only_the_rows_of_the_minibatch():
    corpus = small_corpus(vocab=60)
    tokens, offsets = corpus.training_sentences()
    pool = build_sentence_pool(tokens, offsets, np.ones(corpus.vocab_size), 1,
                               np.random.default_rng(0))
    table = NegativeTable.from_weights(corpus.neg_weight)
    center_vectors, outside_vectors = random_vectors(corpus.vocab_size, 5, seed=2)
    before_center, before_outside = center_vectors.copy(), outside_vectors.copy()
    stepper = batched.Stepper(pool, table, center_vectors, outside_vectors, "neg_sampling", 2, 2, 3)
    stepper.run(np.random.default_rng(1), 0.5, 1)
    batch = stepper.batch
    used_outside = set(batch.contexts[batch.contexts >= 0]) | set(batch.negatives[batch.negatives >= 0])
    changed_center = set(np.flatnonzero(np.any(center_vectors != before_center, axis=1)))
    changed_outside = set(np.flatnonzero(np.any(outside_vectors != before_outside, axis=1)))
    assert changed_center == set(batch.centers)
    assert changed_outside == used_outside
    assert len(used_outside) < corpus.vocab_size


@pytest.mark.parametrize("loss", LOSSES)
def test_loop_and_batched_training_give_the_same_vectors(loss):
    corpus = small_corpus(seed=3)
    config = dict(loss=loss, dim=6, window=3, K=4, lr=0.5, iterations=40, batch_size=10,
                  anneal_every=15, log_every=5, pool_copies=2, seed=7)
    fast = train(corpus, TrainConfig(engine="batched", **config))
    reference = train(corpus, TrainConfig(engine="loop", **config))
    np.testing.assert_allclose(fast.center_vectors, reference.center_vectors, rtol=0, atol=1e-10)
    np.testing.assert_allclose(fast.outside_vectors, reference.outside_vectors, rtol=0, atol=1e-10)
    assert fast.loss_smoothed == pytest.approx(reference.loss_smoothed, abs=1e-10)
    assert np.any(fast.outside_vectors != 0)


@pytest.mark.parametrize("engine", [loop, batched])
def test_bad_engine_input(engine):
    batch = repeated_ids_batch(False)
    center_vectors, outside_vectors = random_vectors()
    with pytest.raises(ValueError, match="loss"):
        engine.minibatch_loss_and_gradient(center_vectors, outside_vectors, batch, "hinge")
    with pytest.raises(ValueError, match="negatives"):
        engine.minibatch_loss_and_gradient(center_vectors, outside_vectors, batch, "neg_sampling")
    bad = repeated_ids_batch(True)
    bad.contexts[2, 3] = 7   # V = 7: out of range
    with pytest.raises(ValueError, match="batch.contexts"):
        engine.minibatch_loss_and_gradient(center_vectors, outside_vectors, bad, "naive_softmax")
    bad = repeated_ids_batch(True)
    bad.negatives[1, 1, 0] = -1   # a padding value inside the context
    with pytest.raises(ValueError, match="batch.negatives"):
        engine.minibatch_loss_and_gradient(center_vectors, outside_vectors, bad, "neg_sampling")
    bad = repeated_ids_batch(True)
    bad.context_lengths[0] = 0
    with pytest.raises(ValueError, match="batch.context_lengths"):
        engine.minibatch_loss_and_gradient(center_vectors, outside_vectors, bad, "neg_sampling")
    with pytest.raises(ValueError, match="outside_vectors"):
        engine.minibatch_loss_and_gradient(center_vectors, outside_vectors[:5], batch, "naive_softmax")


def test_stepper_refuses_vectors_it_cannot_train_in_place():
    corpus = small_corpus()
    tokens, offsets = corpus.training_sentences()
    pool = build_sentence_pool(tokens, offsets, np.ones(corpus.vocab_size), 1,
                               np.random.default_rng(0))
    table = NegativeTable.from_weights(corpus.neg_weight)
    center, outside = random_vectors(corpus.vocab_size, 4)
    single = (center.astype(np.float32), outside.astype(np.float32))
    with pytest.raises(ValueError, match="center_vectors: .* float64 \\(V, d\\) array"):
        batched.Stepper(pool, table, *single, "naive_softmax", 3, 5, 8)
    with pytest.raises(ValueError, match="must have the same dtype"):
        batched.Stepper(pool, table, center, single[1], "neg_sampling", 3, 5, 8)
    with pytest.raises(ValueError, match="outside_vectors: .* C-contiguous"):
        batched.Stepper(pool, table, center, np.asfortranarray(outside), "neg_sampling", 3, 5, 8)
    batched.Stepper(pool, table, *single, "neg_sampling", 3, 5, 8).run(training_streams(0), 0.1, 2)


def test_threaded_stepper_is_bit_identical_and_restores_numba_threads():
    import numba

    corpus = small_corpus(seed=5, vocab=60)
    tokens, offsets = corpus.training_sentences()
    pool = build_sentence_pool(tokens, offsets, np.ones(corpus.vocab_size), 2,
                               np.random.default_rng(0))
    table = NegativeTable.from_weights(corpus.neg_weight)
    results = []
    for threads in (1, 2):
        center_vectors, outside_vectors = random_vectors(corpus.vocab_size, 37, seed=3)
        before = numba.get_num_threads()
        stepper = batched.Stepper(pool, table, center_vectors, outside_vectors, "neg_sampling",
                                  3, 5, 64, threads=threads)
        losses = stepper.run(training_streams(9), 0.5, 20)
        assert numba.get_num_threads() == before
        results.append((losses, center_vectors, outside_vectors))
    for one, two in zip(*results):
        assert np.array_equal(one, two)
    with pytest.raises(ValueError, match="threads"):
        batched.Stepper(pool, table, *random_vectors(corpus.vocab_size, 4), "neg_sampling",
                        3, 5, 64, threads=0)
