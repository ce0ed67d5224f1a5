"""The steps of one training run (pipeline.train), each called on its own in this process:
prepare (corpus, config, checkpoint folder), run_attempt (open the MLflow run, train, publish;
every failure mapped to its status and one line by end_failed_run), write_outputs and
forget_finished_run. A real SQLite MLflow store in tmp_path, a real processed corpus."""
import json
import signal
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient

from pipeline import tracking
from pipeline.common import PROJECT_ROOT, StageError
from pipeline.config import with_machine_settings
from pipeline.train import (JOURNAL_FILE, MODEL_FILES, RUN_FILE, Attempt, Interrupted, Job, end_failed_run,
                            forget_finished_run, open_attempt, prepare, run_attempt, write_outputs)


def composed(tmp_path: Path, processed: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"paths.processed={processed}", f"paths.checkpoints={tmp_path / 'ckpt'}",
                                           f"paths.models={tmp_path / 'models'}", f"paths.metrics={tmp_path / 'metrics'}",
                                           f"paths.plots={tmp_path / 'plots'}", "train.iterations=40",
                                           "train.checkpoint_every=20", *overrides])
    return with_machine_settings(cfg)


def hydra_job(output_dir: Path, dvc_stage: bool = False) -> Job:
    return Job(dvc_stage=dvc_stage, output_dir=output_dir, overrides=[], multirun=False, parent_run_id=None,
               skipped=False, run_name=None, progress_bar=False)


@pytest.fixture
def store(empty_store, monkeypatch) -> MlflowClient:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", empty_store)
    return MlflowClient(empty_store)


def test_prepare_reads_the_corpus_and_names_the_checkpoint_folder_without_writing(fixture_corpus, tmp_path):
    prepared = prepare(composed(tmp_path, fixture_corpus, "train.window=2"))
    assert {f"w{i}" for i in range(40)} <= set(prepared.corpus.words) and prepared.corpus.train_on == "train"
    assert (prepared.config.iterations, prepared.config.window) == (40, 2)
    assert prepared.checkpoint_dir.parent == tmp_path / "ckpt" and len(prepared.checkpoint_dir.name) == 16
    assert not (tmp_path / "ckpt").exists()
    other = prepare(composed(tmp_path, fixture_corpus, "train.window=3"))
    assert other.checkpoint_dir != prepared.checkpoint_dir  # another configuration, another folder


def test_prepare_refuses_a_missing_corpus_or_one_built_with_other_settings(fixture_corpus, tmp_path):
    with pytest.raises(StageError, match=r"cannot read the processed corpus .* run `dvc repro tokenize`"):
        prepare(composed(tmp_path, tmp_path / "absent"))
    with pytest.raises(StageError, match=r"corpus.train_on='all', but the processed corpus .* corpus.train_on='train': rerun tokenize"):
        prepare(composed(tmp_path, fixture_corpus, "corpus.train_on=all"))


def test_run_attempt_trains_publishes_and_finishes_the_run_then_forget_clears_the_checkpoint(
        fixture_corpus, store, tmp_path):
    cfg = composed(tmp_path, fixture_corpus)
    prepared = prepare(cfg)
    attempt, final_metrics = run_attempt(store, cfg, hydra_job(tmp_path / "run"), prepared)
    run = store.get_run(attempt.run_id)
    assert run.info.status == "FINISHED" and not attempt.resumed and attempt.phase == "closing the run"
    assert final_metrics["final_loss_smoothed"] == run.data.metrics["final_loss_smoothed"]
    assert "eval_ws353_spearman" in run.data.metrics  # a Hydra run is evaluated at once
    assert all((tmp_path / "run" / name).is_file() for name in MODEL_FILES)
    assert {a.path for a in store.list_artifacts(attempt.run_id)} >= set(MODEL_FILES)
    assert not (tmp_path / "models").exists()  # models/ is the DVC stage's
    # the checkpoint stays until the caller forgets it
    assert (prepared.checkpoint_dir / RUN_FILE).is_file() and (prepared.checkpoint_dir / JOURNAL_FILE).is_file()
    forget_finished_run(prepared.checkpoint_dir)
    assert not prepared.checkpoint_dir.exists()


def test_run_attempt_marks_a_diverging_run_failed_in_one_line(fixture_corpus, store, tmp_path):
    cfg = composed(tmp_path, fixture_corpus, "train.lr=1e30", "train.checkpoint_every=1", "train.log_every=1")
    prepared = prepare(cfg)
    with pytest.raises(StageError) as error:
        run_attempt(store, cfg, hydra_job(tmp_path / "run"), prepared)
    message = str(error.value)
    assert message.startswith("training diverged at iteration ") and "lower train.lr (now 1e+30)" in message
    assert "\n" not in message
    run = store.search_runs([store.get_experiment_by_name("w2v").experiment_id])[0]
    assert run.info.status == "FAILED" and run.data.tags["failure_reason"].startswith("diverged at iteration")
    assert (prepared.checkpoint_dir / "checkpoint.json").is_file()  # the last good one


def test_a_failure_after_training_keeps_the_trained_run_and_the_next_attempt_finishes_it(
        fixture_corpus, store, tmp_path):
    cfg = composed(tmp_path, fixture_corpus)
    prepared = prepare(cfg)
    blocked = tmp_path / "run"
    blocked.write_text("a file where the model folder should go\n")
    with pytest.raises(StageError, match=r"^after training, writing the vectors: .*marked FAILED; the checkpoint "
                                         r"of iteration 40 is kept .* without training again$"):
        run_attempt(store, cfg, hydra_job(blocked), prepared)
    first = store.search_runs([store.get_experiment_by_name("w2v").experiment_id])[0]
    assert first.info.status == "FAILED"

    attempt, final_metrics = run_attempt(store, cfg, hydra_job(tmp_path / "run2"), prepared)
    assert attempt.run_id == first.info.run_id and attempt.resumed and attempt.last_step == 40
    assert store.get_run(attempt.run_id).info.status == "FINISHED"
    assert "failure_reason" not in store.get_run(attempt.run_id).data.tags
    assert final_metrics["final_loss_smoothed"] == first.data.metrics["final_loss_smoothed"]


def test_end_failed_run_maps_an_interruption_to_killed_and_a_store_failure_to_nothing_recorded(
        fixture_corpus, store, tmp_path):
    cfg = composed(tmp_path, fixture_corpus)
    prepared = prepare(cfg)
    prepared.checkpoint_dir.mkdir(parents=True)
    attempt = open_attempt(store, cfg, hydra_job(tmp_path / "run"), prepared.checkpoint_dir)
    attempt.last_step = 30

    unreachable = end_failed_run(store, attempt, tracking.TrackingError("connection refused"), prepared.config)
    assert isinstance(unreachable, StageError)
    assert str(unreachable).startswith("logging to the MLflow store ") and "once the store is reachable" in str(unreachable)
    assert store.get_run(attempt.run_id).info.status == "RUNNING"  # it cannot be recorded

    killed = end_failed_run(store, attempt, Interrupted(signal.SIGTERM), prepared.config)
    assert isinstance(killed, Interrupted) and killed.signum == signal.SIGTERM
    assert killed.message.startswith("interrupted by SIGTERM after iteration 30 (training); MLflow run ")
    run = store.get_run(attempt.run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags["failure_reason"] == "interrupted by SIGTERM after iteration 30"
    assert run.data.tags["failed_at_iteration"] == "30"


def test_write_outputs_of_the_dvc_stage_replace_models_and_write_its_records(fixture_corpus, tmp_path):
    from w2v.trainer import train

    cfg = composed(tmp_path, fixture_corpus)
    prepared = prepare(cfg)
    result = train(prepared.corpus, prepared.config)
    history = {10: {"loss": 3.5, "loss_smoothed": 3.5, "lr": 0.3}, 20: {"loss": 3.0, "loss_smoothed": 3.475, "lr": 0.3}}
    attempt = Attempt("run-id", prepared.checkpoint_dir)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "stale.txt").write_text("from an older run\n")
    model_dir = write_outputs(cfg, hydra_job(tmp_path / "unused", dvc_stage=True), prepared.corpus, result, history,
                              {"run_id": "run-id"}, {"final_loss_smoothed": 3.475, "train_seconds": 1.5,
                                                     "compile_seconds": 0.25, "logging_seconds": 0.125}, attempt)
    assert model_dir == attempt.model_dir == tmp_path / "models"
    assert sorted(p.name for p in model_dir.iterdir()) == sorted({*MODEL_FILES, "mlflow_run.json"})
    assert json.loads((model_dir / "mlflow_run.json").read_text()) == {"run_id": "run-id"}
    # the DVC metrics keep the headline figures; compile and logging seconds stay in MLflow
    assert json.loads((tmp_path / "metrics" / "train.json").read_text()) == {"final_loss_smoothed": 3.475,
                                                                               "train_seconds": 1.5}
    assert (tmp_path / "plots" / "loss.csv").read_text() == "step,loss,loss_smoothed,lr\n10,3.5,3.5,0.3\n20,3.0,3.475,0.3\n"
    assert not (tmp_path / "unused").exists()
