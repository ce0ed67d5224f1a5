"""Bootstrap percentile intervals, the one rule every interval of the evaluation follows.

    from w2v.bootstrap import ratio_interval, paired_interval
    low, high = ratio_interval(loss_per_sentence, pairs_per_sentence)      # sum(a) / sum(b)
    low, high = paired_interval(spearman_of, human_scores, cosines)       # any statistic of pairs

Resample the units (dev sentences, word pairs, questions, test sentences) with replacement,
`RESAMPLES` times from a generator seeded with `SEED`, recompute the same statistic on every
resample and take the 2.5 % and 97.5 % percentiles (scipy.stats.bootstrap, method "percentile").
`half_width` turns an interval into the `<name>_ci95` figure logged to MLflow.
"""
import numpy as np
from scipy.stats import bootstrap

RESAMPLES = 1000
SEED = 0
LEVEL = 0.95


def paired_interval(statistic, *samples, resamples: int = RESAMPLES, seed: int = SEED,
                    level: float = LEVEL, vectorized: bool = False) -> tuple[float, float]:
    """Percentile interval of `statistic(*samples)` when the i-th entries of all samples form one
    unit (resampled together). Each sample is a 1-D array of the same length n >= 2.

    `statistic` takes the resampled arrays (and, when `vectorized`, an `axis` keyword along which
    the resamples are stacked). Returns (nan, nan) when there are fewer than 2 units or the
    statistic is undefined on too many resamples to give a finite interval.
    """
    arrays = [np.asarray(sample, dtype=np.float64) for sample in samples]
    if len({len(array) for array in arrays}) != 1 or any(array.ndim != 1 for array in arrays):
        raise ValueError(f"samples must be 1-D arrays of one length, got shapes {[a.shape for a in arrays]}")
    if len(arrays[0]) < 2:
        return float("nan"), float("nan")
    result = bootstrap(tuple(arrays), statistic, n_resamples=resamples, paired=True, vectorized=vectorized,
                       confidence_level=level, method="percentile", rng=np.random.default_rng(seed))
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return (low, high) if np.isfinite(low) and np.isfinite(high) else (float("nan"), float("nan"))


def _ratio(numerators, denominators, axis=-1):
    return np.sum(numerators, axis=axis) / np.sum(denominators, axis=axis)


def ratio_interval(numerators, denominators, resamples: int = RESAMPLES, seed: int = SEED,
                   level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of sum(numerators) / sum(denominators), one entry per unit.

    For a mean per pair over sentences: numerators[i] is sentence i's sum over its pairs,
    denominators[i] its number of pairs (units with no pair may be included; they only change
    which sentences a resample draws).
    """
    return paired_interval(_ratio, numerators, denominators, resamples=resamples, seed=seed,
                           level=level, vectorized=True)


def mean_interval(values, resamples: int = RESAMPLES, seed: int = SEED, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of the mean of `values` (e.g. 0/1 correctness per test sentence)."""
    values = np.asarray(values, dtype=np.float64)
    return ratio_interval(values, np.ones_like(values), resamples=resamples, seed=seed, level=level)


def half_width(interval: tuple[float, float]) -> float:
    """Half the width of an interval: the `<name>_ci95` figure."""
    low, high = interval
    return (high - low) / 2
