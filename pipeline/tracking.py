"""The MLflow store of the workspace, and what a training run records in it.

Every part of the project that talks to MLflow gets its store from `tracking_uri()`:
`$MLFLOW_TRACKING_URI` when set, else `sqlite:///<workspace>/mlflow.db` by absolute path, with the
artifacts beside it in `<workspace>/mlartifacts/`. The workspace is the real checkout even when
DVC runs a queued experiment in a temporary copy (`.dvc/tmp/exps/...`), so Hydra job folders and
queued experiments all land in the same store.

All calls go through `MlflowClient` (no fluent global run), so they work the same in Hydra's
parallel worker processes. Run as a module, it is the helper process of `MetricSink`:

    python -m pipeline.tracking <run_id>    # JSON lines of metrics on stdin -> MLflow; "ack <n>" on stdout
"""
import importlib.metadata
import json
import logging
import os
import subprocess
import sys
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
PIPE_BYTES = 1 << 20


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


# MLflow 3's UI opens an experiment on the page its kind names; without this tag it shows the GenAI
# overview (traces, evaluations). The value is the UI's ExperimentKind.CUSTOM_MODEL_DEVELOPMENT
# ("Machine learning" in its experiment-type picker), which opens on the training runs.
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
    """Metrics could not reach the MLflow store (the helper process says why on stderr)."""


class MetricSink:
    """Per-step metrics of one run, written to MLflow by a helper process.

    A store write costs about 0.3 ms per value (SQLite, MLflow's ORM), far too much to pay inside
    the training loop, and a thread would hold the GIL the training needs. So `add` only appends;
    every `SEND_EVERY` steps the values go as one JSON line through a pipe to
    `python -m pipeline.tracking <run_id>` (started at the first send), which logs them in batches
    of up to 1000 while training goes on; a shorter run logs its values at the end. `flush` waits
    until everything sent is in the store. If the training process dies, the helper sees its pipe
    close and exits without writing what was not flushed (the caller keeps its own journal to log
    those later). `seconds` is the time the training loop spent here.
    """
    SEND_EVERY = 250

    def __init__(self, run_id: str):
        self.run_id = run_id
        self.pending: list[list] = []
        self.steps_pending = 0
        self.seconds = 0.0
        self.acks = 0
        self.process: subprocess.Popen | None = None  # started at the first send: short runs need none

    def _start_helper(self) -> subprocess.Popen:
        env = dict(os.environ, MLFLOW_TRACKING_URI=tracking_uri())
        process = subprocess.Popen([sys.executable, "-m", "pipeline.tracking", self.run_id], env=env,
                                   cwd=PROJECT_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:  # a 1 MiB pipe holds a classic run's whole history: a slow store never blocks training
            import fcntl

            fcntl.fcntl(process.stdin.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
        except OSError:
            pass
        return process

    def add(self, step: int, values: dict[str, float], timestamp: int | None = None) -> None:
        start = time.perf_counter()
        timestamp = timestamp or int(time.time() * 1000)
        self.pending.extend([key, float(value), timestamp, step] for key, value in values.items())
        self.steps_pending += 1
        if self.steps_pending >= self.SEND_EVERY:
            self._send({"metrics": self.pending})
        self.seconds += time.perf_counter() - start

    def _send(self, message: dict) -> None:
        if self.process is None:
            self.process = self._start_helper()
        try:
            self.process.stdin.write(json.dumps(message, separators=(",", ":")) + "\n")
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            raise TrackingError("the MLflow metric logger stopped (its error is printed above)") from None
        if "metrics" in message:
            self.pending, self.steps_pending = [], 0

    def flush(self) -> None:
        """Return once every value added so far is in the store."""
        start = time.perf_counter()
        if self.process is None:  # never sent anything: at most SEND_EVERY steps, written from here
            mlflow_client = client()
            metrics = [Metric(*values) for values in self.pending]
            for first in range(0, len(metrics), MAX_METRICS_PER_BATCH):
                with_retries(mlflow_client.log_batch, self.run_id, metrics=metrics[first:first + MAX_METRICS_PER_BATCH])
            self.pending, self.steps_pending = [], 0
            self.seconds += time.perf_counter() - start
            return
        if self.pending:
            self._send({"metrics": self.pending})
        self.acks += 1
        self._send({"ack": self.acks})
        reply = self.process.stdout.readline().strip()
        if reply != f"ack {self.acks}":
            raise TrackingError(f"the MLflow metric logger stopped: {reply or 'see its error above'}")
        self.seconds += time.perf_counter() - start

    def close(self, flush: bool = True) -> None:
        """Flush (unless told not to), then stop the helper process."""
        try:
            if flush and (self.process is None or self.process.poll() is None):
                self.flush()
        finally:
            if self.process is not None:
                if self.process.poll() is None:
                    self.process.stdin.close()
                self.process.wait()


def _log_from_pipe(run_id: str) -> None:
    """The helper process of MetricSink: JSON lines on stdin, "ack <n>" lines on stdout."""
    mlflow_client = client()
    pending: list[Metric] = []

    def write_pending():
        while pending:
            with_retries(mlflow_client.log_batch, run_id, metrics=pending[:MAX_METRICS_PER_BATCH])
            del pending[:MAX_METRICS_PER_BATCH]

    for line in sys.stdin:
        message = json.loads(line)
        pending.extend(Metric(*values) for values in message.get("metrics", ()))
        if len(pending) >= MAX_METRICS_PER_BATCH or "ack" in message:
            write_pending()
        if "ack" in message:
            print(f"ack {message['ack']}", flush=True)
    # stdin closed without a final ack: the training process is gone; drop what was not flushed


if __name__ == "__main__":
    try:
        _log_from_pipe(sys.argv[1])
    except Exception as error:  # reported to the training process through the closed pipe
        print(f"error: MLflow metric logging failed: {error}", file=sys.stderr)
        print(f"error {error}", flush=True)
        sys.exit(1)
