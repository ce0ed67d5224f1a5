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
from concurrent.futures import Future
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


# The experiment's kind, as MLflow 3 records it: ExperimentKind.CUSTOM_MODEL_DEVELOPMENT ("Machine
# learning"). The UI of MLflow 3.17 does not choose its landing page by it: the kind comes from its
# GenAI / Model training switch (useExperimentKind, shouldEnableWorkflowBasedNavigation() hard-coded
# true), which starts on GenAI in a new browser (README, "In the MLflow UI"; mlflow/mlflow#24498).
# The tag still says what the experiment is, for the UI's tag-based path and for API queries.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"


def get_or_create_experiment(mlflow_client: MlflowClient, name: str) -> str:
    """The id of experiment `name`, created when missing (safe when another process races us), as
    a model-training experiment (EXPERIMENT_KIND_TAG); an existing one without a kind gets it."""
    experiment = mlflow_client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            mlflow_client.restore_experiment(experiment.experiment_id)
        if EXPERIMENT_KIND_TAG not in experiment.tags:
            mlflow_client.set_experiment_tag(experiment.experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)
        return experiment.experiment_id
    location = _artifact_location(mlflow_client.tracking_uri)
    try:
        return mlflow_client.create_experiment(name, artifact_location=location,
                                               tags={EXPERIMENT_KIND_TAG: MODEL_TRAINING_KIND})
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


class TrackingError(RuntimeError):
    """Metrics could not reach the MLflow store (the message says why, in one line)."""


class MetricSink:
    """Per-step metrics of one run, written by MLflow's own asynchronous logging.

    `add` only appends; every `SEND_EVERY` steps the values go as one batch of 1000 (MLflow's
    limit) to `MlflowClient.log_batch(..., synchronous=False)`, whose queue writes them from a
    thread of this process while training goes on: the training loop never waits for the store
    (benchmarks/bench_logging.py measures what it costs, docs/design.md has the figures). `flush`
    waits until everything added is in the store. A batch that SQLite refused as locked (many
    parallel writers) is written again, with retries; any other failed write raises TrackingError,
    at the next send or at the latest at `flush`. If the process is killed, what the queue still
    held dies with it: the caller keeps its own journal to log those steps on resume.
    `seconds` is the time the caller spent here.
    """
    SEND_EVERY = 250

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.client = client()
        self.pending: list[Metric] = []
        self.steps_pending = 0
        self.seconds = 0.0
        self.in_flight: list[tuple[list[Future], list[Metric]]] = []  # batches not yet known written

    def add(self, step: int, values: dict[str, float], timestamp: int | None = None) -> None:
        start = time.perf_counter()
        timestamp = timestamp or int(time.time() * 1000)
        self.pending.extend(Metric(key, float(value), timestamp, step) for key, value in values.items())
        self.steps_pending += 1
        if self.steps_pending >= self.SEND_EVERY:
            self._send()
        self.seconds += time.perf_counter() - start

    def _send(self) -> None:
        self._settle(wait=False)
        for first in range(0, len(self.pending), MAX_METRICS_PER_BATCH):
            batch = self.pending[first:first + MAX_METRICS_PER_BATCH]
            operation = self.client.log_batch(self.run_id, metrics=batch, synchronous=False)
            # RunOperations has only a blocking wait() that wraps errors in a list; its futures
            # tell whether a batch is done without waiting, and give the store's own error
            self.in_flight.append((list(operation._operation_futures), batch))
        self.pending, self.steps_pending = [], 0

    def _settle(self, wait: bool) -> None:
        """Check the batches in flight (only those done, unless `wait`): rewrite those SQLite
        refused as locked, raise TrackingError for any other failure."""
        still_running = []
        for futures, batch in self.in_flight:
            if not wait and not all(future.done() for future in futures):
                still_running.append((futures, batch))
                continue
            errors = [error for error in (future.exception() for future in futures) if error is not None]
            if errors and all("locked" in str(error) for error in errors):
                try:
                    with_retries(self.client.log_batch, self.run_id, metrics=batch)
                except MlflowException as error:
                    errors = [error]
                else:
                    errors = []
            if errors:
                self.in_flight = []
                message = str(errors[0]).strip().splitlines()
                raise TrackingError(message[0] if message else type(errors[0]).__name__)
        self.in_flight = still_running

    def flush(self) -> None:
        """Return once every value added so far is in the store (TrackingError if a write failed)."""
        start = time.perf_counter()
        try:
            if self.pending:
                self._send()
            self._settle(wait=True)
        finally:
            self.seconds += time.perf_counter() - start

    def close(self, flush: bool = True) -> None:
        """Flush, unless told not to (what is still queued is then written as the process exits)."""
        if flush:
            self.flush()
