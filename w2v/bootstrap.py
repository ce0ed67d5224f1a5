"""Bootstrap percentile intervals: resample units (sentences, word pairs, questions) with replacement.

Every interval of the evaluation uses the same rule: 1,000 resamples, a fixed seed, the 95%
percentile interval of the statistic over the resamples (scipy.stats.bootstrap, method
"percentile"). `ratio_interval` is the common case: a figure that is sum(numerators) /
sum(denominators) over the units (a mean per outside word over sentences, an accuracy over
questions), with the numerator and denominator of a unit resampled together.
"""
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

RESAMPLES = 1000
CONFIDENCE = 0.95
SEED = 0


@dataclass(frozen=True)
class Interval:
    """A 95% percentile bootstrap interval [low, high] (NaN when it cannot be computed)."""
    low: float
    high: float

    @property
    def half_width(self) -> float:
        """(high - low) / 2, the `_ci95` figure MLflow shows."""
        return (self.high - self.low) / 2

    def as_dict(self) -> dict[str, float | None]:
        """{"low": ..., "high": ...} with None for NaN (JSON has no NaN)."""
        return {"low": _finite_or_none(self.low), "high": _finite_or_none(self.high)}


NO_INTERVAL = Interval(math.nan, math.nan)


def _finite_or_none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def _ratio(numerators, denominators, axis=-1):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(numerators, axis=axis) / np.sum(denominators, axis=axis)


def bootstrap_interval(statistic, *samples, vectorized: bool = False, seed: int = SEED,
                       resamples: int = RESAMPLES) -> Interval:
    """Percentile interval of statistic(*samples) with the units (rows of equal-length 1-D samples)
    resampled together. `statistic` takes the resampled arrays (and `axis` when vectorized).
    NaN when there are fewer than 2 units or the statistic is undefined on the resamples."""
    samples = [np.asarray(sample, dtype=np.float64) for sample in samples]
    if len(samples[0]) < 2:
        return NO_INTERVAL
    result = stats.bootstrap(
        samples, statistic, n_resamples=resamples, paired=True, vectorized=vectorized,
        confidence_level=CONFIDENCE, method="percentile", rng=np.random.default_rng(seed),
    )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return Interval(low, high) if not (math.isnan(low) or math.isnan(high)) else NO_INTERVAL


def ratio_interval(numerators, denominators, seed: int = SEED, resamples: int = RESAMPLES) -> Interval:
    """Interval of sum(numerators) / sum(denominators), resampling the units (float (n,) each)."""
    return bootstrap_interval(_ratio, numerators, denominators, vectorized=True, seed=seed, resamples=resamples)
