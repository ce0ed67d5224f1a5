"""The sampler: negatives from unigram^0.75, the subsampled sentence pool, skip-gram windows."""
import numpy as np
import pytest
from scipy import stats

from w2v import sample_negatives
from w2v.corpus import build_corpus
from w2v.sampling import (TRAINING_STREAMS, Minibatch, NegativeTable, SentencePool,
                          build_sentence_pool, sample_minibatch, training_streams)


def pool_of(*sentences) -> SentencePool:
    tokens = np.array([w for s in sentences for w in s], np.int32)
    offsets = np.concatenate([[0], np.cumsum([len(s) for s in sentences])]).astype(np.int64)
    return SentencePool(tokens, offsets)


# --------------------------------------------------------------------------- negatives

def test_alias_table_encodes_exactly_the_normalised_weights():
    weights = np.random.default_rng(1).random(500) ** 3 * 100
    weights[[3, 77]] = 0.0
    table = NegativeTable.from_weights(weights)
    vocab_size = len(weights)
    # P(j) = (kept mass of column j + mass of every column that aliases to j) / V
    implied = table.prob.copy()
    np.add.at(implied, table.alias, 1.0 - table.prob)
    np.testing.assert_allclose(implied / vocab_size, weights / weights.sum(), rtol=0, atol=1e-14)
    assert table.prob[3] == 0 and table.prob[77] == 0


def test_negatives_follow_unigram_075_without_the_outside_word():
    counts = np.array([1000, 300, 120, 50, 20, 8, 3, 1, 0, 1])
    weights = counts ** 0.75
    outside = 1
    draws = sample_negatives(np.random.default_rng(7), outside, 200_000, weights)
    assert draws.dtype == np.int32 and draws.shape == (200_000,)
    observed = np.bincount(draws, minlength=len(counts))
    assert observed[outside] == 0  # never the outside word itself
    assert observed[8] == 0        # a zero-count word is never drawn
    expected_p = weights.copy()
    expected_p[outside] = 0.0
    expected_p /= expected_p.sum()
    support = expected_p > 0
    # chi-square goodness of fit; with a fixed seed this p-value is stable
    _, p_value = stats.chisquare(observed[support], expected_p[support] * len(draws))
    assert p_value > 1e-3
    # and the most frequent word stays within 4 binomial standard deviations
    sd = np.sqrt(len(draws) * expected_p[0] * (1 - expected_p[0]))
    assert abs(observed[0] - len(draws) * expected_p[0]) < 4 * sd


def test_negatives_are_reproducible_and_advance_the_generator():
    weights = np.arange(1, 30.0)
    rng = np.random.default_rng(3)
    first = sample_negatives(rng, 4, 10, weights)
    second = sample_negatives(rng, 4, 10, weights)
    again = sample_negatives(np.random.default_rng(3), 4, 10, weights)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)
    table = NegativeTable.from_weights(weights)
    np.testing.assert_array_equal(sample_negatives(np.random.default_rng(3), 4, 10, table), first)


@pytest.mark.parametrize("kwargs, name", [
    (dict(outside_idx=0, K=0, weights=np.ones(5)), "K"),
    (dict(outside_idx=5, K=3, weights=np.ones(5)), "outside_idx"),
    (dict(outside_idx=-1, K=3, weights=np.ones(5)), "outside_idx"),
    (dict(outside_idx=0, K=3, weights=np.array([1.0, -1, 2])), "weights"),
    (dict(outside_idx=0, K=3, weights=np.zeros(4)), "weights"),
    (dict(outside_idx=2, K=3, weights=np.array([0.0, 0, 5])), "weights"),
])
def test_sample_negatives_rejects_bad_input(kwargs, name):
    with pytest.raises(ValueError, match=name):
        sample_negatives(np.random.default_rng(0), **kwargs)


# --------------------------------------------------------------------------- sentence pool

def test_pool_without_subsampling_is_copies_of_the_sentences_of_two_or_more_words():
    tokens = np.array([0, 1, 2, 3, 4, 1, 2], np.int32)   # sentences [0 1 2] [3] [4 1 2]
    offsets = np.array([0, 3, 4, 7])
    pool = build_sentence_pool(tokens, offsets, np.ones(5), 3, np.random.default_rng(0))
    np.testing.assert_array_equal(pool.tokens, np.tile([0, 1, 2, 4, 1, 2], 3))
    np.testing.assert_array_equal(pool.offsets, [0, 3, 6, 9, 12, 15, 18])


def test_pool_keeps_each_word_with_its_keep_prob():
    rng = np.random.default_rng(5)
    # 400 sentences of 40 words; words 10.. are always kept, so no sentence is dropped
    frequent = rng.integers(0, 10, size=(400, 30))
    rare = 10 + np.arange(400 * 10).reshape(400, 10)
    tokens = np.hstack([frequent, rare]).ravel().astype(np.int32)
    offsets = np.arange(0, len(tokens) + 1, 40)
    keep_prob = np.ones(10 + 4000)
    keep_prob[:10] = np.linspace(0.05, 0.95, 10)
    copies = 30
    pool = build_sentence_pool(tokens, offsets, keep_prob, copies, np.random.default_rng(9))
    assert pool.num_sentences == copies * 400
    kept = np.bincount(pool.tokens, minlength=len(keep_prob))
    trials = copies * np.bincount(tokens, minlength=len(keep_prob))
    for word in range(10):
        p = keep_prob[word]
        sd = np.sqrt(trials[word] * p * (1 - p))
        assert abs(kept[word] - trials[word] * p) < 5 * sd, (word, kept[word], trials[word] * p)
    np.testing.assert_array_equal(kept[10:], trials[10:])
    # order within a sentence is kept: each pooled sentence ends with its 10 rare words in order
    last = pool.tokens[pool.offsets[1:] - 1]
    np.testing.assert_array_equal(last, np.tile(10 + np.arange(400) * 10 + 9, copies))


def test_pool_uses_the_corpus_keep_prob():
    sentences = [["the", "cat", "sat"], ["the", "dog", "ran", "far"]] * 50
    corpus = build_corpus(sentences)
    tokens, offsets = corpus.training_sentences()
    pool = build_sentence_pool(tokens, offsets, corpus.keep_prob, 30, np.random.default_rng(0))
    assert corpus.keep_prob[corpus.word2ind["the"]] < 0.1
    kept_the = np.sum(pool.tokens == corpus.word2ind["the"])
    assert kept_the < 0.2 * 30 * 100   # "the" (count 100 in 350 tokens) is mostly dropped


def test_pool_drops_sentences_left_with_fewer_than_two_words():
    tokens = np.array([0, 1, 0, 1, 0, 2, 3], np.int32)
    offsets = np.array([0, 2, 4, 7])
    keep_prob = np.array([0.5, 0.5, 1.0, 1.0])
    pool = build_sentence_pool(tokens, offsets, keep_prob, 200, np.random.default_rng(2))
    lengths = np.diff(pool.offsets)
    assert lengths.min() >= 2
    assert set(lengths) == {2, 3}  # [0 1] survives only whole, [0 2 3] as [2 3] or whole
    assert np.sum(lengths == 2) > 50


def test_pool_with_no_possible_window_is_an_error():
    tokens = np.array([0, 0, 1], np.int32)
    with pytest.raises(ValueError, match="two different words"):
        build_sentence_pool(tokens, np.array([0, 2, 3]), np.ones(2), 2, np.random.default_rng(0))


# --------------------------------------------------------------------------- windows

def test_windows_are_contiguous_with_a_size_uniform_in_1_to_m():
    length, m = 60, 4
    pool = pool_of(list(range(length)))   # word id = position: a context reveals its window
    table = NegativeTable.from_weights(np.ones(length))
    batch = sample_minibatch(np.random.default_rng(0), pool, table, 20_000, m, 0)
    assert batch.negatives is None
    sizes = []
    for c, context, n in zip(batch.centers, batch.contexts, batch.context_lengths):
        assert np.all(context[n:] == -1)
        left, right = context[:n][context[:n] < c], context[:n][context[:n] > c]
        size = max(len(left), len(right))
        assert 1 <= size <= m
        np.testing.assert_array_equal(
            context[:n], list(range(max(0, c - size), c)) + list(range(c + 1, min(length, c + size + 1))))
        if m <= c < length - m:  # away from the edges the size is visible
            sizes.append(size)
    observed = np.bincount(sizes, minlength=m + 1)[1:]
    _, p_value = stats.chisquare(observed)
    assert p_value > 1e-3
    _, p_value = stats.chisquare(np.bincount(batch.centers, minlength=length))
    assert p_value > 1e-3  # centres uniform over the positions


def test_centre_occurrences_are_removed_and_empty_windows_redrawn():
    pool = pool_of([5, 5, 5], [5, 1, 5, 2, 5])   # [5 5 5] never yields a window
    table = NegativeTable.from_weights(np.ones(6))
    batch = sample_minibatch(np.random.default_rng(1), pool, table, 3000, 2, 3)
    for c, context, n, negatives in zip(batch.centers, batch.contexts, batch.context_lengths,
                                        batch.negatives):
        assert n >= 1
        assert c not in context[:n]
        assert set(context[:n]) <= {1, 2, 5}
        assert np.all(negatives[:n] != context[:n, None])  # never the outside word itself
        assert np.all(negatives[n:] == -1)
    assert set(batch.centers) == {1, 2, 5}
    contexts_of_5 = {tuple(x[:n]) for c, x, n in zip(batch.centers, batch.contexts,
                                                     batch.context_lengths) if c == 5}
    assert contexts_of_5 == {(1,), (1, 2), (2,)}


def test_minibatches_are_reproducible_from_the_generator_state():
    pool = pool_of(list(range(20)), [3, 4, 5, 6])
    table = NegativeTable.from_weights(np.arange(1.0, 21))
    rng = np.random.default_rng(11)
    state = rng.bit_generator.state
    first = sample_minibatch(rng, pool, table, 50, 5, 10)
    second = sample_minibatch(rng, pool, table, 50, 5, 10)
    rng.bit_generator.state = state
    again = sample_minibatch(rng, pool, table, 50, 5, 10)
    for name in ("centers", "contexts", "context_lengths", "negatives"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    assert not np.array_equal(first.contexts, second.contexts)
    out = Minibatch.empty(50, 5, 10)
    rng.bit_generator.state = state
    assert sample_minibatch(rng, pool, table, 50, 5, 10, out=out) is out
    np.testing.assert_array_equal(out.negatives, first.negatives)


def test_each_training_stream_draws_its_own_share_of_the_minibatch():
    pool = pool_of(list(range(20)), [3, 4, 5, 6], [7, 8, 9])
    table = NegativeTable.from_weights(np.arange(1.0, 21))
    batch_size = 50  # not a multiple of the 8 streams: shares of 6 and 7 windows
    together = sample_minibatch(training_streams(5), pool, table, batch_size, 3, 4)
    alone = [sample_minibatch(rng, pool, table, (s + 1) * batch_size // TRAINING_STREAMS
                              - s * batch_size // TRAINING_STREAMS, 3, 4)
             for s, rng in enumerate(training_streams(5))]
    for name in ("centers", "contexts", "context_lengths", "negatives"):
        np.testing.assert_array_equal(getattr(together, name),
                                      np.concatenate([getattr(share, name) for share in alone]))
    assert len(training_streams(5)) == TRAINING_STREAMS
    assert not np.array_equal(alone[0].centers[:6], alone[1].centers[:6])  # independent streams
    with pytest.raises(ValueError, match="rngs"):
        sample_minibatch([], pool, table, 10, 3, 4)
