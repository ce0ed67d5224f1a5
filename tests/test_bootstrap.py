"""Bootstrap intervals: the percentile rule, pairing, seeds and degenerate samples."""
import numpy as np
import pytest
from scipy.stats import spearmanr

from w2v.bootstrap import half_width, mean_interval, paired_interval, ratio_interval


def test_ratio_interval_matches_a_hand_written_percentile_bootstrap_of_the_same_draws():
    rng = np.random.default_rng(1)
    pairs = rng.integers(1, 20, size=60).astype(float)
    sums = pairs * rng.normal(5.0, 1.0, size=60)
    low, high = ratio_interval(sums, pairs, resamples=500, seed=3)
    # the same resampling by hand: scipy draws the indices from the generator in one call
    index = np.random.default_rng(3).integers(0, 60, size=(500, 60))
    ratios = sums[index].sum(axis=1) / pairs[index].sum(axis=1)
    assert low == pytest.approx(np.percentile(ratios, 2.5), rel=1e-12)
    assert high == pytest.approx(np.percentile(ratios, 97.5), rel=1e-12)
    assert low < sums.sum() / pairs.sum() < high


def test_same_seed_same_interval_other_seed_other_interval():
    values = np.random.default_rng(0).random(100)
    assert mean_interval(values, seed=5) == mean_interval(values, seed=5)
    assert mean_interval(values, seed=5) != mean_interval(values, seed=6)


def test_mean_interval_narrows_with_more_units():
    rng = np.random.default_rng(2)
    small = half_width(mean_interval(rng.random(50) < 0.3))
    large = half_width(mean_interval(rng.random(5000) < 0.3))
    assert large < small / 5


def test_paired_statistic_keeps_pairs_together():
    x = np.arange(40, dtype=float)
    low, high = paired_interval(lambda a, b: spearmanr(a, b).statistic, x, 2 * x + 1)
    assert (low, high) == pytest.approx((1.0, 1.0))  # every resample of perfectly ranked pairs is perfectly ranked


def test_fewer_than_two_units_give_no_interval_and_mismatched_samples_are_refused():
    assert all(np.isnan(mean_interval([1.0])))
    with pytest.raises(ValueError, match="one length"):
        paired_interval(lambda a, b: 0.0, [1, 2, 3], [1, 2])
