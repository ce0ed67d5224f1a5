"""The MLflow store of the workspace, and what a training run records in it.

Every part of the project that talks to MLflow gets its store from `tracking_uri()`:
`$MLFLOW_TRACKING_URI` when set, else `sqlite:///<workspace>/mlflow.db` by absolute path, with the
artifacts beside it in `<workspace>/mlartifacts/`. The workspace is the real checkout even when
DVC runs a queued experiment in a temporary copy (`.dvc/tmp/exps/...`), so Hydra job folders and
queued experiments all land in the same store.

All calls go through `MlflowClient` (no fluent global run), so they work the same in Hydra's
parallel worker processes.
"""
import importlib.metadata
import logging
import os
import subprocess
import time
from pathlib import Path

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_GIT_COMMIT, MLFLOW_PARENT_RUN_ID
from omegaconf import DictConfig, OmegaConf

from pipeline.common import PROJECT_ROOT

log = logging.getLogger(__name__)

STEP_METRICS = ("loss", "loss_smoothed", "lr", "windows_per_second")
MAX_METRICS_PER_BATCH = 1000  # MLflow's limit for one log_batch call
MAX_PARAMS_PER_BATCH = 100


def workspace_root() -> Path:
    """The real checkout of the project.

    DVC sets $DVC_ROOT for every stage command, to the parent repository even when a queued
    experiment runs in a temporary copy. Without it, a copy inside `<workspace>/.dvc/tmp/` still
    leads back to its workspace.
    """
    dvc_root = os.environ.get("DVC_ROOT")
    if dvc_root and Path(dvc_root).is_dir():
        return Path(dvc_root).resolve()
    parts = PROJECT_ROOT.parts
    for i in range(len(parts) - 2):
        if parts[i] == ".dvc" and parts[i + 1] == "tmp":
            return Path(*parts[:i])
    return PROJECT_ROOT


def tracking_uri() -> str:
    """$MLFLOW_TRACKING_URI, else the SQLite store at the workspace root (absolute path)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{workspace_root() / 'mlflow.db'}"


def client() -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri())


def _artifact_location(uri: str) -> str | None:
    """For a local SQLite store: `mlartifacts/` beside the database file, by absolute path (MLflow's
    own default depends on the working directory). A tracking server decides for itself: None."""
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(uri[len("sqlite:///"):])
    return (database.parent / "mlartifacts").resolve().as_uri()


def get_or_create_experiment(mlflow_client: MlflowClient, name: str) -> str:
    """The id of experiment `name`, created when missing (safe when another process races us)."""
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            mlflow_client.restore_experiment(experiment.experiment_id)
        return experiment.experiment_id
    location = _artifact_location(mlflow_client.tracking_uri)
    try:
        return mlflow_client.create_experiment(name, artifact_location=location)
    except MlflowException:
        experiment = mlflow_client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


def with_retries(call, *args, attempts: int = 6, **kwargs):
    """Run an MLflow call, retrying "database is locked" (SQLite under many parallel writers)."""
    for attempt in range(attempts):
        try:
            return call(*args, **kwargs)
        except MlflowException as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.2 * 2 ** attempt)


def flatten_config(cfg: DictConfig) -> dict[str, str]:
    """The resolved config as MLflow params: {"train.lr": "0.3", ...}; lists and dicts as text."""
    flat = {}

    def walk(node, prefix):
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, dict) and value:
                walk(value, f"{name}.")
            else:
                flat[name] = str(value)

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return flat


def log_params(mlflow_client: MlflowClient, run_id: str, params: dict[str, str]) -> None:
    items = [Param(key, value[:6000]) for key, value in params.items()]
    for start in range(0, len(items), MAX_PARAMS_PER_BATCH):
        with_retries(mlflow_client.log_batch, run_id, params=items[start:start + MAX_PARAMS_PER_BATCH])


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def run_tags(hydra_overrides: list[str]) -> dict[str, str]:
    """Provenance of a run: git commit and dirty flag, library versions, DVC experiment, overrides."""
    tags = {
        "numpy_version": _version("numpy"),
        "mlflow_version": _version("mlflow"),
        "dvc_version": _version("dvc"),
        "hydra_version": _version("hydra-core"),
        "hydra_overrides": " ".join(hydra_overrides),
    }
    commit = _git("rev-parse", "HEAD")
    if commit:
        tags[MLFLOW_GIT_COMMIT] = commit
        tags["git_commit"] = commit
        status = _git("status", "--porcelain", "--untracked-files=no")
        tags["git_dirty"] = str(bool(status)).lower() if status is not None else "unknown"
    for variable, tag in (("DVC_EXP_NAME", "dvc_experiment"), ("DVC_EXP_BASELINE_REV", "dvc_baseline_rev"),
                          ("DVC_STAGE", "dvc_stage")):
        if os.environ.get(variable):
            tags[tag] = os.environ[variable]
    return tags


def parent_tag(parent_run_id: str) -> dict[str, str]:
    return {MLFLOW_PARENT_RUN_ID: parent_run_id}


def set_tags(mlflow_client: MlflowClient, run_id: str, tags: dict[str, str]) -> None:
    with_retries(mlflow_client.log_batch, run_id, tags=[RunTag(key, value) for key, value in tags.items()])


def logged_steps(mlflow_client: MlflowClient, run_id: str) -> dict[str, dict[int, float]]:
    """{metric: {step: value}} of the per-step metrics a run already holds (to resume without
    logging a step twice)."""
    return {key: {m.step: m.value for m in with_retries(mlflow_client.get_metric_history, run_id, key)}
            for key in STEP_METRICS}


class MetricBuffer:
    """Per-step metrics, sent to MLflow in batches of up to 1000 values.

    `add` is cheap (a list append); `flush` sends everything buffered. Steps listed in
    `already_logged` (per metric) are dropped, so a resumed run logs every step exactly once.
    `seconds` is the wall time spent here, to show that logging stays a small share of training.
    """

    def __init__(self, mlflow_client: MlflowClient, run_id: str,
                 already_logged: dict[str, dict[int, float]] | None = None, flush_every_seconds: float = 15.0):
        self.client = mlflow_client
        self.run_id = run_id
        self.last_logged = {key: max(steps, default=-1) for key, steps in (already_logged or {}).items()}
        self.flush_every_seconds = flush_every_seconds
        self.pending: list[Metric] = []
        self.last_flush = time.monotonic()
        self.seconds = 0.0

    def add(self, step: int, values: dict[str, float]) -> None:
        start = time.perf_counter()
        timestamp = int(time.time() * 1000)
        for key, value in values.items():
            if step > self.last_logged.get(key, -1):
                self.pending.append(Metric(key, float(value), timestamp, step))
        self.seconds += time.perf_counter() - start
        if len(self.pending) >= MAX_METRICS_PER_BATCH or time.monotonic() - self.last_flush > self.flush_every_seconds:
            self.flush()

    def flush(self) -> None:
        start = time.perf_counter()
        while self.pending:
            batch = self.pending[:MAX_METRICS_PER_BATCH]
            with_retries(self.client.log_batch, self.run_id, metrics=batch)
            for metric in batch:
                self.last_logged[metric.key] = max(self.last_logged.get(metric.key, -1), metric.step)
            del self.pending[:MAX_METRICS_PER_BATCH]
        self.last_flush = time.monotonic()
        self.seconds += time.perf_counter() - start
