"""scripts/tracking-server for real: PostgreSQL + MLflow on free loopback ports in a temporary data
folder, an 8-job parallel sweep of the training module against it, and a run that loses the server
midway and resumes from its checkpoint once the server is back.
"""
import importlib.machinery
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import require
from mlflow.tracking import MlflowClient

from sweep_support import (PROJECT_ROOT, assert_full_history, assert_vectors_artifact, run_training, sweep_runs,
                           train_command, write_tiny_corpus)

SCRIPT = PROJECT_ROOT / "scripts" / "tracking-server"


def load_script():
    loader = importlib.machinery.SourceFileLoader("tracking_server", str(SCRIPT))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("tracking_server", loader))
    loader.exec_module(module)
    return module


tracking_server = load_script()


@pytest.fixture
def postgresql_installed():
    require(tracking_server.find_postgres_bin() is not None,
            "the PostgreSQL server is not installed (apt-get install postgresql)")


requires_postgresql = pytest.mark.usefixtures("postgresql_installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """One data folder of scripts/tracking-server, driven through its command line."""

    def __init__(self, data_dir: Path, port: int, db_port: int):
        self.data_dir, self.port, self.db_port = data_dir, port, db_port
        self.uri = f"http://127.0.0.1:{port}"

    def run(self, command: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([str(SCRIPT), command, "--data-dir", str(self.data_dir), "--port", str(self.port),
                               "--db-port", str(self.db_port)], capture_output=True, text=True, timeout=300)
        assert not check or done.returncode == 0, f"tracking-server {command}: {done.stdout}{done.stderr}"
        return done


@pytest.fixture(scope="module")
def server():
    # Not pytest's tmp_path: as root, PostgreSQL runs as `postgres`, which cannot enter
    # /tmp/pytest-of-root (mode 0700).
    base = Path(tempfile.mkdtemp(prefix="w2v-tracking-test-"))
    base.chmod(0o711)
    port = free_port()
    db_port = next(p for p in iter(free_port, None) if p != port)
    server = Server(base / "server", port, db_port)
    server.run("start")
    try:
        yield server
    finally:
        server.run("stop", check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def corpus_dir(sst_dir, tmp_path_factory) -> Path:
    return write_tiny_corpus(sst_dir, tmp_path_factory.mktemp("processed"))


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a listening TCP socket on `port` (from /proc/net/tcp, tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


@requires_postgresql
@pytest.mark.slow
@pytest.mark.integration
def test_server_is_on_loopback_postgresql_with_a_private_generated_password(server):
    status = server.run("status")
    assert "running on 127.0.0.1" in status.stdout and server.uri in status.stdout
    assert server.run("uri").stdout.strip() == server.uri
    # Both servers listen on 127.0.0.1 only (hex 0100007F), nothing on other interfaces.
    assert listening_addresses(server.port) == {"0100007F"}
    assert listening_addresses(server.db_port) == {"0100007F"}

    password_file = server.data_dir / "db-password"
    assert password_file.stat().st_mode & 0o777 == 0o600
    password = password_file.read_text().strip()
    assert len(password) >= 24
    assert not password_file.resolve().is_relative_to(PROJECT_ROOT)
    tracked = subprocess.run(["git", "grep", "-F", "-l", "-e", password], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert tracked.stdout == "", "the database password is in the repository"
    pid = json.loads((server.data_dir / "server.json").read_text())["pid"]
    assert password.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()

    # The store is PostgreSQL: MLflow's tables are there, reachable with the password only.
    import psycopg  # the driver SQLAlchemy (and so MLflow) uses for postgresql:// URIs

    with psycopg.connect(host="127.0.0.1", port=server.db_port, user="mlflow", password=password,
                          dbname="mlflow") as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM information_schema.tables WHERE table_name IN ('runs', 'metrics')")
        assert cursor.fetchone()[0] == 2
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host="127.0.0.1", port=server.db_port, user="mlflow", password="wrong", dbname="mlflow")


@requires_postgresql
@pytest.mark.slow
@pytest.mark.integration
def test_parallel_sweep_of_eight_jobs_arrives_whole(server, corpus_dir, tmp_path):
    iterations, log_every = 200, 10
    experiment = "server-sweep"
    done = run_training(train_command(
        "-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={tmp_path / 'sweep'}",
        f"paths.processed={corpus_dir}", f"paths.checkpoints={tmp_path / 'checkpoints'}",
        f"mlflow.experiment={experiment}", f"train.iterations={iterations}", f"train.log_every={log_every}",
        "train.checkpoint_every=100", "train.anneal_every=100",
        "loss=neg_sampling,naive_softmax", "train.window=1,2", "train.seed=0,1"), server.uri)
    assert done.returncode == 0, done.stderr[-3000:]

    client = MlflowClient(server.uri)
    parent, children = sweep_runs(client, experiment)
    assert parent.info.status == "FINISHED"
    assert len(children) == 8
    assert {(c.data.params["loss.name"], c.data.params["train.window"], c.data.params["train.seed"])
            for c in children} == {(loss, w, s) for loss in ("neg_sampling", "naive_softmax")
                                   for w in ("1", "2") for s in ("0", "1")}
    for child in children:
        assert child.info.status == "FINISHED", child.data.tags.get("failure_reason")
        assert_full_history(client, child.info.run_id, iterations, log_every)
        assert_vectors_artifact(client, child.info.run_id, tmp_path / "downloads")
        # The artifacts went through the server into its own artifact folder.
        assert child.info.artifact_uri.startswith("mlflow-artifacts:")
    stored = list((server.data_dir / "artifacts").rglob("vectors.txt"))
    assert len(stored) == 8


@requires_postgresql
@pytest.mark.slow
@pytest.mark.integration
def test_run_that_loses_the_server_resumes_from_its_checkpoint_with_no_step_lost(server, corpus_dir, tmp_path):
    """Stop the server midway: the run fails with one error line naming the server and keeps its
    checkpoint; the same command, once the server is back, finishes the same MLflow run with every
    step exactly once."""
    from w2v.checkpoint import read_checkpoint_metadata

    iterations, log_every = 6000, 10
    checkpoints = tmp_path / "checkpoints"
    argv = train_command(
        f"hydra.run.dir={tmp_path / 'run'}", f"paths.processed={corpus_dir}", f"paths.checkpoints={checkpoints}",
        "mlflow.experiment=server-outage", f"train.iterations={iterations}", f"train.log_every={log_every}",
        "train.checkpoint_every=500", "train.anneal_every=3000")
    # Give up soon once the server is gone, instead of MLflow's default of minutes of retries.
    fail_fast = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
    env = os.environ | {"MLFLOW_TRACKING_URI": server.uri} | fail_fast
    training = subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
    try:
        metadata = wait_for_checkpoint(checkpoints, training, timeout=180)
        # Hold the run still while the server goes down, so it is surely mid-way.
        training.send_signal(signal.SIGSTOP)
        server.run("stop")
        training.send_signal(signal.SIGCONT)
        _, stderr = training.communicate(timeout=180)
    finally:
        training.kill()
    assert training.returncode != 0, "the run finished without its tracking server"
    last_line = stderr.strip().splitlines()[-1]
    assert last_line.startswith("error: ") and server.uri in last_line and "again" in last_line, stderr[-3000:]
    # The checkpoint (up to the end, as training need not wait for the store) survives the failure.
    kept = read_checkpoint_metadata(next(p for p in checkpoints.iterdir() if p.is_dir()))
    assert kept is not None and kept["mlflow_run_id"] == metadata["mlflow_run_id"]

    server.run("start")
    client = MlflowClient(server.uri)
    run_id = metadata["mlflow_run_id"]
    arrived = len(client.get_metric_history(run_id, "loss"))
    assert arrived < iterations // log_every, "the outage cost the store no steps: nothing to check"
    done = run_training(argv, server.uri)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"resuming MLflow run {run_id}" in done.stderr + done.stdout

    runs = client.search_runs([client.get_experiment_by_name("server-outage").experiment_id])
    assert [run.info.run_id for run in runs] == [run_id], "the resumed run is not the same run"
    assert runs[0].info.status == "FINISHED"
    assert_full_history(client, runs[0].info.run_id, iterations, log_every)
    assert_vectors_artifact(client, runs[0].info.run_id, tmp_path / "downloads")
    assert not list(checkpoints.glob("*/checkpoint.json")), "a finished run left its checkpoint"


def test_without_postgresql_start_says_so_and_creates_nothing(monkeypatch, tmp_path, capsys):
    # Hide every place the script looks for the server binaries.
    monkeypatch.delenv("PG_BIN", raising=False)
    monkeypatch.setattr(tracking_server.glob, "glob", lambda pattern: [])
    monkeypatch.setattr(tracking_server.shutil, "which", lambda name: None)
    assert tracking_server.main(["start", "--data-dir", str(tmp_path / "server")]) == 1
    assert "the PostgreSQL server is not installed" in capsys.readouterr().err
    assert not (tmp_path / "server").exists()
    assert tracking_server.main(["status", "--data-dir", str(tmp_path / "server")]) == 3


def wait_for_checkpoint(checkpoints: Path, training: subprocess.Popen, timeout: float) -> dict:
    """The metadata of the run's first checkpoint, once it is written (the run is then mid-way)."""
    from w2v.checkpoint import read_checkpoint_metadata

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert training.poll() is None, f"training ended early:\n{training.stderr.read()[-3000:]}"
        for folder in checkpoints.glob("*"):
            if folder.is_dir() and (metadata := read_checkpoint_metadata(folder)):
                return metadata
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")
