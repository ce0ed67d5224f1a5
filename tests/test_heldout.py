"""w2v.heldout: the fixed held-out protocol against slow, written-out references on tiny corpora."""
import math

import numpy as np
import pytest

from w2v.heldout import (HeldoutProtocol, draw_negatives, heldout_figures, heldout_report, ns_loss_per_pair,
                         sample_sentences, window_pairs)
from w2v.sampling import NegativeTable


def tiny_corpus(seed=3, V=30, d=4, sentences=40):
    """Random sentences over V words, some with training count 0, and random vectors."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 5, V).astype(np.int64)
    lengths = rng.integers(1, 9, sentences)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    tokens = rng.integers(0, V, offsets[-1]).astype(np.int32)
    return tokens, offsets, counts, rng.normal(size=(V, d)), rng.normal(size=(V, d))


def reference_pairs(tokens, offsets, window):
    """Every (centre, outside) pair of the full windows, centre occurrences left out, by loops."""
    pairs = []
    for s in range(len(offsets) - 1):
        sentence = tokens[offsets[s]:offsets[s + 1]]
        for i, c in enumerate(sentence):
            pairs += [(s, int(c), int(o)) for j, o in enumerate(sentence) if j != i and abs(j - i) <= window and o != c]
    return pairs


def reference_figures(tokens, offsets, counts, center, outside, window):
    """(mean NLL, recall@10, share left out) written out pair by pair over the training vocabulary."""
    vocabulary = [w for w in range(len(counts)) if counts[w] > 0]
    nll = hits = used = 0
    pairs = reference_pairs(tokens, offsets, window)
    for _, c, o in pairs:
        if counts[c] == 0 or counts[o] == 0:
            continue
        scores = {w: float(outside[w] @ center[c]) for w in vocabulary}
        nll += math.log(sum(math.exp(x) for x in scores.values())) - scores[o]
        at_least_as_high = sum(1 for w in vocabulary if w not in (c, o) and scores[w] >= scores[o])
        hits += at_least_as_high < 10
        used += 1
    return nll / used, hits / used, (len(pairs) - used) / len(pairs)


def test_nll_recall_and_oov_share_match_the_written_out_reference():
    tokens, offsets, counts, center, outside = tiny_corpus()
    for window in (1, 2, 5):
        result = heldout_figures(tokens, offsets, center, outside, counts, HeldoutProtocol(window=window, K=3))
        nll, recall, oov = reference_figures(tokens, offsets, counts, center, outside, window)
        assert result.figures["nll"] == pytest.approx(nll, rel=1e-12)
        assert result.figures["recall10"] == pytest.approx(recall, abs=1e-15)
        assert result.oov_share == pytest.approx(oov, abs=1e-15)
        assert 0 < result.oov_share < 1 and 0 < recall < 1


def test_window_pairs_are_the_full_windows_without_the_centre_word():
    tokens = np.array([4, 5, 4, 6, 7, 8, 8], np.int32)  # sentences [4 5 4 6] [7] [8 8]
    offsets = np.array([0, 4, 5, 7])
    centres, outsides, sentence = window_pairs(tokens, offsets, 2)
    got = sorted(zip(sentence.tolist(), centres.tolist(), outsides.tolist()))
    assert got == sorted(reference_pairs(tokens, offsets, 2))
    assert (0, 4, 4) not in got and all(s != 2 for s, _, _ in got)  # [8 8] has only centre occurrences


def test_ns_loss_with_identical_outside_rows_does_not_depend_on_which_negatives_are_drawn():
    tokens, offsets, counts, center, _ = tiny_corpus(seed=5)
    u = np.array([0.3, -0.2, 0.5, 0.1])
    outside = np.tile(u, (len(counts), 1))
    result = heldout_figures(tokens, offsets, center, outside, counts, HeldoutProtocol(window=2, K=4))
    expected = [-math.log(1 / (1 + math.exp(-u @ center[c]))) - 4 * math.log(1 / (1 + math.exp(u @ center[c])))
                for _, c, o in reference_pairs(tokens, offsets, 2) if counts[c] > 0 and counts[o] > 0]
    assert result.figures["ns_loss"] == pytest.approx(np.mean(expected), rel=1e-12)
    assert result.figures["nll"] == pytest.approx(math.log((counts > 0).sum()), rel=1e-12)  # uniform
    assert result.figures["recall10"] == 0.0  # all scores tie: ties count against the outside word


def test_ns_loss_per_pair_is_the_negative_sampling_loss():
    rng = np.random.default_rng(0)
    center, outside = rng.normal(size=(6, 3)), rng.normal(size=(6, 3))
    centres, outsides = np.array([0, 1, 5]), np.array([2, 3, 0])
    negatives = np.array([[1, 1], [4, 0], [5, 3]])

    def log_sigmoid(x):
        return -math.log(1 + math.exp(-x))

    expected = [-log_sigmoid(outside[o] @ center[c]) - sum(log_sigmoid(-outside[k] @ center[c]) for k in ks)
                for c, o, ks in zip(centres, outsides, negatives)]
    assert ns_loss_per_pair(center, outside, centres, outsides, negatives) == pytest.approx(expected, rel=1e-12)


def test_negatives_follow_counts_to_the_power_0_75_and_never_equal_the_outside_word():
    counts = np.array([0, 1, 16, 81, 0])
    table = NegativeTable.from_weights(counts ** 0.75)
    outsides = np.full(40_000, 3)
    negatives = draw_negatives(np.random.default_rng(1), outsides, 5, table)
    assert not np.isin(negatives, [0, 3, 4]).any()  # count 0 never, the outside word never
    share_of_2 = (negatives == 2).mean()
    assert share_of_2 == pytest.approx(8 / 9, abs=0.01)  # 16^0.75 = 8 against 1^0.75 = 1
    again = draw_negatives(np.random.default_rng(1), outsides, 5, table)
    assert np.array_equal(negatives, again)


def test_references_are_the_unigram_the_zero_vectors_and_the_ten_most_frequent_words():
    rng = np.random.default_rng(2)
    V = 40
    counts = rng.permutation(np.arange(1, V + 1)).astype(np.int64) * 3  # distinct counts, no ties
    counts[[7, 11]] = 0
    lengths = rng.integers(2, 10, 60)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    tokens = rng.integers(0, V, offsets[-1]).astype(np.int32)
    pairs = [(c, o) for _, c, o in reference_pairs(tokens, offsets, 3) if counts[c] > 0 and counts[o] > 0]
    top11 = list(np.argsort(-counts)[:11])
    unigram = np.mean([-math.log(counts[o] / counts.sum()) for _, o in pairs])
    frequent = np.mean([o in [w for w in top11 if w != c][:10] for c, o in pairs])

    zero = np.zeros((V, 5))
    result = heldout_figures(tokens, offsets, zero, zero, counts, HeldoutProtocol(window=3, K=7))
    assert result.references["nll"] == pytest.approx(unigram, rel=1e-12)
    assert result.references["ns_loss"] == pytest.approx(8 * math.log(2), rel=1e-15)
    assert result.references["recall10"] == pytest.approx(frequent, abs=1e-15)
    assert result.figures["ns_loss"] == pytest.approx(8 * math.log(2), rel=1e-12)  # zero vectors score it exactly

    # vectors whose scores are the log unigram probabilities predict exactly the unigram reference
    log_p = np.log(np.where(counts > 0, counts, 1) / counts.sum())
    center, outside = np.ones((V, 1)), log_p[:, None]
    unigram_model = heldout_figures(tokens, offsets, center, outside, counts, HeldoutProtocol(window=3, K=7))
    assert unigram_model.figures["nll"] == pytest.approx(unigram, rel=1e-12)
    assert unigram_model.figures["recall10"] == pytest.approx(frequent, abs=1e-15)


def test_recall_and_nll_do_not_change_with_a_per_centre_shift_of_the_scores():
    tokens, offsets, counts, _, _ = tiny_corpus(seed=9, V=60, sentences=80)
    rng = np.random.default_rng(4)
    # small integers: every score is exact in floating point, so ranks cannot move by rounding
    center, outside = rng.integers(-3, 4, (60, 4)).astype(float), rng.integers(-3, 4, (60, 4)).astype(float)
    shift = rng.integers(-50, 50, 60).astype(float)  # u_w.v_c + shift[c] for every w
    shifted = heldout_figures(tokens, offsets, np.column_stack([center, shift]),
                              np.column_stack([outside, np.ones(60)]), counts)
    plain = heldout_figures(tokens, offsets, center, outside, counts)
    assert shifted.figures["recall10"] == plain.figures["recall10"] and 0 < plain.figures["recall10"] < 1
    assert shifted.figures["nll"] == pytest.approx(plain.figures["nll"], rel=1e-12)
    assert shifted.figures["ns_loss"] != pytest.approx(plain.figures["ns_loss"])  # NS loss is not shift-free


def test_intervals_hold_the_figures_and_metrics_carry_their_half_width():
    tokens, offsets, counts, center, outside = tiny_corpus(seed=11, sentences=200)
    result = heldout_figures(tokens, offsets, center, outside, counts)
    metrics = result.metrics()
    for name in ("nll", "ns_loss", "recall10"):
        low, high = result.intervals[name]
        assert low < result.figures[name] < high
        assert metrics[f"eval_heldout_{name}_ci95"] == pytest.approx((high - low) / 2)
        assert metrics[f"eval_heldout_{name}"] == result.figures[name]
    assert metrics["eval_heldout_oov"] == result.oov_share
    again = heldout_figures(tokens, offsets, center, outside, counts)
    assert again.figures == result.figures and again.intervals == result.intervals  # fixed seeds


def test_max_sentences_evaluates_a_seeded_sample_of_whole_sentences():
    tokens, offsets, counts, center, outside = tiny_corpus(seed=12, sentences=100)
    everything = heldout_figures(tokens, offsets, center, outside, counts, HeldoutProtocol(max_sentences=None))
    assert heldout_figures(tokens, offsets, center, outside, counts, HeldoutProtocol(max_sentences=100)).figures \
        == everything.figures
    sample = heldout_figures(tokens, offsets, center, outside, counts, HeldoutProtocol(max_sentences=30))
    assert sample.sentences == 30 and sample.figures != everything.figures
    sampled_tokens, sampled_offsets = sample_sentences(np.random.default_rng(0), tokens, offsets, 30)
    sentences = {tuple(tokens[a:b]) for a, b in zip(offsets[:-1], offsets[1:])}
    assert len(sampled_offsets) == 31
    assert all(tuple(sampled_tokens[a:b]) in sentences for a, b in zip(sampled_offsets[:-1], sampled_offsets[1:]))


def test_trained_vectors_have_a_lower_ns_loss_than_their_initial_vectors(fixture_corpus):
    from w2v.corpus import load_corpus
    from w2v.trainer import TrainConfig, initial_vectors, train

    corpus = load_corpus(fixture_corpus)
    config = TrainConfig(dim=5, window=3, K=10, lr=0.3, iterations=300, batch_size=8, anneal_every=100,
                         checkpoint_every=1000, log_every=10, pool_copies=2)
    result = train(corpus, config)
    tokens, offsets = corpus.sentences_of("all")
    trained = heldout_figures(tokens, offsets, result.center_vectors, result.outside_vectors, corpus.counts)
    untrained = heldout_figures(tokens, offsets, *initial_vectors(corpus.vocab_size, 5, np.random.default_rng(0)),
                                corpus.counts)
    assert trained.figures["ns_loss"] < untrained.figures["ns_loss"] == pytest.approx(11 * math.log(2))  # zero outside vectors


def test_no_pair_of_training_words_gives_none_and_bad_protocols_are_refused():
    tokens, offsets = np.array([0, 1, 2], np.int32), np.array([0, 3])
    assert heldout_figures(tokens, offsets, np.ones((3, 2)), np.ones((3, 2)), np.array([0, 0, 5])) is None
    for bad in (dict(window=0), dict(K=0), dict(max_sentences=0), dict(window=2.5), dict(seed=-1)):
        with pytest.raises(ValueError, match="evaluate.heldout."):
            HeldoutProtocol(**bad)
    with pytest.raises(ValueError, match="must both be"):
        heldout_figures(tokens, offsets, np.ones((3, 2)), np.ones((4, 2)), np.array([1, 1, 1]))


def test_report_lists_each_figure_beside_its_reference_or_the_note():
    tokens, offsets, counts, center, outside = tiny_corpus()
    result = heldout_figures(tokens, offsets, center, outside, counts)
    report = heldout_report(result)
    low, high = result.intervals["ns_loss"]
    zero = 11 * math.log(2)
    assert (f"| NS loss, fixed negatives | {result.figures['ns_loss']:.4f} | [{low:.4f}, {high:.4f}] | "
            f"all-zero vectors, (K+1) ln 2 | {zero:.4f} | {result.figures['ns_loss'] - zero:+.4f} | "
            f"[{low - zero:+.4f}, {high - zero:+.4f}] | lower |") in report
    assert "No held-out figures: because." in heldout_report(None, note="because.")


def pair_model(tokens, offsets, counts, window, smoothing):
    """Vectors (dim V) whose scores are log p(o|c) from the pairs' own counts, mixed with the unigram:
    centre vectors the identity, outside vector w the column log p(w|.)."""
    V = len(counts)
    unigram = np.where(counts > 0, counts, 0) / counts.sum()
    joint = np.zeros((V, V))
    for _, c, o in reference_pairs(tokens, offsets, window):
        joint[c, o] += 1
    conditional = joint / np.maximum(joint.sum(axis=1, keepdims=True), 1)
    mixed = (1 - smoothing) * unigram + smoothing * conditional
    return np.eye(V), np.log(np.where(mixed > 0, mixed, 1e-300)).T


def test_the_difference_from_each_reference_has_a_paired_interval_that_says_which_side_it_is_on():
    tokens, offsets, counts, _, _ = tiny_corpus(seed=5, V=40, sentences=300)
    counts = np.bincount(tokens, minlength=40).astype(np.int64)  # the vectors see their own pairs' counts
    protocol = HeldoutProtocol(window=2, K=5)
    log_p = np.log(np.where(counts > 0, counts, 1) / counts.sum())
    unigram = heldout_figures(tokens, offsets, np.ones((40, 1)), log_p[:, None], counts, protocol)
    informed = heldout_figures(tokens, offsets, *pair_model(tokens, offsets, counts, 2, 0.5), counts, protocol)
    uniform = heldout_figures(tokens, offsets, np.zeros((40, 2)), np.zeros((40, 2)), counts, protocol)
    for result in (unigram, informed, uniform):
        for name in ("nll", "ns_loss", "recall10"):
            assert result.differences[name] == pytest.approx(result.figures[name] - result.references[name], abs=1e-12)
            low, high = result.difference_intervals[name]
            assert low <= result.differences[name] <= high
            metrics = result.metrics()
            vs = {"nll": "unigram", "ns_loss": "zero", "recall10": "frequent"}[name]
            assert metrics[f"eval_heldout_{name}_vs_{vs}"] == result.differences[name]
            assert metrics[f"eval_heldout_{name}_vs_{vs}_ci95"] == pytest.approx((high - low) / 2)
    assert unigram.difference_intervals["nll"] == pytest.approx((0, 0), abs=1e-9)  # the reference itself
    assert "NLL: not distinguishable from the unigram of the training counts." in heldout_report(unigram)
    assert informed.difference_intervals["nll"][1] < 0
    assert "NLL: better than the unigram of the training counts." in heldout_report(informed)
    assert uniform.difference_intervals["nll"][0] > 0
    assert "NLL: worse than the unigram of the training counts." in heldout_report(uniform)
    # pairing: the difference's interval is narrower than the figure's own when both move together
    width = lambda interval: interval[1] - interval[0]
    assert width(informed.difference_intervals["nll"]) < width(informed.intervals["nll"])
