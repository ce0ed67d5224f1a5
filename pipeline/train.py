"""Train skip-gram word vectors, tracked in MLflow; the DVC `train` stage and Hydra sweeps.

    python -m pipeline.train                                  # one run on conf/ (outputs/<date>/<time>/)
    python -m pipeline.train train.window=3 loss=naive_softmax
    python -m pipeline.train -m loss=naive_softmax,neg_sampling train.window=1,3,5 train.K=5,10 train.lr=0.1,0.3
    python -m pipeline.train -m hydra/launcher=joblib train.lr=0.1,0.3,1.0   # jobs in parallel
    dvc repro train            # the stage: params.yaml -> models/, metrics/train.json, plots/loss.csv
    dvc exp run -S train.lr=0.1

Every run is one MLflow run in the workspace's store (pipeline.tracking): the resolved config as
params, provenance tags, `loss`, `loss_smoothed`, `lr` and `windows_per_second` every
train.log_every iterations, final figures and the model folder as artifacts. A Hydra job's model
folder is its output folder, and the evaluation follows at once; the DVC stage writes models/ and
leaves the evaluation to the `evaluate` stage.

Checkpoints go to `<workspace>/.cache/checkpoints/<hash of the training config>/` every
train.checkpoint_every iterations and hold the MLflow run id: the same command after a crash or
kill resumes there, into the same MLflow run, and logs every step exactly once. Every other end
of a run is recorded in MLflow and told in one line (end_failed_run): a loss that turns NaN or
infinite stops the run at once, FAILED, with its last good checkpoint kept; Ctrl-C or SIGTERM
marks it KILLED; a failure after the last iteration (figures, artifacts, evaluation) marks it
FAILED with the trained vectors kept in the final checkpoint, and the same command then finishes
the run without training again.

One run in steps (run_training; docs/design.md draws it): describe_job (the DVC stage when DVC
started this process, $DVC_STAGE; a Hydra run or a sweep job otherwise) -> prepare (corpus,
TrainConfig, checkpoint folder) -> exclusive (the folder's lock) -> run_attempt: open_attempt
(the MLflow run), train_logged, publish (write_outputs, artifacts, evaluation), FINISHED, with
every failure mapped by end_failed_run -> forget_finished_run.
"""
import fcntl
import hashlib
import json
import logging
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from mlflow.exceptions import MlflowException
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from pipeline import tracking
from pipeline.common import StageError, dvc_stage_name, project_path, stage
from pipeline.config import (check_processed_corpus, processed_corpus, train_config, training_fingerprint,
                             with_machine_settings)
from pipeline.launcher import current_launcher_plan
from w2v.atomic import atomic_directory, atomic_write_text
from w2v.corpus import Corpus  # pipeline.config has imported w2v.corpus and w2v.trainer already
from w2v.trainer import TrainConfig

log = logging.getLogger(__name__)

MODEL_FILES = ("vectors.txt", "vectors.npy", "vocab.txt", "outside_vectors.npy", "loss.png",
               "word_vectors.png", "config.yaml")
RUN_FILE = "mlflow_run.json"  # in the checkpoint folder: the run to resume into
JOURNAL_FILE = "metrics.jsonl"  # in the checkpoint folder: every logged step of the run
PROGRESS_LINES = 10  # plain log lines per run when no terminal shows a progress bar
DVC_METRICS = ("final_loss_smoothed", "train_seconds")  # metrics/train.json, a column each in `dvc exp show`


@dataclass
class Job:
    """Where a run comes from and where its outputs go."""
    dvc_stage: bool            # the DVC train stage: models/, metrics/, plots/; evaluation is a stage of its own
    output_dir: Path           # the model folder of a Hydra run or job
    overrides: list[str]       # Hydra's task overrides
    multirun: bool
    parent_run_id: str | None
    skipped: bool              # a naive-softmax duplicate of another job of the sweep
    run_name: str | None       # MLflow run name (None: MLflow's own, or the DVC experiment name)
    progress_bar: bool
    sweep_job: str | None = None      # in a sweep: the job's key (pipeline.sweep.job_key)
    finished_run_id: str | None = None  # in a continued sweep: this job's child run that finished


def describe_job(cfg: DictConfig) -> Job:
    hydra_cfg = HydraConfig.get()
    output_dir = Path(hydra_cfg.runtime.output_dir).resolve()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    parent_run_id, skipped, run_name, sweep_job, finished_run_id = None, False, None, None, None
    if multirun:
        from pipeline.sweep import finished_run, job_context, job_key

        parent_run_id, skipped, run_name = job_context(cfg.mlflow.experiment)
        sweep_job, finished_run_id = job_key(), finished_run(cfg.mlflow.experiment)
    dvc_stage = not multirun and dvc_stage_name() is not None
    return Job(dvc_stage=dvc_stage, output_dir=output_dir, overrides=list(hydra_cfg.overrides.task),
               multirun=multirun, parent_run_id=parent_run_id, skipped=skipped, run_name=run_name,
               progress_bar=sys.stderr.isatty() and current_launcher_plan().sequential, sweep_job=sweep_job,
               finished_run_id=finished_run_id)


def corpus_fingerprint(corpus) -> str:
    """A hash of the corpus data the trainer sees (vocabulary, counts, token ids, sentence split)."""
    digest = hashlib.sha256()
    digest.update("\n".join(corpus.words).encode())
    for array in (corpus.counts, corpus.tokens, corpus.offsets, corpus.split):
        digest.update(array.tobytes())
    digest.update(corpus.train_on.encode())
    return digest.hexdigest()


def checkpoint_dir_for(cfg: DictConfig, corpus) -> Path:
    """`<paths.checkpoints>/<fingerprint>`; a relative paths.checkpoints is taken from the workspace
    root, so a queued DVC experiment's temporary copy checkpoints into the real workspace."""
    root = Path(cfg.paths.get("checkpoints") or ".cache/checkpoints").expanduser()
    if not root.is_absolute():
        root = tracking.workspace_root() / root
    return root / training_fingerprint(cfg, corpus_fingerprint(corpus))


LOCK_FILE = "lock"  # in the checkpoint folder, removed with it


@contextmanager
def exclusive(checkpoint_dir: Path):
    """Hold a lock on a checkpoint folder: two runs of the same configuration must not share it.

    The lock file lives in the folder and goes with it: a run that leaves nothing to resume
    removes the folder, lock included, while it still holds the lock. A run that opened the lock
    file just before it was removed finds it unlinked once it gets the lock, and tries again.
    """
    while True:
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
        lock_path = checkpoint_dir / LOCK_FILE
        try:
            lock = open(lock_path, "a")
        except FileNotFoundError:  # the folder was removed in between
            continue
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise StageError(f"another run with the same training configuration is using {checkpoint_dir}; "
                             f"wait for it to finish or change the configuration") from None
        try:
            if os.path.samestat(os.fstat(lock.fileno()), os.stat(lock_path)):
                break
        except FileNotFoundError:
            pass
        lock.close()
    try:
        yield
    finally:
        try:
            if {path.name for path in checkpoint_dir.iterdir()} == {LOCK_FILE}:
                lock_path.unlink()
                checkpoint_dir.rmdir()
        finally:
            lock.close()


class Interrupted(KeyboardInterrupt):
    """SIGINT (Ctrl-C) or SIGTERM (kill, a cluster scheduler) during a run. A KeyboardInterrupt,
    so a sweep stops at once instead of going on with its next job. `message`: the one line to print."""

    def __init__(self, signum: int, message: str = ""):
        super().__init__(message)
        self.signum = signum
        self.message = message


_held = {"depth": 0, "pending": None}  # signals_held's state (signal handlers run in the main thread)


def _raise_interrupted(signum, frame):
    if _held["depth"]:
        _held["pending"] = signum
        return
    raise Interrupted(signum)


def catch_termination() -> None:
    """Make SIGTERM (whose default ends the process on the spot, the MLflow run left RUNNING) and
    SIGINT raise Interrupted. Only the main thread can install signal handlers."""
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, _raise_interrupted)


@contextmanager
def signals_held(deliver: bool = True):
    """Let a SIGINT or SIGTERM wait until the block is done: a half-sent metric line or a run
    opened but not yet known must not be cut short. At the end the signal is raised as
    Interrupted (deliver), or dropped (while a run's end is being recorded)."""
    _held["depth"] += 1
    try:
        yield
    finally:
        _held["depth"] -= 1
        signum = _held["pending"]
        if not _held["depth"] and signum is not None:
            _held["pending"] = None
            if deliver:
                raise Interrupted(signum)


class RunLogger:
    """The trainer's hooks: the run's journal, its MLflow metrics, progress lines.

    The journal (`metrics.jsonl` in the checkpoint folder, one line per log point) is the run's
    history: written before a checkpoint is, so it always reaches at least the checkpoint's step.
    MLflow receives the same values asynchronously (tracking.MetricSink), so a checkpoint never
    waits for the store. On resume the journal fills the gaps the store missed, and regenerated
    steps the journal already holds are not logged again: every step appears exactly once.
    """

    def __init__(self, sink: tracking.MetricSink, journal_path: Path, iterations: int, progress_lines: bool):
        self.sink = sink
        self.history = read_journal(journal_path)  # step -> {metric: value}
        self.journal = open(journal_path, "a", encoding="utf-8")
        self.iterations = iterations
        self.report_every = max(1, iterations // PROGRESS_LINES) if progress_lines else 0
        self.next_report = self.report_every

    def backfill(self, logged: dict[str, dict[int, float]]) -> int:
        """Reconcile the journal and the store after a kill; returns how many steps the store lacked.

        Steps the store holds but the journal lost (its last lines were still in a buffer) join the
        history; the journal's steps the store lacks (lost in transit) are sent again.
        """
        for step in set(logged.get("loss", {})) - set(self.history):
            values = {key: logged[key][step] for key in logged if step in logged[key]}
            self.history[step] = values
            self.journal.write(json.dumps({"step": step, **values}) + "\n")
        missing = 0
        for step, values in sorted(self.history.items()):
            absent = {key: value for key, value in values.items() if step not in logged.get(key, {})}
            if absent:
                self.sink.add(step, absent)
                missing += 1
        return missing

    def on_log(self, record) -> None:
        if record.step in self.history:  # replayed after a resume: logged before the kill
            return
        values = {"loss": record.loss, "loss_smoothed": record.loss_smoothed, "lr": record.lr,
                  "windows_per_second": record.windows_per_second}
        self.history[record.step] = values
        self.journal.write(json.dumps({"step": record.step, **values}) + "\n")
        self.sink.add(record.step, values)
        if self.report_every and record.step >= self.next_report:
            log.info("iteration %d/%d  loss_smoothed %.4g  lr %.4g  %.0f windows/s", record.step,
                     self.iterations, record.loss_smoothed, record.lr, record.windows_per_second)
            self.next_report += self.report_every

    def before_checkpoint(self, step: int) -> None:
        self.journal.flush()  # into the OS: survives a kill of this process

    def close(self) -> None:
        self.journal.close()


def read_journal(path: Path) -> dict[int, dict[str, float]]:
    """{step: {metric: value}} of a journal; a line cut short by a kill is ignored."""
    history = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            history[record.pop("step")] = record
    return history


def hooks_for(run_logger: RunLogger, attempt):
    from w2v.trainer import TrainHooks

    class Hooks(TrainHooks):
        def on_log(self, record):
            with signals_held():
                run_logger.on_log(record)
                attempt.last_step = record.step

        def before_checkpoint(self, step):
            with signals_held():
                run_logger.before_checkpoint(step)

    return Hooks()


def open_run(client, cfg: DictConfig, job: Job, checkpoint_dir: Path) -> tuple[str, bool]:
    """The MLflow run to log into: the checkpoint's run when resuming, else a new one.

    Returns (run_id, resumed). A checkpoint whose run is missing from this store, belongs to
    another experiment or already finished cannot continue that run's history: it is discarded.
    """
    from w2v.checkpoint import clear_checkpoint, read_checkpoint_metadata

    experiment_id = tracking.get_or_create_experiment(client, cfg.mlflow.experiment)
    run_file = checkpoint_dir / RUN_FILE
    run_id = (read_checkpoint_metadata(checkpoint_dir) or {}).get("mlflow_run_id")
    if not run_id and run_file.is_file():  # killed before the first checkpoint
        run_id = json.loads(run_file.read_text(encoding="utf-8")).get("mlflow_run_id")
    if run_id:
        try:
            run = client.get_run(run_id)
        except Exception:
            run = None
        if run is not None and run.info.experiment_id == experiment_id and run.info.status != "FINISHED":
            tracking.with_retries(client.update_run, run_id, status="RUNNING")
            for tag in ("failure_reason", "failed_at_iteration"):
                if tag in run.data.tags:
                    client.delete_tag(run_id, tag)
            log.info("resuming MLflow run %s from the checkpoint in %s", run_id, checkpoint_dir)
            return run_id, True
        log.info("the checkpoint in %s belongs to MLflow run %s, which this store (experiment %r) cannot "
                 "continue: starting over", checkpoint_dir, run_id, cfg.mlflow.experiment)
        for name in (RUN_FILE, JOURNAL_FILE):
            (checkpoint_dir / name).unlink(missing_ok=True)
        clear_checkpoint(checkpoint_dir)

    tags = tracking.run_tags(job.overrides)
    if job.parent_run_id:
        from pipeline.sweep import JOB_TAG

        tags.update(tracking.parent_tag(job.parent_run_id))
        tags[JOB_TAG] = job.sweep_job
    name = job.run_name or tags.get("dvc_experiment")
    run = tracking.with_retries(client.create_run, experiment_id, tags=tags, run_name=name and name[:250])
    tracking.log_params(client, run.info.run_id, tracking.flatten_config(cfg))
    # the run id beside the checkpoints, so a kill even before the first checkpoint resumes this run
    atomic_write_text(run_file, json.dumps({"mlflow_run_id": run.info.run_id}) + "\n")
    return run.info.run_id, False


def write_model_folder(folder: Path, cfg: DictConfig, corpus, result, history, run_record: dict,
                       attempt) -> None:
    """The model folder of docs/design.md: vectors (text, npy), vocab, config, run id, then the
    figures (a figure that fails must not cost the vectors). attempt.phase follows the steps."""
    from w2v.plots import plot_loss, plot_word_vectors
    from w2v.vectors import save_vectors, write_word2vec_text

    attempt.phase = "writing the vectors"
    write_word2vec_text(folder / "vectors.txt", corpus.words, result.center_vectors)
    save_vectors(folder, corpus.words, result.center_vectors, result.outside_vectors)
    atomic_write_text(folder / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    atomic_write_text(folder / "mlflow_run.json", json.dumps(run_record, indent=2) + "\n")
    attempt.phase = "drawing loss.png"
    steps = sorted(history)
    plot_loss(folder / "loss.png", steps, [history[s]["loss"] for s in steps],
              [history[s]["loss_smoothed"] for s in steps])
    attempt.phase = "drawing word_vectors.png"
    plot = plot_word_vectors(folder / "word_vectors.png", corpus.words, result.center_vectors, counts=corpus.counts)
    if plot.note:
        log.info("word_vectors.png: %s", plot.note)


def write_dvc_records(metrics_path: Path, plots_path: Path, final_metrics: dict, history) -> None:
    """metrics/train.json (DVC metrics: DVC_METRICS of final_metrics; compile and logging seconds
    stay in MLflow, out of `dvc exp show`) and plots/loss.csv (step, loss, loss_smoothed, lr)."""
    headline = {key: final_metrics[key] for key in DVC_METRICS}
    atomic_write_text(metrics_path, json.dumps(headline, indent=2) + "\n")
    rows = "".join(f"{s},{history[s]['loss']!r},{history[s]['loss_smoothed']!r},{history[s]['lr']!r}\n"
                   for s in sorted(history))
    atomic_write_text(plots_path, "step,loss,loss_smoothed,lr\n" + rows)


@dataclass
class Attempt:
    """One invocation of a run: what a failure message and the MLflow record need."""
    run_id: str
    checkpoint_dir: Path
    resumed: bool = False            # the run was opened before: its checkpoint, journal and metrics continue
    phase: str = "training"          # what was going on: "training", then the steps after it
    last_step: int = 0               # the last logged iteration
    model_dir: Path | None = None    # where the vectors were written, once they were


def checkpoint_note(attempt: Attempt) -> str:
    from w2v.checkpoint import checkpoint_step

    step = checkpoint_step(attempt.checkpoint_dir)
    if step is None:
        return "no checkpoint was written yet (the run starts again from iteration 0)"
    return f"the checkpoint of iteration {step} is kept in {attempt.checkpoint_dir}"


def end_failed_run(client, attempt: Attempt, error: BaseException, config) -> BaseException:
    """Record how an attempt ended in MLflow and return what to raise: one line for the user.

    interrupted (Ctrl-C, SIGTERM) -> KILLED; diverged, bad checkpoint, a failure after training
    -> FAILED with the reason; the store unreachable -> nothing recorded (it cannot be). The
    checkpoint is kept in every case, so the same command resumes into the same run. An
    unexpected error during training is marked FAILED and raised as it is (its traceback is the
    bug report).
    """
    from w2v.trainer import DivergenceError

    run_id = attempt.run_id
    if isinstance(error, (tracking.TrackingError, MlflowException)):
        return StageError(f"logging to the MLflow store {tracking.tracking_uri()} failed "
                          f"({str(error).splitlines()[0]}) while {attempt.phase}; {checkpoint_note(attempt)}: "
                          f"run the same command again once the store is reachable")
    if isinstance(error, KeyboardInterrupt):
        signum = getattr(error, "signum", signal.SIGINT)
        reason = f"interrupted by {signal.Signals(signum).name} after iteration {attempt.last_step}"
        mark_ended(client, run_id, "KILLED", reason, attempt.last_step)
        return Interrupted(signum, f"{reason} ({attempt.phase}); MLflow run {run_id} is marked KILLED and "
                                   f"{checkpoint_note(attempt)}: run the same command to resume")
    if isinstance(error, DivergenceError):
        reason = f"diverged at iteration {error.step}: loss {error.loss}"
        mark_ended(client, run_id, "FAILED", reason, error.step)
        return StageError(f"training {reason}; lower train.lr (now {config.lr}). MLflow run {run_id} is "
                          f"marked FAILED; the last good checkpoint stays in {attempt.checkpoint_dir}")
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    if attempt.phase != "training":
        reason = f"after training, {attempt.phase}: {message}"
        kept = checkpoint_note(attempt)
        if attempt.model_dir is not None and (attempt.model_dir / "vectors.txt").is_file():
            kept += f", the vectors in {attempt.model_dir / 'vectors.txt'}"
        mark_ended(client, run_id, "FAILED", reason)
        return StageError(f"{reason}. MLflow run {run_id} is marked FAILED; {kept}: once the cause is fixed, "
                          f"the same command finishes the run without training again")
    if isinstance(error, (ValueError, StageError)):  # e.g. an unreadable checkpoint; the message says what to do
        mark_ended(client, run_id, "FAILED", message)
        return StageError(message)
    mark_ended(client, run_id, "FAILED", f"{type(error).__name__}: {message}", attempt.last_step)
    return error


def mark_ended(client, run_id: str, status: str, reason: str, step: int | None = None) -> None:
    """Tag the run with why it ended and terminate it with `status`; a store that fails now (it
    may be why the run ended) leaves the run as it is: the next attempt sets it right."""
    tags = {"failure_reason": reason}
    if step is not None:
        tags["failed_at_iteration"] = str(step)
    with signals_held(deliver=False):
        try:
            tracking.set_tags(client, run_id, tags)
            tracking.with_retries(client.set_terminated, run_id, status=status)
        except Exception as error:
            log.warning("could not mark MLflow run %s %s: %s", run_id, status, str(error).splitlines()[0])


def train_logged(client, job: Job, corpus, config, attempt: Attempt):
    """Train with the run's journal and MLflow metrics; returns (TrainResult, RunLogger, the
    seconds the training loop spent logging). A failure is raised as it is, for run_attempt."""
    from w2v.trainer import train

    journal_path = attempt.checkpoint_dir / JOURNAL_FILE
    if not attempt.resumed:
        journal_path.unlink(missing_ok=True)
    sink = tracking.MetricSink(attempt.run_id)
    run_logger = RunLogger(sink, journal_path, config.iterations, progress_lines=not job.progress_bar)
    try:
        if attempt.resumed:
            backfilled = run_logger.backfill(tracking.logged_steps(client, attempt.run_id))
            log.info("the journal holds %d logged steps; %d of them were missing in MLflow",
                     len(run_logger.history), backfilled)
        log.info("MLflow run %s (%s), checkpoints in %s", attempt.run_id, tracking.tracking_uri(),
                 attempt.checkpoint_dir)
        result = train(corpus, config, checkpoint_dir=attempt.checkpoint_dir, hooks=hooks_for(run_logger, attempt),
                       metadata={"mlflow_run_id": attempt.run_id}, progress=job.progress_bar)
        logging_seconds = sink.seconds  # inside the training loop; the final flush comes after it
        attempt.phase = "sending the last metrics"
        sink.close()
    except BaseException as error:
        # what the helper has not written is in the journal: the next attempt sends it again
        flush = isinstance(error, Exception) and not isinstance(error, (tracking.TrackingError, MlflowException))
        with signals_held(deliver=False):
            try:
                sink.close(flush=flush)
            except Exception:
                pass
        raise
    finally:
        run_logger.close()
    return result, run_logger, logging_seconds


def final_metrics_of(client, run_id: str, result, logging_seconds: float, sink_seconds: float,
                     iterations: int) -> dict:
    """metrics/train.json of the run, logged to MLflow at the last iteration. A run resumed from
    its final checkpoint trained nothing now: it keeps what the attempt that trained it logged."""
    final_metrics = {
        "final_loss_smoothed": float(result.loss_smoothed),
        "train_seconds": float(result.train_seconds),
        "compile_seconds": float(result.compile_seconds),
        "logging_seconds": logging_seconds,
    }
    if result.resumed_from_step == iterations:
        logged = client.get_run(run_id).data.metrics
        if set(final_metrics) <= set(logged):
            log.info("training had reached iteration %d before: finishing the run", iterations)
            return {key: logged[key] for key in final_metrics}
    train_seconds = final_metrics["train_seconds"]
    log.info("trained in %.1f s (+%.1f s compiling); MLflow logging took %.2f s of it (%.1f%%), "
             "then %.2f s to flush", train_seconds, result.compile_seconds, logging_seconds,
             100 * logging_seconds / train_seconds if train_seconds > 0 else 0.0, sink_seconds - logging_seconds)
    tracking.with_retries(client.log_batch, run_id, metrics=[
        tracking.Metric(key, value, int(time.time() * 1000), iterations) for key, value in final_metrics.items()])
    return final_metrics


def write_outputs(cfg: DictConfig, job: Job, corpus, result, history, run_record: dict, final_metrics: dict,
                  attempt: Attempt) -> Path:
    """The model folder and the records beside it; returns the model folder. The DVC stage:
    models/ (replaced whole), metrics/train.json and plots/loss.csv; a Hydra run or job: its
    output folder, with train.json and loss.csv in it."""
    if job.dvc_stage:
        model_dir = project_path(cfg.paths.models)
        with atomic_directory(model_dir) as folder:
            write_model_folder(folder, cfg, corpus, result, history, run_record, attempt)
        attempt.model_dir = model_dir
        write_dvc_records(project_path(cfg.paths.metrics) / "train.json",
                          project_path(cfg.paths.plots) / "loss.csv", final_metrics, history)
    else:
        model_dir = attempt.model_dir = job.output_dir
        write_model_folder(model_dir, cfg, corpus, result, history, run_record, attempt)
        write_dvc_records(model_dir / "train.json", model_dir / "loss.csv", final_metrics, history)
    return model_dir


def publish(client, cfg: DictConfig, job: Job, corpus, config, attempt: Attempt, result, run_logger,
            logging_seconds: float) -> dict:
    """Everything after the last iteration: final metrics, the model folder (vectors before the
    figures) and its records, the artifacts and, for a Hydra job, the evaluation; returns the
    final metrics. attempt.phase names each step; a failure is raised as it is, for run_attempt."""
    run_id = attempt.run_id
    attempt.phase = "logging the final metrics"
    final_metrics = final_metrics_of(client, run_id, result, logging_seconds, run_logger.sink.seconds,
                                     config.iterations)
    experiment_id = client.get_run(run_id).info.experiment_id
    run_record = {"run_id": run_id, "tracking_uri": tracking.tracking_uri(), "experiment_id": experiment_id}
    model_dir = write_outputs(cfg, job, corpus, result, run_logger.history, run_record, final_metrics, attempt)
    attempt.phase = "logging the model folder as artifacts"
    for name in MODEL_FILES:
        tracking.with_retries(client.log_artifact, run_id, str(model_dir / name))
    log.info("model folder %s", model_dir)
    if not job.dvc_stage:
        from pipeline.evaluate import evaluate_model_dir

        attempt.phase = "evaluating"
        evaluate_model_dir(cfg, model_dir, run_id)
    attempt.phase = "closing the run"
    return final_metrics


@dataclass
class Prepared:
    """What a run trains, known before anything is locked, opened or written."""
    corpus: Corpus
    config: TrainConfig
    checkpoint_dir: Path  # this configuration's checkpoint folder (checkpoint_dir_for)


def prepare(cfg: DictConfig) -> Prepared:
    """The first step: the processed corpus (refused, in one StageError line, when it is missing,
    unreadable or built with other corpus.* settings), the TrainConfig and the checkpoint folder."""
    from w2v.corpus import corpus_settings

    processed = project_path(cfg.paths.processed)
    try:
        corpus = processed_corpus(processed, cfg.corpus.get("min_count"))
        recorded = corpus_settings(processed)
    except (OSError, ValueError) as error:
        raise StageError(f"cannot read the processed corpus in {processed} ({error}): run `dvc repro tokenize` "
                         f"or `python -m pipeline.tokenize` first") from None
    check_processed_corpus(cfg, recorded or {"train_on": corpus.train_on}, processed)
    return Prepared(corpus, train_config(cfg), checkpoint_dir_for(cfg, corpus))


def open_attempt(client, cfg: DictConfig, job: Job, checkpoint_dir: Path) -> Attempt:
    """This attempt's MLflow run (open_run: the checkpoint's, resumed, or a new one) and the
    iteration its checkpoint is at."""
    from w2v.checkpoint import checkpoint_step

    run_id, resumed = open_run(client, cfg, job, checkpoint_dir)
    return Attempt(run_id, checkpoint_dir, resumed=resumed, last_step=checkpoint_step(checkpoint_dir) or 0)


def run_attempt(client, cfg: DictConfig, job: Job, prepared: Prepared) -> tuple[Attempt, dict]:
    """Open the run, train (train_logged), publish and mark the run FINISHED; returns the attempt
    and the final metrics. The one place where a failure, from the run's opening on, gets its
    MLflow status and its one line (end_failed_run); before the run is open there is nothing to
    record, and a failure is raised as it is. Call it holding the checkpoint folder's lock."""
    attempt = None
    try:
        with signals_held():  # an interruption now is recorded in the run once it is open
            attempt = open_attempt(client, cfg, job, prepared.checkpoint_dir)
        result, run_logger, logging_seconds = train_logged(client, job, prepared.corpus, prepared.config, attempt)
        final_metrics = publish(client, cfg, job, prepared.corpus, prepared.config, attempt, result, run_logger,
                                logging_seconds)
        tracking.with_retries(client.set_terminated, attempt.run_id, status="FINISHED")
    except BaseException as error:
        if attempt is None:
            raise
        raise end_failed_run(client, attempt, error, prepared.config) from None
    return attempt, final_metrics


def forget_finished_run(checkpoint_dir: Path) -> None:
    """A FINISHED run leaves nothing to resume: its run file, journal and checkpoint go (and with
    them the folder, when `exclusive` releases it)."""
    from w2v.checkpoint import clear_checkpoint

    for name in (RUN_FILE, JOURNAL_FILE):
        (checkpoint_dir / name).unlink(missing_ok=True)
    clear_checkpoint(checkpoint_dir)


def run_training(cfg: DictConfig, job: Job) -> dict:
    """One run: prepare, then under the checkpoint folder's lock run_attempt (open the MLflow run,
    train, publish) and forget the finished run's checkpoint; returns {"run_id", final metrics}."""
    prepared = prepare(cfg)
    client = tracking.client()
    catch_termination()
    with exclusive(prepared.checkpoint_dir):
        attempt, final_metrics = run_attempt(client, cfg, job, prepared)
        forget_finished_run(prepared.checkpoint_dir)
    return {"run_id": attempt.run_id, **final_metrics}


def run_job(cfg: DictConfig, job: Job) -> dict:
    try:
        return run_training(cfg, job)
    except MlflowException as error:  # the store failed outside the training loop
        raise StageError(f"the MLflow store {tracking.tracking_uri()} failed: {str(error).splitlines()[0]}; "
                         f"run the same command again once it is reachable (a checkpoint, if any, is kept)") from None


@stage
def main(cfg: DictConfig):  # `stage` has validated cfg
    cfg = with_machine_settings(cfg)  # train.threads=auto, train.dtype=auto: what this run uses
    job = describe_job(cfg)
    if job.skipped:
        log.info("skipped: with loss=naive_softmax this job duplicates another job of the sweep (train.K is unused)")
        return None
    if job.finished_run_id:
        log.info("this job of the sweep finished before, in MLflow run %s: not trained again", job.finished_run_id)
        return None
    if not job.multirun:
        result = run_job(cfg, job)
        if not job.dvc_stage:  # a run by hand ends with its figures (the DVC stage leaves them to evaluate)
            from pipeline.sweep_report import run_figures

            print(run_figures(tracking.client(), result["run_id"]), flush=True)
        return result
    # In a sweep one failing job must not stop the others: its run is marked FAILED and the sweep's
    # end (pipeline.sweep) reports all failures and exits non-zero.
    try:
        return run_job(cfg, job)
    except StageError as error:
        log.error("error: %s", error)
        return None
    except Interrupted as interrupted:  # stops the sweep: the launching process says how it ended
        if interrupted.message:
            log.warning("%s", interrupted.message)
        raise


def report_interruption(interrupted: KeyboardInterrupt) -> int:
    """Print the one line of an interrupted run or sweep; returns the exit status (128 + signal)."""
    from pipeline.sweep import close_interrupted_sweeps

    signum = getattr(interrupted, "signum", signal.SIGINT)
    message = getattr(interrupted, "message", "") or f"interrupted by {signal.Signals(signum).name}"
    parents = close_interrupted_sweeps()
    if parents:
        message += (f"; the sweep's parent run {', '.join(parents)} is marked KILLED: run the same command "
                    f"to continue the sweep")
    elif not getattr(interrupted, "message", ""):
        message += " before a run started: nothing was changed"
    print(message, file=sys.stderr)
    return 128 + signum


if __name__ == "__main__":
    catch_termination()
    try:
        main()
    except KeyboardInterrupt as interrupted:
        sys.exit(report_interruption(interrupted))
