"""The statistics of pipeline.compare: metric directions, seed groups with t-intervals, the
distinguishability rule and parameter importance (one-way eta squared).

Every figure a run reports may carry `<name>_ci95`, the half-width of its 95% bootstrap interval
(pipeline.evaluate). The rules here use it only where a group has a single seed.
"""
import itertools
import math

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
CI_SUFFIX = "_ci95"

# Which way is better, declared per metric (never guessed from a name). Ranking by a metric that
# is not here is refused, so a new figure cannot be ranked the wrong way round by accident.
DIRECTIONS = {
    "eval_heldout_nll": "lower",
    "eval_heldout_ns_loss": "lower",
    "eval_heldout_recall10": "higher",
    "eval_heldout_oov": "lower",
    "eval_heldout_nll_vs_unigram": "lower",      # figure - reference, paired interval
    "eval_heldout_ns_loss_vs_zero": "lower",
    "eval_heldout_recall10_vs_frequent": "higher",
    "eval_ws353_spearman": "higher",
    "eval_simlex_spearman": "higher",
    "eval_analogy_acc": "higher",
    "eval_sst5_acc": "higher",
    "eval_sst2_acc": "higher",
    "eval_sst5_acc_random": "higher",
    "eval_sst2_acc_random": "higher",
    "eval_ws353_oov": "lower",
    "eval_simlex_oov": "lower",
    "eval_analogy_oov": "lower",
    "final_loss_smoothed": "lower",
}
# the held-out figures every report shows, whatever the ranking metric
HELDOUT = ("eval_heldout_ns_loss", "eval_heldout_nll", "eval_heldout_recall10")


def lower_is_better(metric: str) -> bool:
    """True/False from DIRECTIONS; KeyError for a metric without a declared direction."""
    return DIRECTIONS[metric] == "lower"


def is_seed(param: str) -> bool:
    return param == "seed" or param.endswith(".seed")


def t_half_width(values: np.ndarray) -> float:
    """Half-width of the 95% t-interval of the mean of `values` (NaN below two values)."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n < 2:
        return math.nan
    return float(stats.t.ppf(1 - ALPHA / 2, n - 1) * values.std(ddof=1) / math.sqrt(n))


def _interval(group: pd.Series) -> tuple[float, float]:
    """(low, high): the t-interval over seeds, or the run's bootstrap interval for one seed."""
    half = group["t_ci95"] if group["n"] >= 2 else group["bootstrap_ci95"]
    return group["mean"] - half, group["mean"] + half


def distinguishable(group: pd.Series, best: pd.Series, samples: dict, key) -> tuple[str, float]:
    """("yes" | "no" | "n/a", Welch p-value or NaN) of `group` against the `best` group.

    Two or more seeds on both sides: Welch's two-sided t-test at ALPHA. Otherwise the two 95%
    intervals (bootstrap for a one-seed group, t over seeds for the other) must not overlap;
    "n/a" when a one-seed run has no bootstrap interval.
    """
    if group["n"] >= 2 and best["n"] >= 2:
        a, b = samples[key], samples[best["_key"]]
        if np.std(a) == 0 and np.std(b) == 0:  # no spread at all: the test is undefined
            return ("no" if np.mean(a) == np.mean(b) else "yes"), math.nan
        p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
        return ("yes" if p < ALPHA else "no"), p
    low, high = _interval(group)
    best_low, best_high = _interval(best)
    if any(math.isnan(x) for x in (low, high, best_low, best_high)):
        return "n/a", math.nan
    return ("yes" if high < best_low or best_high < low else "no"), math.nan


def seed_groups(table: pd.DataFrame, metric: str, params: list[str]) -> pd.DataFrame:
    """Runs that differ only in seed, one row each, best group first.

    Columns: the non-seed params, n, mean, t_ci95 (half-width of the 95% t-interval over seeds),
    bootstrap_ci95 (the run's own interval when n == 1), distinguishable_from_best, p_welch.
    """
    keys = [p for p in params if not is_seed(p)]
    rated = table[table[metric].notna()]
    grouped = rated.groupby(keys, sort=False, dropna=False) if keys else [((), rated)]
    rows, samples = [], {}
    ci_column = metric + CI_SUFFIX
    for i, (values, runs) in enumerate(grouped):
        values = values if isinstance(values, tuple) else (values,)
        samples[i] = runs[metric].to_numpy(dtype=float)
        single_ci = runs[ci_column].iloc[0] if len(runs) == 1 and ci_column in runs else math.nan
        rows.append({**dict(zip(keys, values)), "n": len(runs), "mean": samples[i].mean(),
                     "t_ci95": t_half_width(samples[i]), "bootstrap_ci95": float(single_ci), "_key": i})
    groups = pd.DataFrame(rows, columns=keys + ["n", "mean", "t_ci95", "bootstrap_ci95", "_key"])
    groups = groups.sort_values("mean", ascending=lower_is_better(metric), kind="stable").reset_index(drop=True)
    verdicts = [("best", math.nan) if i == 0 else distinguishable(row, groups.iloc[0], samples, row["_key"])
                for i, row in groups.iterrows()]
    groups["distinguishable_from_best"] = [v for v, _ in verdicts]
    groups["p_welch"] = [p for _, p in verdicts]
    return groups.drop(columns="_key")


def varies_with(table: pd.DataFrame, params: list[str]) -> dict[str, list[str]]:
    """Per parameter, the other parameters whose values follow its own one to one over the runs
    (a per-loss default such as train.lr in a sweep over loss.name): their effects cannot be told
    apart, and their eta squared is one shared figure."""
    levels = {param: table[param].astype(str) for param in params}
    together = {param: [] for param in params}
    for first, second in itertools.combinations(params, 2):
        pairs = pd.DataFrame({"a": levels[first], "b": levels[second]}).drop_duplicates()
        if len(pairs) == levels[first].nunique() == levels[second].nunique():  # one to one
            together[first].append(second)
            together[second].append(first)
    return {param: sorted(others) for param, others in together.items()}


def eta_squared(table: pd.DataFrame, metric: str, params: list[str]) -> pd.DataFrame:
    """Per parameter: the share of the metric's variance over all runs explained by its values
    (one-way eta squared = between-value sum of squares / total sum of squares), largest first.

    Columns: parameter, values (how many distinct ones), eta2 (NaN when the metric does not vary).
    """
    rated = table[table[metric].notna()]
    y = rated[metric].to_numpy(dtype=float)
    total = float(((y - y.mean()) ** 2).sum())
    rows = []
    for param in params:
        levels = rated[param].astype(str)
        means = rated.groupby(levels)[metric].transform("mean").to_numpy(dtype=float)
        between = float(((means - y.mean()) ** 2).sum())
        rows.append({"parameter": param, "values": levels.nunique(),
                     "eta2": between / total if total > 0 else math.nan})
    result = pd.DataFrame(rows, columns=["parameter", "values", "eta2"])
    return result.sort_values("eta2", ascending=False, na_position="last", kind="stable").reset_index(drop=True)
