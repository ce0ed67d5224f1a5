"""`mlflow ui` for real on 127.0.0.1 (a free port) over a SQLite store holding a small sweep: the
README's way of comparing runs. Checks through the REST API the UI itself uses that the parent,
its children, their params and their metric histories are served. The server is always stopped."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

SEEDS = (0, 1, 2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def curve(seed: int) -> list[float]:
    return [5.0 / (1 + step / 50) + 0.1 * seed for step in range(0, 500, 50)]


@pytest.fixture(scope="module")
def sweep_store(tmp_path_factory):
    """A store with experiment "w2v": one parent run and one child per seed, each with a
    loss_smoothed history, an evaluation figure and the swept params."""
    folder = tmp_path_factory.mktemp("ui")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("w2v", artifact_location=(folder / "mlartifacts").as_uri())
    parent = client.create_run(experiment_id, run_name="sweep", tags={"sweep": "parent"}).info.run_id
    children = {}
    for seed in SEEDS:
        run_id = client.create_run(experiment_id, run_name=f"train.seed={seed}",
                                   tags={"mlflow.parentRunId": parent}).info.run_id
        now = int(time.time() * 1000)
        history = [Metric("loss_smoothed", value, now, 50 * i) for i, value in enumerate(curve(seed))]
        client.log_batch(run_id, metrics=history + [Metric("eval_ws353_spearman", 0.1 + 0.05 * seed, now, 0)],
                         params=[Param("train.seed", str(seed)), Param("train.dim", "10")])
        client.set_terminated(run_id)
        children[seed] = run_id
    client.set_terminated(parent)
    return {"folder": folder, "uri": uri, "experiment_id": experiment_id, "parent": parent, "children": children}


@pytest.fixture(scope="module")
def ui(sweep_store):
    """`mlflow ui` on the store; yields its base URL; stops the server and its workers."""
    port = free_port()
    log = open(sweep_store["folder"] / "ui.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", sweep_store["uri"], "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=sweep_store["folder"])
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                pytest.fail(f"mlflow ui exited with {server.returncode}: {(sweep_store['folder'] / 'ui.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail("mlflow ui did not answer /health within 180 s")
            time.sleep(0.5)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # the server and the workers it started
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def call(base: str, path: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{base}/api/2.0/mlflow/{path}", data=data,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_the_ui_page_is_served(ui):
    with urllib.request.urlopen(ui, timeout=30) as response:
        assert response.status == 200
        assert "<html" in response.read().decode().lower()


def test_parent_and_children_are_served(ui, sweep_store):
    experiment = call(ui, "experiments/get-by-name?experiment_name=w2v")["experiment"]
    assert experiment["experiment_id"] == sweep_store["experiment_id"]
    parent = call(ui, f"runs/get?run_id={sweep_store['parent']}")["run"]
    assert parent["info"]["run_name"] == "sweep" and parent["info"]["status"] == "FINISHED"
    found = call(ui, "runs/search", {"experiment_ids": [sweep_store["experiment_id"]],
                                     "filter": f"tags.mlflow.parentRunId = '{sweep_store['parent']}'",
                                     "order_by": ["params.`train.seed` ASC"]})["runs"]
    assert [run["info"]["run_id"] for run in found] == [sweep_store["children"][seed] for seed in SEEDS]
    for seed, run in zip(SEEDS, found):
        params = {p["key"]: p["value"] for p in run["data"]["params"]}
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        assert params == {"train.seed": str(seed), "train.dim": "10"}
        assert metrics["eval_ws353_spearman"] == pytest.approx(0.1 + 0.05 * seed)
        assert metrics["loss_smoothed"] == pytest.approx(curve(seed)[-1])  # the latest value


def test_metric_histories_are_served(ui, sweep_store):
    for seed, run_id in sweep_store["children"].items():
        history = call(ui, f"metrics/get-history?run_id={run_id}&metric_key=loss_smoothed")["metrics"]
        assert [m["step"] for m in sorted(history, key=lambda m: m["step"])] == list(range(0, 500, 50))
        assert [m["value"] for m in sorted(history, key=lambda m: m["step"])] == pytest.approx(curve(seed))
