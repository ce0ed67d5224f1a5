"""The pipeline under real DVC: a copy of the project in a fresh git + DVC repository (Hydra
composition enabled), the SST files as corpus.url, a few training iterations. `dvc repro`,
`dvc exp run -S ...` and a queued grid run with `dvc queue start` must all log into the
repository's own MLflow store (`<repo>/mlflow.db`), also from the queue's temporary copies."""
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from dvc_project import copy_tree

pytestmark = [pytest.mark.slow, pytest.mark.integration]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROJECT_FILES = ["conf", "pipeline", "w2v", "dvc.yaml", "params.yaml", ".gitignore", ".dvcignore", "pyproject.toml"]


def sh(repo: Path, *command: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DVC_", "MLFLOW_", "W2V_", "GIT_"))}  # the default store, by design
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `python` in dvc.yaml
    done = subprocess.run(list(command), cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def repo(tmp_path_factory, sst_dir) -> Path:
    """The project copied into a new git + DVC repository, trained for 200 iterations only."""
    repo = tmp_path_factory.mktemp("dvc") / "project"
    repo.mkdir()
    for name in PROJECT_FILES:
        source = PROJECT_ROOT / name
        if source.is_dir():
            # __pycache__ comes along with its mtimes, so numba finds its compiled kernels
            copy_tree(source, repo / name, "*.pyc")
        else:
            shutil.copy2(source, repo / name)
    config = repo / "conf" / "experiment.yaml"
    text = config.read_text()
    text = re.sub(r"(?m)^  iterations: \d+", "  iterations: 200", text)
    text = re.sub(r"(?m)^  checkpoint_every: \d+", "  checkpoint_every: 100", text)
    config.write_text(text)
    sst = repo / "conf" / "corpus" / "sst.yaml"
    sst.write_text(re.sub(r"(?m)^url: .*$", f"url: {sst_dir}", sst.read_text()))
    labels = sst_dir.parent / "trainDevTestTrees_PTB"  # the sentiment trees, for download_labels
    config.write_text(re.sub(r"(?m)^  url: http://nlp.stanford.edu/sentiment/.*$", f"  url: {labels}", config.read_text()))
    sh(repo, sys.executable, "-m", "pipeline.params")
    sh(repo, "git", "init", "-q")
    sh(repo, "git", "config", "user.email", "test@example.com")
    sh(repo, "git", "config", "user.name", "test")
    sh(repo, "dvc", "init", "-q")
    sh(repo, "dvc", "config", "hydra.enabled", "true")
    sh(repo, "dvc", "config", "hydra.config_name", "experiment")
    sh(repo, "dvc", "config", "core.autostage", "true")
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-q", "-m", "project")
    return repo


def runs_in(repo: Path):
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    return client, client.search_runs([client.get_experiment_by_name("w2v").experiment_id], order_by=["start_time ASC"])


def test_dvc_repro_then_exp_run_then_a_queued_grid_all_log_into_the_workspace_store(repo):
    # 1. dvc repro: download, download_labels -> tokenize -> gradcheck -> train -> evaluate
    sh(repo, "dvc", "repro")
    for name in ("vectors.txt", "vectors.npy", "vocab.txt", "outside_vectors.npy", "loss.png",
                 "word_vectors.png", "config.yaml", "mlflow_run.json"):
        assert (repo / "models" / name).is_file(), name
    rows = (repo / "plots" / "loss.csv").read_text().splitlines()
    assert rows[0] == "step,loss,loss_smoothed,lr" and len(rows) == 1 + 200 // 10
    metrics = json.loads(sh(repo, "dvc", "metrics", "show", "--json").stdout)
    shown = json.dumps(metrics)
    assert "final_loss_smoothed" in shown and "eval_ws353_spearman" in shown and "eval_sst5_acc" in shown

    client, runs = runs_in(repo)
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED" and run.data.tags["dvc_stage"] == "train"
    assert json.loads((repo / "models" / "mlflow_run.json").read_text())["run_id"] == run.info.run_id
    assert "eval_ws353_spearman" in run.data.metrics  # logged by the evaluate stage into the same run
    assert "eval_sst5_acc" in run.data.metrics and "eval_sst2_acc_ci95" in run.data.metrics
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 20
    assert Path(run.info.artifact_uri.removeprefix("file://")).is_relative_to(repo)

    # 2. dvc exp run -S: DVC composes conf/ with the override into params.yaml
    sh(repo, "dvc", "exp", "run", "-S", "loss=naive_softmax")
    client, runs = runs_in(repo)
    assert len(runs) == 2
    experiment = runs[1]
    assert experiment.data.params["loss.name"] == "naive_softmax" and experiment.info.status == "FINISHED"
    assert experiment.data.tags["dvc_experiment"] == experiment.info.run_name

    # 3. a queued grid, run by DVC's queue worker in temporary copies under .dvc/tmp/exps
    sh(repo, "dvc", "exp", "run", "--queue", "-S", "train.lr=0.1,0.2")
    sh(repo, "dvc", "queue", "start")
    deadline = time.monotonic() + 480
    while time.monotonic() < deadline:
        status = sh(repo, "dvc", "queue", "status").stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            break
        time.sleep(3)
    assert "Failed" not in status, status + sh(repo, "dvc", "queue", "logs", status.split()[-1]).stdout
    client, runs = runs_in(repo)
    queued = runs[2:]
    assert sorted(r.data.params["train.lr"] for r in queued) == ["0.1", "0.2"], status
    for run in queued:
        assert run.info.status == "FINISHED"
        assert run.data.tags["dvc_experiment"] and "eval_ws353_spearman" in run.data.metrics
        assert len(client.get_metric_history(run.info.run_id, "loss")) == 20
        assert Path(run.info.artifact_uri.removeprefix("file://")).is_relative_to(repo)
    # the temporary copies made no store and no checkpoints of their own; the workspace's
    # checkpoint folder saw them and is empty again: checkpoints and their locks are cleared
    assert not list((repo / ".dvc" / "tmp").rglob("mlflow.db"))
    assert (repo / ".cache" / "checkpoints").is_dir()
    assert list((repo / ".cache" / "checkpoints").iterdir()) == []
    shown = json.loads(sh(repo, "dvc", "exp", "show", "--json").stdout)
    assert "final_loss_smoothed" in shown[0]["data"]["metrics"]["metrics/train.json"]["data"]
    # the workspace holds the last `dvc exp run -S loss=naive_softmax`, with naive softmax's own step
    naive_softmax = yaml.safe_load((repo / "conf" / "loss" / "naive_softmax.yaml").read_text())
    assert shown[0]["data"]["params"]["params.yaml"]["data"]["train"]["lr"] == naive_softmax["train"]["lr"]


def digests(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}


def dvc_fails(repo: Path, *command: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DVC_", "MLFLOW_", "W2V_", "GIT_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    done = subprocess.run(list(command), cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode != 0, done.stdout[-3000:]
    return done


def test_a_failing_stage_leaves_the_previous_outputs_in_place(repo):
    sh(repo, "dvc", "repro")  # up to date after the test above; builds everything when run alone
    params = (repo / "params.yaml").read_text()
    models, raw = digests(repo / "models"), digests(repo / "data" / "raw")
    assert "vectors.npy" in models and raw
    runs_before = len(runs_in(repo)[1])

    # a value the train stage would reject: the check stage rejects it before DVC touches models/
    done = dvc_fails(repo, "dvc", "exp", "run", "-S", "train.window=abc")
    assert "error: train.window must be an integer >= 1, got 'abc'" in done.stdout + done.stderr
    assert digests(repo / "models") == models
    assert len(runs_in(repo)[1]) == runs_before  # no MLflow run was started

    # a corpus that cannot be downloaded (nothing listens on port 9): data/raw stays as it was
    (repo / "params.yaml").write_text(params)
    done = dvc_fails(repo, "dvc", "exp", "run", "-S", "corpus.url=http://127.0.0.1:9/sst.zip")
    assert "127.0.0.1:9" in done.stdout + done.stderr
    assert digests(repo / "data" / "raw") == raw
    assert digests(repo / "models") == models

    # and the pipeline still runs from there
    (repo / "params.yaml").write_text(params)
    sh(repo, "git", "checkout", "--", "conf")
    sh(repo, "dvc", "repro")
    assert digests(repo / "models") == models and digests(repo / "data" / "raw") == raw


def test_a_code_edit_reruns_the_downloads_as_no_ops_and_a_pin_override_reaches_them(repo):
    sh(repo, "dvc", "repro")
    raw = {path.name: path.stat().st_mtime_ns for path in (repo / "data" / "raw").iterdir()}
    labels = {path.name: path.stat().st_mtime_ns for path in (repo / "data" / "raw_labels").iterdir()}
    fetch = repo / "w2v" / "fetch.py"
    original = fetch.read_text()
    fetch.write_text(original + "# an edit\n")  # the download stages depend on the folders pipeline/ and w2v/
    try:
        done = sh(repo, "dvc", "repro", "download", "download_labels")
        assert done.stdout.count("already verified, nothing to do") == 2, done.stdout
        assert {path.name: path.stat().st_mtime_ns for path in (repo / "data" / "raw").iterdir()} == raw
        assert {path.name: path.stat().st_mtime_ns for path in (repo / "data" / "raw_labels").iterdir()} == labels
        # tokenize now waits for the code change alone: data/raw is the same to DVC
        status = json.loads(sh(repo, "dvc", "status", "--json").stdout)
        changed = [dep for entry in status["tokenize"] for dep in entry.get("changed deps", {})]
        assert changed == ["w2v"], status["tokenize"]
    finally:
        fetch.write_text(original)

    # an optional pin override (Hydra's + under DVC's composition) reruns download, which checks it
    params, digest = (repo / "params.yaml").read_text(), digests(repo / "data" / "raw")
    done = dvc_fails(repo, "dvc", "exp", "run", "-S", f"+corpus.files={{datasetSplit.txt:{'0' * 64}}}")
    output = done.stdout + done.stderr
    assert f"expected corpus.files.datasetSplit.txt={'0' * 64}" in output, output[-3000:]
    assert "'+corpus.files={datasetSplit.txt:" in output
    assert digests(repo / "data" / "raw") == digest
    (repo / "params.yaml").write_text(params)
