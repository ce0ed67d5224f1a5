"""What a sweep leaves at its end (called by pipeline.sweep.SweepCallback): the comparison of its
children logged to the parent run (pipeline.compare: report.md, report.html, tables, figures), and
one summary table on the terminal, one line per job: number, swept values, status, headline
figures, run id. Also the table of figures a run by hand prints at its end (run_figures)."""
import logging
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from pipeline.compare_stats import CI_SUFFIX, HELDOUT

log = logging.getLogger(__name__)
FALLBACK_FIGURES = ("final_loss_smoothed",)  # shown when no job has the held-out figures


def compare_children(client, parent_id: str, metric: str, output_dir: Path) -> str | None:
    """Log the comparison of the parent's finished children to it; returns None, or why not."""
    from pipeline.common import StageError
    from pipeline.compare import compare, headline

    experiment_id = client.get_run(parent_id).info.experiment_id
    try:
        table = compare(client, experiment_id, parent_id, metric, output_dir)
    except StageError as error:
        return str(error)
    log.info("%s; report logged to parent run %s (artifacts compare/report.html, compare/report.md), "
             "also in %s", headline(table, metric), parent_id, output_dir)
    return None


def _figure(run, name: str) -> str:
    value = run.data.metrics.get(name)
    if value is None:
        return ""
    half = run.data.metrics.get(name + CI_SUFFIX)
    return f"{value:.4g}" if half is None else f"{value:.4g} ± {half:.2g}"


def summary_table(client, parent_ids: list[str], jobs: list[list[str]], swept_keys: list[str],
                  skipped: set[str]) -> str:
    """The sweep's jobs as a terminal table (tabulate), in launch order.

    `jobs`: the override list of every job; a job is matched to its run by the run's
    hydra_overrides tag (the job's overrides); `skipped`: job keys of skipped duplicates.
    """
    from pipeline.job_logging import short_overrides
    from pipeline.sweep import _job_key, swept_part

    runs = {}
    for parent_id in parent_ids:
        experiment_id = client.get_run(parent_id).info.experiment_id
        for run in client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'", max_results=50000):
            runs[_job_key(run.data.tags.get("hydra_overrides", "").split())] = run
    figures = [f for f in HELDOUT if any(f in run.data.metrics for run in runs.values())] or \
        [f for f in FALLBACK_FIGURES if any(f in run.data.metrics for run in runs.values())]
    rows = []
    for number, overrides in enumerate(jobs):
        key = _job_key(overrides)
        run = runs.get(key)
        if key in skipped:
            status = "skipped (duplicate)"
        else:
            status = run.info.status if run else "no run"
            if run and "failure_reason" in run.data.tags:
                status += f": {run.data.tags['failure_reason'][:60]}"
        rows.append([f"#{number}", short_overrides(swept_part(overrides, swept_keys)), status,
                     *[_figure(run, f) if run else "" for f in figures], run.info.run_id if run else ""])
    return tabulate(rows, headers=["job", "swept", "status", *figures, "run id"], tablefmt="simple")


def read_jobs(config) -> list[list[str]]:
    """The override list of every job of the sweep `config` (as SweepCallback expands it)."""
    from pipeline.sweep import expand_sweep

    arguments = [f"{key}={value}" for key, value in (config.hydra.sweeper.get("params") or {}).items()]
    return expand_sweep(arguments + list(config.hydra.overrides.task))[0]


def skipped_keys(sweep_file: Path | None) -> set[str]:
    import json

    if sweep_file is None or not sweep_file.is_file():
        return set()
    return set(json.loads(sweep_file.read_text(encoding="utf-8")).get("skip", []))


def finish(client, config, parents: dict[str, str], swept_keys: list[str], sweep_file: Path | None) -> str:
    """Compare each parent's children into it (notes on failure); returns the summary table."""
    metric = str(config.compare.metric)
    sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
    for experiment, parent_id in parents.items():
        folder = sweep_dir / ("compare" if len(parents) == 1 else f"compare_{experiment}")
        reason = compare_children(client, parent_id, metric, folder)
        if reason:
            log.warning("no comparison logged to parent run %s: %s", parent_id, reason)
            from pipeline import tracking

            tracking.set_tags(client, parent_id, {"compare_error": reason[:5000]})
    return summary_table(client, list(parents.values()), read_jobs(config), swept_keys, skipped_keys(sweep_file))


def run_figures(client, run_id: str) -> str:
    """The figures of one finished run as a terminal table (figure, value ± 95% half-width, which
    way is better), declared figures first; printed at the end of a run by hand."""
    from pipeline.compare_stats import DIRECTIONS

    run = client.get_run(run_id)
    metrics = run.data.metrics
    names = [m for m in DIRECTIONS if m in metrics]
    names += sorted(m for m in metrics if m.startswith("eval_") and not m.endswith(CI_SUFFIX) and m not in names)
    rows = [[name, _figure(run, name), DIRECTIONS.get(name, "")] for name in names]
    return f"MLflow run {run_id}\n" + tabulate(rows, headers=["figure", "value ± 95%", "better"], tablefmt="simple")
