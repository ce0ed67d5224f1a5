"""Compare training runs from MLflow: a ranked table, seed groups and two figures.

    python -m pipeline.compare                                  # finished runs of experiment mlflow.experiment
    python -m pipeline.compare compare.parent_run=latest        # the children of the newest sweep
    python -m pipeline.compare compare.parent_run=<run id or name> compare.metric=eval_simlex_spearman

Writes into compare.output_dir (default reports/compare/, replaced as a whole):
- runs.csv, runs.md: one row per run, best first by compare.metric, the swept parameters as columns
  (the `params.*` whose values differ between the runs);
- seed_groups.csv (and a section of runs.md): runs that differ only in train.seed, as
  mean ± standard deviation over the seeds;
- loss_curves.png: the `loss_smoothed` history of every run, overlaid;
- metric_vs_params.png: compare.metric against each swept parameter (one panel each).
With a parent run, all of them are also logged as artifacts of the parent (under compare/).
Ranking is descending, except for metrics whose name contains "loss" or ends in "_oov".
"""
import math
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig

from pipeline.common import StageError, project_path, stage
from w2v.atomic import atomic_directory

PARENT_TAG = "tags.mlflow.parentRunId"
LOSS_CURVE = "loss_smoothed"
# params that describe where a run wrote, not what it trained
NOT_SWEPT_PREFIXES = ("paths.", "hydra.", "evaluate.", "compare.")


def lower_is_better(metric: str) -> bool:
    return "loss" in metric or metric.endswith("_oov")


def is_seed(param: str) -> bool:
    return param == "seed" or param.endswith(".seed")


def search_runs(client: MlflowClient, experiment_id: str, filter_string: str) -> pd.DataFrame:
    """mlflow.search_runs (one row per run, pandas) on the store of `client`."""
    mlflow.set_tracking_uri(client.tracking_uri)  # the fluent search reads the global store
    return mlflow.search_runs([experiment_id], filter_string=filter_string, output_format="pandas")


def resolve_parent(client: MlflowClient, experiment_id: str, parent: str) -> str:
    """The run id of `parent`: a run id, a run name in the experiment, or "latest" (newest parent run)."""
    if parent == "latest":
        children = search_runs(client, experiment_id, f"{PARENT_TAG} != ''")
        if children.empty or PARENT_TAG not in children:
            raise StageError(f"experiment {experiment_id} holds no sweep (no run has a parent run): run a sweep first")
        return children.sort_values("start_time").iloc[-1][PARENT_TAG]
    try:
        return client.get_run(parent).info.run_id
    except MlflowException:
        pass
    named = search_runs(client, experiment_id, f"attributes.run_name = '{parent}'")
    if len(named) != 1:
        found = "no run" if named.empty else f"{len(named)} runs"
        raise StageError(f"compare.parent_run={parent!r}: {found} with that id or name in experiment {experiment_id}; "
                         f"pass a run id (see `mlflow ui`) or latest")
    return named.iloc[0]["run_id"]


def load_runs(client: MlflowClient, experiment_id: str, parent_run_id: str | None) -> pd.DataFrame:
    """Finished runs (one row each, MLflow's `params.*`, `metrics.*`, `tags.*` columns).

    With a parent: its children. Without: every run of the experiment that is not a sweep parent.
    """
    runs = search_runs(client, experiment_id, "attributes.status = 'FINISHED'")
    if runs.empty:
        return runs
    if PARENT_TAG not in runs:
        runs[PARENT_TAG] = None
    if parent_run_id:
        return runs[runs[PARENT_TAG] == parent_run_id].reset_index(drop=True)
    parents = set(runs[PARENT_TAG].dropna())
    return runs[~runs["run_id"].isin(parents)].reset_index(drop=True)


def swept_params(runs: pd.DataFrame) -> list[str]:
    """Names (without "params.") of the parameters whose values differ between the runs."""
    names = []
    for column in sorted(c for c in runs.columns if c.startswith("params.")):
        name = column[len("params."):]
        if not name.startswith(NOT_SWEPT_PREFIXES) and runs[column].astype(str).nunique(dropna=False) > 1:
            names.append(name)
    return names


def _as_numbers(values: pd.Series) -> pd.Series | None:
    """The values as numbers if every one of them is numeric, else None (categorical)."""
    numbers = pd.to_numeric(values, errors="coerce")
    return None if numbers.isna().any() else numbers


def ranked_table(runs: pd.DataFrame, metric: str, params: list[str]) -> pd.DataFrame:
    """One row per run, best first by `metric` (runs without it last): run, swept params, metrics."""
    metric_columns = [metric] + sorted(
        c[len("metrics."):] for c in runs.columns
        if c.startswith("metrics.eval_") and c != f"metrics.{metric}")
    if f"metrics.{LOSS_CURVE}" in runs and LOSS_CURVE not in metric_columns:
        metric_columns.append(LOSS_CURVE)
    table = pd.DataFrame({"run": runs["tags.mlflow.runName"] if "tags.mlflow.runName" in runs else runs["run_id"],
                          "run_id": runs["run_id"]})
    for name in params:
        numbers = _as_numbers(runs[f"params.{name}"])
        table[name] = numbers if numbers is not None else runs[f"params.{name}"]
    for name in metric_columns:
        table[name] = runs.get(f"metrics.{name}", np.nan)
    table = table.sort_values(metric, ascending=lower_is_better(metric), na_position="last", kind="stable")
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.reset_index(drop=True)


def seed_groups(table: pd.DataFrame, metric: str, params: list[str]) -> pd.DataFrame:
    """Runs that differ only in seed, grouped: n, mean and sample standard deviation of `metric`."""
    keys = [p for p in params if not is_seed(p)]
    if not keys:  # nothing but seeds varies: one group of all runs
        grouped = table.assign(_all="all runs").groupby("_all", sort=False)
    else:
        grouped = table.groupby(keys, sort=False, dropna=False)
    summary = grouped[metric].agg(n="count", mean="mean", std="std").reset_index()
    summary = summary.drop(columns="_all", errors="ignore")
    summary = summary.sort_values("mean", ascending=lower_is_better(metric), na_position="last", kind="stable")
    summary[f"{metric} (mean ± std)"] = [
        "n/a" if math.isnan(mean) else f"{mean:.4f}" + ("" if math.isnan(std) else f" ± {std:.4f}")
        for mean, std in zip(summary["mean"], summary["std"])]
    return summary.reset_index(drop=True)


def plot_loss_curves(client: MlflowClient, table: pd.DataFrame, params: list[str], path: Path) -> int:
    """Overlay the loss_smoothed history of every run, one colour per seed group; returns how
    many runs had a history."""
    keys = [p for p in params if not is_seed(p)]
    labels = [", ".join(f"{p}={row[p]}" for p in keys) or "all runs" for _, row in table.iterrows()]
    colours = {label: f"C{i % 10}" for i, label in enumerate(dict.fromkeys(labels))}
    figure = Figure(figsize=(8, 5))
    axes = figure.subplots()
    plotted, labelled = 0, set()
    for (_, row), label in zip(table.iterrows(), labels):
        history = sorted((m.step, m.value) for m in client.get_metric_history(row["run_id"], LOSS_CURVE))
        if history:
            steps, values = zip(*history)
            axes.plot(steps, values, linewidth=1, color=colours[label], alpha=0.8,
                      label=None if label in labelled else label)
            labelled.add(label)
            plotted += 1
    axes.set_xlabel("iteration")
    axes.set_ylabel(f"{LOSS_CURVE} (training loss, moving average)")
    axes.set_title(f"Smoothed training loss of {plotted} runs" + (" (one colour per seed group)" if keys else ""))
    if 0 < len(labelled) <= 20:
        axes.legend(fontsize=7)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return plotted


def plot_metric_vs_params(table: pd.DataFrame, metric: str, params: list[str], path: Path) -> None:
    """One panel per swept parameter: every run as a dot, the mean per value as a line."""
    shown = [p for p in params if not is_seed(p)] or params
    figure = Figure(figsize=(max(4 * len(shown), 6), 3.8))
    axes_row = figure.subplots(1, max(len(shown), 1), squeeze=False)
    for axes, param in zip(axes_row[0], shown):
        values = table[param]
        if pd.api.types.is_numeric_dtype(values):
            x = values.astype(float)
            positive = x[x > 0]
            if len(positive) == len(x) and positive.max() / positive.min() >= 50:
                axes.set_xscale("log")
        else:
            categories = list(dict.fromkeys(values.astype(str)))
            x = values.astype(str).map({c: i for i, c in enumerate(categories)}).astype(float)
            axes.set_xticks(range(len(categories)), categories, rotation=20)
        axes.scatter(x, table[metric], s=18, alpha=0.7)
        means = table.assign(_x=x).groupby("_x")[metric].mean()
        axes.plot(means.index, means.values, color="black", linewidth=1)
        axes.set_xlabel(param)
        axes.set_ylabel(metric)
        axes.grid(alpha=0.3)
    if not shown:
        axes_row[0][0].text(0.5, 0.5, "no parameter differs between the runs", ha="center", va="center")
        axes_row[0][0].set_axis_off()
    figure.suptitle(f"{metric} per swept parameter ({len(table)} runs; line: mean)", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def markdown(table: pd.DataFrame, groups: pd.DataFrame, metric: str, params: list[str], title: str) -> str:
    group_columns = [p for p in params if not is_seed(p)] + ["n", f"{metric} (mean ± std)"]
    shown = table.assign(run_id=table["run_id"].str[:8])
    return "\n".join([
        f"# {title}", "",
        f"{len(table)} runs, ranked by `{metric}` ({'lower' if lower_is_better(metric) else 'higher'} is better). "
        f"Swept: {', '.join(f'`{p}`' for p in params) or 'nothing'}.", "",
        shown.to_markdown(index=False, floatfmt=".4f"), "",
        "## Runs that differ only in seed", "",
        groups[group_columns].to_markdown(index=False, floatfmt=".4f"), "",
        "![loss curves](loss_curves.png)", "",
        "![metric against parameters](metric_vs_params.png)", "",
    ])


def compare(client: MlflowClient, experiment_id: str, parent_run_id: str | None, metric: str, output_dir: Path) -> pd.DataFrame:
    """Write the comparison of the runs into `output_dir` (replaced whole); returns the ranked table."""
    runs = load_runs(client, experiment_id, parent_run_id)
    scope = f"children of sweep run {parent_run_id}" if parent_run_id else f"runs of experiment {experiment_id}"
    if runs.empty:
        raise StageError(f"no finished runs among the {scope}: train first (or check compare.parent_run)")
    if f"metrics.{metric}" not in runs or runs[f"metrics.{metric}"].isna().all():
        available = sorted(c[len("metrics."):] for c in runs.columns if c.startswith("metrics.") and runs[c].notna().any())
        raise StageError(f"compare.metric={metric!r} is logged by none of the {scope}; "
                         f"choose one of: {', '.join(available) or '(no metrics)'}")
    params = swept_params(runs)
    table = ranked_table(runs, metric, params)
    groups = seed_groups(table, metric, params)
    with atomic_directory(output_dir) as tmp:
        table.to_csv(tmp / "runs.csv", index=False)
        groups.to_csv(tmp / "seed_groups.csv", index=False)
        (tmp / "runs.md").write_text(markdown(table, groups, metric, params, f"Comparison of the {scope}"), encoding="utf-8")
        plot_loss_curves(client, table, params, tmp / "loss_curves.png")
        plot_metric_vs_params(table, metric, params, tmp / "metric_vs_params.png")
    if parent_run_id:
        client.log_artifacts(parent_run_id, str(output_dir), artifact_path="compare")
    return table


@stage
def main(cfg: DictConfig) -> None:
    from pipeline.tracking import tracking_uri

    uri = tracking_uri()
    client = MlflowClient(uri)
    name = cfg.compare.experiment or cfg.mlflow.experiment
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        raise StageError(f"MLflow experiment {name!r} is not in the store {uri}: train first, or set compare.experiment")
    parent = cfg.compare.parent_run
    parent_run_id = resolve_parent(client, experiment.experiment_id, str(parent)) if parent else None
    output_dir = project_path(cfg.compare.output_dir)
    table = compare(client, experiment.experiment_id, parent_run_id, cfg.compare.metric, output_dir)
    best = table.iloc[0]
    print(f"{len(table)} runs; best by {cfg.compare.metric}: {best['run']} ({best[cfg.compare.metric]:.4f})")
    print(f"wrote {output_dir}/runs.md, runs.csv, seed_groups.csv, loss_curves.png, metric_vs_params.png"
          + (f"; logged to run {parent_run_id}" if parent_run_id else ""), file=sys.stdout)


if __name__ == "__main__":
    main()
