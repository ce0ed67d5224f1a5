"""Compare training runs from MLflow: a ranked table with intervals, seed groups that say which
settings are distinguishable from the best, parameter importance, and a report.

    python -m pipeline.compare                                  # finished runs of experiment mlflow.experiment
    python -m pipeline.compare compare.parent_run=latest        # the children of the newest sweep
    python -m pipeline.compare compare.parent_run=<run id or name> compare.metric=eval_heldout_nll

Writes into compare.output_dir (default reports/compare/, replaced as a whole):
- runs.csv: one row per run, best first by compare.metric; the parameters whose values really
  differ between the runs as columns, every figure with its `_ci95` (bootstrap half-width);
- seed_groups.csv: runs that differ only in train.seed: n, mean, 95% t-interval over the seeds,
  distinguishable_from_best (see pipeline.compare_stats);
- importance.csv: per swept parameter, one-way eta squared of each held-out figure over all runs;
- report.md and report.html (figures embedded) with loss_curves.png, importance.png and one
  `vs_params_<metric>.png` per held-out figure.
With a parent run, all of it is also logged to the parent (artifacts under compare/).
Which way each metric is better is declared in pipeline.compare_stats.DIRECTIONS.
"""
import sys
from pathlib import Path

import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig

from pipeline.common import StageError, project_path, stage
from pipeline.compare_stats import (CI_SUFFIX, DIRECTIONS, HELDOUT, eta_squared, lower_is_better, seed_groups,
                                    varies_with)
from w2v.atomic import atomic_directory

PARENT_TAG = "tags.mlflow.parentRunId"
# params that describe where a run wrote or came from, not what it trained
NOT_SWEPT_PREFIXES = ("paths.", "hydra.", "evaluate.", "compare.", "mlflow.", "corpus.files.")
NOT_SWEPT_SUFFIXES = ("url", "sha256", "size")
# loss.lr is only the per-loss default of train.lr: train.lr is the value a run used
NOT_SWEPT = ("loss.lr",)


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
        runs = runs[runs[PARENT_TAG] == parent_run_id]
    else:
        runs = runs[~runs["run_id"].isin(set(runs[PARENT_TAG].dropna()))]
    return blank_placeholders(runs.reset_index(drop=True))


def blank_placeholders(runs: pd.DataFrame) -> pd.DataFrame:
    """train.K of naive-softmax runs set to missing: that loss draws no negatives, K is a placeholder."""
    if "params.train.K" in runs and "params.loss.name" in runs:
        runs = runs.copy()
        runs.loc[runs["params.loss.name"] == "naive_softmax", "params.train.K"] = None
    return runs


def swept_params(runs: pd.DataFrame) -> list[str]:
    """Names (without "params.") of the training parameters with more than one value among the runs."""
    names = []
    for column in sorted(c for c in runs.columns if c.startswith("params.")):
        name = column[len("params."):]
        if name.startswith(NOT_SWEPT_PREFIXES) or name.endswith(NOT_SWEPT_SUFFIXES) or name in NOT_SWEPT:
            continue
        if runs[column].dropna().astype(str).nunique() > 1:
            names.append(name)
    return names


def _as_numbers(values: pd.Series) -> pd.Series:
    """The values as numbers if every present one is numeric, else the values unchanged."""
    numbers = pd.to_numeric(values, errors="coerce")
    return values if (numbers.isna() & values.notna()).any() else numbers


def shown_metrics(runs: pd.DataFrame, metric: str) -> list[str]:
    """The figures of the table: the ranking metric, the held-out three, then the other declared
    figures the runs logged, then any other eval_* figure (no `_ci95` columns: those go beside)."""
    logged = {c[len("metrics."):] for c in runs.columns if c.startswith("metrics.") and runs[c].notna().any()}
    first = [metric] + [m for m in HELDOUT if m != metric and m in logged]
    declared = [m for m in DIRECTIONS if m in logged and m not in first]
    others = sorted(m for m in logged if m.startswith("eval_") and not m.endswith(CI_SUFFIX)
                    and m not in first and m not in declared)
    return first + declared + others


def ranked_table(runs: pd.DataFrame, metric: str, params: list[str]) -> pd.DataFrame:
    """One row per run, best first by `metric` (runs without it last): rank, run, run_id, the swept
    params, then every shown figure followed by its `_ci95` column when any run logged one."""
    names = runs["tags.mlflow.runName"] if "tags.mlflow.runName" in runs else runs["run_id"]
    table = pd.DataFrame({"run": names.fillna(runs["run_id"]), "run_id": runs["run_id"]})
    for name in params:
        table[name] = _as_numbers(runs[f"params.{name}"])
    for name in shown_metrics(runs, metric):
        table[name] = runs.get(f"metrics.{name}", float("nan"))
        if f"metrics.{name}{CI_SUFFIX}" in runs:
            table[name + CI_SUFFIX] = runs[f"metrics.{name}{CI_SUFFIX}"]
    table = table.sort_values(metric, ascending=lower_is_better(metric), na_position="last", kind="stable")
    table.insert(0, "rank", range(1, len(table) + 1))
    return table.reset_index(drop=True)


def importance(table: pd.DataFrame, metrics: list[str], params: list[str]) -> pd.DataFrame:
    """eta squared per parameter (rows) and metric (columns `eta2 <metric>`), by the first metric;
    column `varies with`: the parameters whose values follow this one's (compare_stats.varies_with)."""
    result = None
    for metric in metrics:
        eta = eta_squared(table, metric, params).rename(columns={"eta2": f"eta2 {metric}"})
        result = eta if result is None else result.merge(eta.drop(columns="values"), on="parameter", how="left")
    together = varies_with(table, params)
    result["varies with"] = [", ".join(together.get(param, [])) for param in result["parameter"]]
    return result


def check_metric(runs: pd.DataFrame, metric: str, scope: str) -> None:
    available = sorted(c[len("metrics."):] for c in runs.columns if c.startswith("metrics.") and runs[c].notna().any())
    if f"metrics.{metric}" not in runs or runs[f"metrics.{metric}"].isna().all():
        raise StageError(f"compare.metric={metric!r} is logged by none of the {scope}; "
                         f"choose one of: {', '.join(a for a in available if a in DIRECTIONS) or '(no metrics)'}")
    if metric not in DIRECTIONS:
        raise StageError(f"compare.metric={metric!r} has no declared direction (lower or higher is better); "
                         f"choose one of: {', '.join(a for a in available if a in DIRECTIONS)}, or declare it in "
                         f"pipeline/compare_stats.py DIRECTIONS")


def compare(client: MlflowClient, experiment_id: str, parent_run_id: str | None, metric: str,
            output_dir: Path) -> pd.DataFrame:
    """Write the comparison of the runs into `output_dir` (replaced whole) and, with a parent,
    log it to the parent under compare/; returns the ranked table."""
    from pipeline.compare_report import write_report

    runs = load_runs(client, experiment_id, parent_run_id)
    scope = f"children of sweep run {parent_run_id}" if parent_run_id else f"runs of experiment {experiment_id}"
    if runs.empty:
        raise StageError(f"no finished runs among the {scope}: train first (or check compare.parent_run)")
    check_metric(runs, metric, scope)
    params = swept_params(runs)
    table = ranked_table(runs, metric, params)
    figures = [metric] + [m for m in HELDOUT if m != metric and m in table]
    groups = {m: seed_groups(table, m, params) for m in figures}
    weights = importance(table, figures, params)
    with atomic_directory(output_dir) as tmp:
        table.to_csv(tmp / "runs.csv", index=False)
        groups[metric].to_csv(tmp / "seed_groups.csv", index=False)
        weights.to_csv(tmp / "importance.csv", index=False)
        write_report(tmp, client, table, groups, weights, metric, params, f"Comparison of the {scope}")
    if parent_run_id:
        client.log_artifacts(parent_run_id, str(output_dir), artifact_path="compare")
    return table


def headline(table: pd.DataFrame, metric: str) -> str:
    best = table.iloc[0]
    ci = best.get(metric + CI_SUFFIX)
    interval = "" if ci is None or pd.isna(ci) else f" ± {ci:.4f}"
    return f"{len(table)} runs; best by {metric} ({DIRECTIONS[metric]} is better): {best['run']} ({best[metric]:.4f}{interval})"


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
    print(headline(table, cfg.compare.metric))
    print(f"wrote {output_dir}/report.md, report.html, runs.csv, seed_groups.csv, importance.csv and figures"
          + (f"; logged to run {parent_run_id}" if parent_run_id else ""), file=sys.stdout)


if __name__ == "__main__":
    main()
