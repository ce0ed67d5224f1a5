"""Hydra multiruns of the training stage as one MLflow parent run with one child run per job.

    python -m pipeline.train -m loss=naive_softmax,neg_sampling train.window=1,3,5 train.K=5,10
    python -m pipeline.train -m hydra/launcher=joblib train.lr=0.1,0.3 train.seed=0,1

`SweepCallback` (registered in conf/config.yaml under hydra.callbacks) runs once in the launching
process, before any job starts:
1. expands the sweep into its jobs and checks every job's configuration (a bad value stops the
   sweep before the first job runs);
2. finds the naive-softmax jobs that differ only in train.K (naive softmax draws no negatives, so
   they would train identical vectors) and marks all but the first for skipping, in one log line;
3. creates the MLflow experiment and the parent run (parallel first-time creation races on SQLite,
   and fluent nested runs do not cross process boundaries);
4. writes all that to `<sweep dir>/mlflow_sweep.json` and points $W2V_SWEEP_FILE at it, which the
   jobs (in this process or in launcher workers, which inherit the environment) read.
At the end it closes the parent run: FINISHED when every child finished, else FAILED with a
summary line and a non-zero exit.
"""
import atexit
import json
import logging
import os
import sys
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)

SWEEP_FILE_VARIABLE = "W2V_SWEEP_FILE"


def expand_sweep(overrides: list[str]) -> tuple[list[list[str]], list[str]]:
    """(the override list of every job of a basic-sweeper multirun in launch order, the swept keys)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(overrides)
    swept = [o.get_key_element() for o in parsed if o.is_sweep_override()]
    return BasicSweeper.split_arguments(parsed, max_batch_size=None)[0], swept


def swept_part(overrides: list[str], swept_keys: list[str]) -> list[str]:
    """The overrides of a job that vary across the sweep (all of them when none is known)."""
    part = [o for o in overrides if o.split("=", 1)[0] in swept_keys]
    return part or overrides


def _job_key(overrides: list[str]) -> str:
    return " ".join(sorted(overrides))


def duplicate_jobs(job_configs: list[DictConfig]) -> list[int]:
    """Indices of naive-softmax jobs identical to an earlier job except for train.K."""
    seen, duplicates = set(), []
    for i, cfg in enumerate(job_configs):
        if cfg.loss.name != "naive_softmax":
            continue
        settings = OmegaConf.to_container(cfg, resolve=True)
        settings["train"].pop("K", None)
        signature = json.dumps(settings, sort_keys=True)
        if signature in seen:
            duplicates.append(i)
        seen.add(signature)
    return duplicates


class SweepCallback(Callback):
    """See the module docstring. `task` is the Hydra job name it acts for (other stages share conf/)."""

    def __init__(self, task: str = "train"):
        self.task = task
        self.sweep_file: Path | None = None
        self.parents: dict[str, str] = {}
        self.expected: dict[str, int] = {}
        self.swept_keys: list[str] = []
        self.closed = False

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        if config.hydra.job.name != self.task:
            return
        from hydra import compose

        from pipeline.common import StageError
        from pipeline.config import validate

        arguments = [f"{key}={value}" for key, value in (config.hydra.sweeper.get("params") or {}).items()]
        jobs, self.swept_keys = expand_sweep(arguments + list(config.hydra.overrides.task))
        job_configs = []
        for overrides in jobs:
            job_cfg = compose(config_name=kwargs.get("config_name") or "config", overrides=overrides)
            try:
                validate(job_cfg)
            except StageError as error:
                print(f"error: job {' '.join(swept_part(overrides, self.swept_keys))}: {error}", file=sys.stderr)
                sys.exit(1)
            job_configs.append(job_cfg)

        skipped = duplicate_jobs(job_configs)
        if skipped:
            log.info("naive_softmax does not use train.K: skipping %d duplicate job(s), running %d of %d: %s",
                     len(skipped), len(jobs) - len(skipped), len(jobs),
                     "; ".join(" ".join(swept_part(jobs[i], self.swept_keys)) for i in skipped))

        self._open_parent_runs(config, jobs, job_configs, set(skipped))
        sweep_dir = Path(str(config.hydra.sweep.dir)).resolve()
        sweep_dir.mkdir(parents=True, exist_ok=True)
        self.sweep_file = sweep_dir / "mlflow_sweep.json"
        from w2v.atomic import atomic_write_text

        atomic_write_text(self.sweep_file, json.dumps({
            "parent_run_ids": self.parents,
            "swept_keys": self.swept_keys,
            "skip": [_job_key(jobs[i]) for i in skipped],
        }, indent=2))
        os.environ[SWEEP_FILE_VARIABLE] = str(self.sweep_file)
        atexit.register(self._close, failed_reason="the sweep stopped before its end")

    def _open_parent_runs(self, config, jobs, job_configs, skipped) -> None:
        from pipeline import tracking

        client = tracking.client()
        sweep_overrides = " ".join(o for o in config.hydra.overrides.task if o.split("=", 1)[0] in self.swept_keys)
        tags = tracking.run_tags(list(config.hydra.overrides.task))
        tags.update({"sweep": "parent", "sweep_dir": str(Path(str(config.hydra.sweep.dir)).resolve())})
        for i, job_cfg in enumerate(job_configs):
            if i not in skipped:
                self.expected[job_cfg.mlflow.experiment] = self.expected.get(job_cfg.mlflow.experiment, 0) + 1
        for experiment in self.expected:
            experiment_id = tracking.get_or_create_experiment(client, experiment)
            run = tracking.with_retries(client.create_run, experiment_id, tags=tags,
                                        run_name=f"sweep {sweep_overrides}"[:250])
            self.parents[experiment] = run.info.run_id
            tracking.log_params(client, run.info.run_id, {
                "sweep.jobs": str(self.expected[experiment]),
                **{f"sweep.{o.split('=', 1)[0]}": o.split("=", 1)[1] for o in config.hydra.overrides.task
                   if o.split("=", 1)[0] in self.swept_keys},
            })
            log.info("MLflow parent run %s in experiment %r (%s)", run.info.run_id, experiment, tracking.tracking_uri())

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        if config.hydra.job.name != self.task or not self.parents:
            return
        failures = self._close()
        if failures:
            print(f"error: {len(failures)} run(s) of the sweep did not finish: " + "; ".join(failures), file=sys.stderr)
            sys.exit(1)

    def _close(self, failed_reason: str | None = None) -> list[str]:
        """End the parent runs; returns one text per child run that did not finish."""
        if self.closed:
            return []
        self.closed = True
        from pipeline import tracking

        client = tracking.client()
        failures = []
        for experiment, parent_id in self.parents.items():
            children = client.search_runs(
                [client.get_run(parent_id).info.experiment_id],
                filter_string=f"tags.mlflow.parentRunId = '{parent_id}'", max_results=50000)
            bad = [f"{child.info.run_name}: {child.data.tags.get('failure_reason', child.info.status)}"
                   for child in children if child.info.status != "FINISHED"]
            missing = self.expected[experiment] - sum(child.info.status == "FINISHED" for child in children) - len(bad)
            if missing > 0:
                bad.append(f"{missing} job(s) left no run")
            failures += bad
            status = "FAILED" if bad or failed_reason else "FINISHED"
            if failed_reason:
                tracking.set_tags(client, parent_id, {"failure_reason": failed_reason})
            tracking.with_retries(client.set_terminated, parent_id, status=status)
        return failures


def job_context(experiment: str) -> tuple[str | None, bool, str]:
    """For a job of a multirun: (parent run id or None, whether this job is a skipped duplicate,
    a run name made of the job's swept overrides)."""
    overrides = list(HydraConfig.get().overrides.task)
    path = os.environ.get(SWEEP_FILE_VARIABLE)
    if not path or not Path(path).is_file():
        return None, False, ",".join(overrides)
    sweep = json.loads(Path(path).read_text(encoding="utf-8"))
    return (sweep["parent_run_ids"].get(experiment), _job_key(overrides) in set(sweep["skip"]),
            short_run_name(swept_part(overrides, sweep["swept_keys"])))


def short_run_name(overrides: list[str]) -> str:
    """A child run's name: its swept values in short form, `train.lr=1.0 train.window=5` ->
    `lr=1,window=5`, so that MLflow's run list shows it whole. A key keeps its group
    (`corpus.min_count`) only when its last part alone would be ambiguous."""
    pairs = [override.lstrip("+~").split("=", 1) + [""] for override in overrides]
    last_parts = [key.rsplit(".", 1)[-1] for key, *_ in pairs]
    return ",".join(f"{short if last_parts.count(short) == 1 else key}={_short_value(value)}"
                    for (key, value, *_), short in zip(pairs, last_parts))


def _short_value(value: str) -> str:
    """`1.0` -> `1`, `0.30` -> `0.3`, `1e-05` -> `1e-05`; anything that is not a number as it is."""
    try:
        number = float(value)
    except ValueError:
        return value
    if number.is_integer() and abs(number) < 1e15:
        return str(int(number))
    return repr(number) if number == number and abs(number) != float("inf") else value
