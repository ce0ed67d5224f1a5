"""Every way a training run can end early, on real runs: `python -m pipeline.train` in a
subprocess, a real SQLite MLflow store, real signals. Each must leave one line saying what
happened, an MLflow status that says the same, the trained vectors (or the checkpoint) kept, and
the same command must then finish the run in the same MLflow run."""
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

# shared fixtures and helpers (pytest puts tests/ on sys.path)
from test_train_stage import run_env, steps_of, the_only_run, train_command

from pipeline.common import StageError
from pipeline.train import LOCK_FILE, exclusive


def own_lines(stderr: str) -> list[str]:
    """The lines of stderr that are not log records ("[time][logger][LEVEL] - ...")."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("[")]


def final_checkpoint_step(checkpoints: Path) -> int:
    return json.loads(next(checkpoints.rglob("checkpoint.json")).read_text())["step"]


def assert_nothing_left(checkpoints: Path) -> None:
    """A finished run leaves no checkpoint, journal, run file or lock behind (not even a folder)."""
    assert list(checkpoints.iterdir()) == [], sorted(str(p) for p in checkpoints.rglob("*"))


@pytest.fixture(scope="module")
def corpus_without_plot_words(tmp_path_factory) -> Path:
    """A processed corpus of 400 random sentences over 40 words, none of the 24 plot words."""
    from w2v.corpus import build_corpus, save_corpus

    rng = np.random.default_rng(3)
    words = [f"w{i}" for i in range(40)]
    sentences = [list(rng.choice(words, size=rng.integers(4, 12))) for _ in range(400)]
    folder = tmp_path_factory.mktemp("corpus") / "processed"
    save_corpus(build_corpus(sentences, split=[1, 1, 3, 2] * 100, train_on="train"), folder)
    return folder


@pytest.mark.slow
def test_a_figure_that_fails_fails_the_run_keeps_the_vectors_and_the_rerun_finishes(
        fixture_corpus, empty_store, tmp_path):
    # a folder where word_vectors.png is to go: saving the figure fails for real (also as root)
    blocker = tmp_path / "run" / "word_vectors.png"
    blocker.mkdir(parents=True)
    (blocker / "keep").write_text("in the way\n")
    command = train_command(fixture_corpus, tmp_path, "train.iterations=100", "train.checkpoint_every=40")
    env = run_env(empty_store)
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    lines = own_lines(done.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: after training, drawing word_vectors.png"), lines
    assert "the same command finishes the run" in lines[0]

    client, run = the_only_run(empty_store)
    assert run.info.status == "FAILED"
    assert run.data.tags["failure_reason"].startswith("after training, drawing word_vectors.png")
    # the vectors are kept twice: in the model folder (written before the figures) and in the
    # final checkpoint
    first_vectors = np.load(tmp_path / "run" / "vectors.npy")
    assert (tmp_path / "run" / "vectors.txt").is_file()
    assert final_checkpoint_step(tmp_path / "checkpoints") == 100

    blocker.joinpath("keep").unlink()
    blocker.rmdir()
    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    output = again.stdout + again.stderr
    assert "resuming MLflow run" in output and "training had reached iteration 100 before" in output
    client, run = the_only_run(empty_store)
    assert run.info.status == "FINISHED" and "failure_reason" not in run.data.tags
    assert np.array_equal(np.load(tmp_path / "run" / "vectors.npy"), first_vectors)
    assert steps_of(client, run.info.run_id, "loss") == list(range(10, 101, 10))
    # the final metrics of the attempt that trained, logged once, not replaced by the rerun's
    assert len(client.get_metric_history(run.info.run_id, "train_seconds")) == 1
    assert (tmp_path / "run" / "word_vectors.png").is_file()
    assert {"vectors.txt", "word_vectors.png"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    assert_nothing_left(tmp_path / "checkpoints")


@pytest.mark.slow
def test_artifact_logging_that_fails_fails_the_run_and_the_rerun_finishes(fixture_corpus, empty_store, tmp_path):
    # the experiment's artifact folder lies under a plain file: logging the model folder fails
    blocked = tmp_path / "blocked"
    blocked.write_text("not a folder\n")
    MlflowClient(empty_store).create_experiment("w2v", artifact_location=(blocked / "artifacts").as_uri())
    command = train_command(fixture_corpus, tmp_path, "train.iterations=60", "train.checkpoint_every=30")
    env = run_env(empty_store)
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 1, done.stderr[-3000:]
    lines = own_lines(done.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: after training, logging the model folder"), lines
    client, run = the_only_run(empty_store)
    assert run.info.status == "FAILED" and "logging the model folder" in run.data.tags["failure_reason"]
    assert (tmp_path / "run" / "vectors.npy").is_file() and final_checkpoint_step(tmp_path / "checkpoints") == 60

    blocked.unlink()
    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    client, run = the_only_run(empty_store)
    assert run.info.status == "FINISHED"
    assert "eval_ws353_spearman" in run.data.metrics  # the evaluation that follows the artifacts ran
    assert {"vectors.txt", "vectors.npy", "loss.png"} <= {a.path for a in client.list_artifacts(run.info.run_id)}
    assert_nothing_left(tmp_path / "checkpoints")


@pytest.mark.slow
def test_a_corpus_without_the_plot_words_never_leaves_the_run_running_or_loses_the_vectors(
        corpus_without_plot_words, empty_store, tmp_path):
    command = train_command(corpus_without_plot_words, tmp_path, "train.iterations=60", "train.checkpoint_every=30")
    done = subprocess.run(command, cwd=tmp_path, env=run_env(empty_store), capture_output=True, text=True)
    client, run = the_only_run(empty_store)
    assert (tmp_path / "run" / "vectors.npy").is_file() and (tmp_path / "run" / "vectors.txt").is_file()
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    if done.returncode == 0:  # the 2-D plot fell back to other words
        assert run.info.status == "FINISHED" and (tmp_path / "run" / "word_vectors.png").is_file()
    else:  # the 2-D plot cannot be drawn: the run says so, the final checkpoint keeps the vectors
        lines = own_lines(done.stderr)
        assert done.returncode == 1 and len(lines) == 1 and "word_vectors.png" in lines[0], lines
        assert run.info.status == "FAILED" and "word_vectors.png" in run.data.tags["failure_reason"]
        assert final_checkpoint_step(tmp_path / "checkpoints") == 60


# the run to interrupt: slow enough to be caught mid-way (the reference engine, large batches)
SLOW = ("train.iterations=600", "train.checkpoint_every=100", "train.engine=loop", "train.batch_size=200")


def interrupt_after_first_checkpoint(command, env, checkpoints: Path, send) -> subprocess.CompletedProcess:
    """Start `command` in a session of its own, wait for its first checkpoint, then `send(process)`."""
    process = subprocess.Popen(command, cwd=checkpoints.parent, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if list(checkpoints.rglob("checkpoint.json")):
            send(process)
            break
        time.sleep(0.1)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


@pytest.mark.parametrize("signum, to_group", [(signal.SIGTERM, False), (signal.SIGINT, True)],
                         ids=["SIGTERM to the process", "Ctrl-C to the process group"])
@pytest.mark.slow
@pytest.mark.integration
def test_an_interrupted_run_is_killed_in_one_line_and_the_same_command_resumes_it(
        fixture_corpus, empty_store, tmp_path, signum, to_group):
    command = train_command(fixture_corpus, tmp_path, *SLOW)
    env = run_env(empty_store)
    # Ctrl-C in a terminal reaches the whole foreground process group (the metric helper too)
    send = (lambda p: os.killpg(p.pid, signum)) if to_group else (lambda p: p.send_signal(signum))
    done = interrupt_after_first_checkpoint(command, env, tmp_path / "checkpoints", send)
    assert done.returncode == 128 + signum, done.stderr[-3000:]
    assert "Traceback" not in done.stderr + done.stdout, done.stderr[-3000:]
    lines = own_lines(done.stderr)
    name = signal.Signals(signum).name
    assert len(lines) == 1 and lines[0].startswith(f"interrupted by {name} after iteration "), lines
    assert "run the same command to resume" in lines[0]
    client, run = the_only_run(empty_store)
    assert run.info.status == "KILLED" and run.data.tags["failure_reason"].startswith(f"interrupted by {name}")
    checkpoint = final_checkpoint_step(tmp_path / "checkpoints")
    assert 100 <= checkpoint < 600 and f"checkpoint of iteration {checkpoint}" in lines[0]

    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming MLflow run {run.info.run_id}" in again.stdout + again.stderr
    client, run = the_only_run(empty_store)
    assert run.info.status == "FINISHED" and "failure_reason" not in run.data.tags
    for key in ("loss", "loss_smoothed", "lr", "windows_per_second"):
        assert steps_of(client, run.info.run_id, key) == list(range(10, 601, 10)), key
    assert_nothing_left(tmp_path / "checkpoints")


def test_the_lock_lives_in_the_checkpoint_folder_and_goes_with_it(tmp_path):
    folder = tmp_path / "checkpoints" / "abc"
    with exclusive(folder):
        assert (folder / LOCK_FILE).is_file()
        with pytest.raises(StageError, match="another run with the same training configuration"):
            with exclusive(folder):
                pass
        assert (folder / LOCK_FILE).is_file()  # the refused run left the holder's lock alone
    assert list((tmp_path / "checkpoints").iterdir()) == []  # nothing to resume: folder and lock gone
    with exclusive(folder):
        (folder / "checkpoint.json").write_text("{}")
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.json", LOCK_FILE]  # a checkpoint to resume stays
    with exclusive(folder):  # and its folder can be locked again
        pass
