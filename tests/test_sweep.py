"""Hydra multiruns of `python -m pipeline.train -m ...`, sequential and with the joblib launcher,
into a real SQLite MLflow store: one parent run, one child run per job, full metric histories."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

# shared fixtures and helpers (pytest puts tests/ on sys.path)
from test_train_stage import run_env, steps_of

pytestmark = pytest.mark.slow


def sweep_command(corpus, tmp_path, *overrides):
    return [sys.executable, "-m", "pipeline.train", "-m", f"paths.processed={corpus}",
            f"paths.checkpoints={tmp_path / 'checkpoints'}", f"hydra.sweep.dir={tmp_path / 'sweep'}", *overrides]


def parent_and_children(store: str):
    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("w2v").experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1, [r.info.run_name for r in parents]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == len(runs) - 1
    return client, parents[0], children


def test_sequential_sweep_skips_naive_softmax_duplicates_over_K(fixture_corpus, empty_store, tmp_path):
    command = sweep_command(fixture_corpus, tmp_path, "train.iterations=60", "train.checkpoint_every=30",
                            "loss=naive_softmax,neg_sampling", "train.K=2,3")
    done = subprocess.run(command, cwd=tmp_path, env=run_env(empty_store), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    skip_lines = [line for line in output.splitlines() if "does not use train.K" in line]
    assert len(skip_lines) == 1 and "running 3 of 4" in skip_lines[0]
    assert "loss=naive_softmax train.K=3" in skip_lines[0]

    client, parent, children = parent_and_children(empty_store)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["sweep.train.K"] == "2,3"
    assert sorted(child.info.run_name for child in children) == [
        "loss=naive_softmax,K=2", "loss=neg_sampling,K=2", "loss=neg_sampling,K=3"]  # swept values, short
    for child in children:
        assert child.info.status == "FINISHED"
        assert steps_of(client, child.info.run_id, "loss_smoothed") == list(range(10, 61, 10))
        assert {a.path for a in client.list_artifacts(child.info.run_id)} >= {"vectors.txt", "word_vectors.png"}
    # every job folder is a model folder, except the skipped one
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir() if (p / "vectors.txt").is_file()) == ["0", "2", "3"]


def test_eight_parallel_joblib_jobs_all_log_their_full_history(fixture_corpus, empty_store, tmp_path):
    # 400 iterations logged at every step: 1600 values per job, written in batches while the
    # other seven jobs write to the same SQLite file
    command = sweep_command(fixture_corpus, tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=8",
                            "train.iterations=400", "train.log_every=1", "train.checkpoint_every=100",
                            "train.seed=0,1,2,3,4,5,6,7")
    done = subprocess.run(command, cwd=tmp_path, env=run_env(empty_store), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Joblib" in done.stdout + done.stderr  # the joblib launcher ran the jobs

    client, parent, children = parent_and_children(empty_store)
    assert parent.info.status == "FINISHED"
    assert sorted(child.data.params["train.seed"] for child in children) == [str(s) for s in range(8)]
    for child in children:
        assert child.info.status == "FINISHED"
        for key in ("loss", "loss_smoothed", "lr", "windows_per_second"):
            assert steps_of(client, child.info.run_id, key) == list(range(1, 401)), (child.info.run_name, key)


def test_a_diverging_job_fails_alone_and_the_sweep_exits_non_zero(fixture_corpus, empty_store, tmp_path):
    command = sweep_command(fixture_corpus, tmp_path, "train.iterations=200", "train.checkpoint_every=20",
                            "train.lr=1000,0.3")
    done = subprocess.run(command, cwd=tmp_path, env=run_env(empty_store), capture_output=True, text=True)
    assert done.returncode == 1
    summary = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(summary) == 1 and "1 run(s) of the sweep did not finish" in summary[0]
    assert "lr=1000: diverged at iteration" in summary[0]

    client, parent, children = parent_and_children(empty_store)
    assert parent.info.status == "FAILED"
    status = {child.data.params["train.lr"]: child.info.status for child in children}
    assert status == {"1000": "FAILED", "0.3": "FINISHED"}  # the second job ran after the first failed


def checkpointed_runs(checkpoints: Path) -> list[str]:
    """The MLflow run ids of the checkpoints in a checkpoint root (a folder may vanish meanwhile)."""
    run_ids = []
    for path in checkpoints.rglob("checkpoint.json"):
        try:
            run_ids.append(json.loads(path.read_text())["metadata"]["mlflow_run_id"])
        except (OSError, ValueError, KeyError):
            pass
    return run_ids


@pytest.mark.integration
def test_an_interrupted_joblib_sweep_continues_with_the_same_command(fixture_corpus, empty_store, tmp_path):
    # the two short jobs finish first; the two long ones are interrupted after their first checkpoint
    command = sweep_command(fixture_corpus, tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                            "train.engine=loop", "train.batch_size=200", "train.checkpoint_every=100",
                            "train.iterations=100,600", "train.seed=0,1")
    env = run_env(empty_store)
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True)
    client = MlflowClient(empty_store)
    deadline = time.monotonic() + 400
    interrupted = False
    while time.monotonic() < deadline and process.poll() is None:
        experiment = client.get_experiment_by_name("w2v")
        runs = client.search_runs([experiment.experiment_id]) if experiment else []
        finished = {r.info.run_id for r in runs if "mlflow.parentRunId" in r.data.tags and r.info.status == "FINISHED"}
        if len(finished) == 2 and len(set(checkpointed_runs(tmp_path / "checkpoints")) - finished) == 2:
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the launcher and its workers
            interrupted = True
            break
        time.sleep(0.2)
    stdout, stderr = process.communicate(timeout=120)
    assert interrupted, stderr[-3000:]
    assert process.returncode == 130, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith(("[", "20", "note:"))]
    assert len(lines) == 1 and "run the same command to continue the sweep" in lines[0], lines
    client, parent, children = parent_and_children(empty_store)
    assert parent.info.status == "KILLED"
    before = {child.data.params["train.iterations"] + "/" + child.data.params["train.seed"]: child
              for child in children}
    assert {key: child.info.status for key, child in before.items() if key.startswith("100/")} == {
        "100/0": "FINISHED", "100/1": "FINISHED"}
    assert all(child.info.status == "KILLED" for key, child in before.items() if key.startswith("600/"))

    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    output = done.stdout + done.stderr
    assert f"continuing the sweep of MLflow parent run {parent.info.run_id}" in output
    assert output.count("not trained again") == 3  # the sweep's line and one per finished job
    client, again, children = parent_and_children(empty_store)
    assert again.info.run_id == parent.info.run_id and again.info.status == "FINISHED"
    after = {child.data.params["train.iterations"] + "/" + child.data.params["train.seed"]: child
             for child in children}
    assert sorted(after) == ["100/0", "100/1", "600/0", "600/1"]  # one run per job, under one parent
    for key, child in after.items():
        assert child.info.run_id == before[key].info.run_id and child.info.status == "FINISHED", key
        iterations = int(key.split("/")[0])
        assert steps_of(client, child.info.run_id, "loss") == list(range(10, iterations + 1, 10)), key
    for key in ("100/0", "100/1"):  # not trained again: the run ended when it first did
        assert after[key].info.end_time == before[key].info.end_time


def test_threads_auto_shares_the_cpus_between_parallel_joblib_jobs(fixture_corpus, empty_store, tmp_path):
    """train.threads=auto: a joblib job gets the CPUs divided by n_jobs, a sequential job all of them;
    naive softmax keeps one (BLAS) thread. The logged param is the count used."""
    import os

    cpus = len(os.sched_getaffinity(0))
    command = sweep_command(fixture_corpus, tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                            "train.iterations=40", "loss=neg_sampling,naive_softmax")
    done = subprocess.run(command, cwd=tmp_path, env=run_env(empty_store), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    _, _, children = parent_and_children(empty_store)
    threads = {child.data.params["loss.name"]: child.data.params["train.threads"] for child in children}
    assert threads == {"neg_sampling": str(max(1, cpus // 2)), "naive_softmax": "1"}
    dtypes = {child.data.params["loss.name"]: child.data.params["train.dtype"] for child in children}
    assert dtypes == {"neg_sampling": "float32", "naive_softmax": "float64"}


def test_threads_auto_in_a_sequential_sweep_uses_every_cpu(fixture_corpus, empty_store, tmp_path):
    import os

    command = sweep_command(fixture_corpus, tmp_path, "train.iterations=40", "train.seed=0,1")
    done = subprocess.run(command, cwd=tmp_path, env=run_env(empty_store), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    _, _, children = parent_and_children(empty_store)
    assert {child.data.params["train.threads"] for child in children} == {str(len(os.sched_getaffinity(0)))}
