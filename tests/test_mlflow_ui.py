"""`mlflow ui` for real on 127.0.0.1 (a free port), started as the README says (one worker, no
GenAI job runner), over a SQLite store holding a small sweep in an experiment made by the
project's own `get_or_create_experiment`: the README's way of comparing runs. Checks through the
REST API the UI itself uses that the parent, its children, their params and their metric histories
are served, and in headless Chromium that the README's address opens the experiment on its runs.
The server is always stopped."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

from pathlib import Path

import pytest

from conftest import require
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from headless_browser import HeadlessChromium
from pipeline.tracking import EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND, get_or_create_experiment

SEEDS = (0, 1, 2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def curve(seed: int) -> list[float]:
    return [5.0 / (1 + step / 50) + 0.1 * seed for step in range(0, 500, 50)]


@pytest.fixture(scope="module")
def sweep_store(tmp_path_factory, empty_store_template):
    """A store with experiment "w2v": one parent run and one child per seed, each with a
    loss_smoothed history, an evaluation figure and the swept params."""
    folder = tmp_path_factory.mktemp("ui")
    shutil.copy(empty_store_template, folder / "mlflow.db")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = get_or_create_experiment(client, "w2v")
    parent = client.create_run(experiment_id, run_name="sweep", tags={"sweep": "parent"}).info.run_id
    children = {}
    for seed in SEEDS:
        run_id = client.create_run(experiment_id, run_name=f"seed={seed}",
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
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=sweep_store["folder"],
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
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


@pytest.mark.integration
def test_the_ui_page_is_served(ui):
    with urllib.request.urlopen(ui, timeout=30) as response:
        assert response.status == 200
        assert "<html" in response.read().decode().lower()


@pytest.mark.integration
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


@pytest.mark.integration
def test_metric_histories_are_served(ui, sweep_store):
    for seed, run_id in sweep_store["children"].items():
        history = call(ui, f"metrics/get-history?run_id={run_id}&metric_key=loss_smoothed")["metrics"]
        assert [m["step"] for m in sorted(history, key=lambda m: m["step"])] == list(range(0, 500, 50))
        assert [m["value"] for m in sorted(history, key=lambda m: m["step"])] == pytest.approx(curve(seed))


def test_experiments_are_model_training_experiments_of_the_pinned_ui(sweep_store):
    client = MlflowClient(sweep_store["uri"])
    assert client.get_experiment(sweep_store["experiment_id"]).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND
    # the value is one the UI of the installed MLflow knows (its ExperimentKind enum)
    import mlflow

    bundle = Path(mlflow.__file__).parent / "server" / "js" / "build" / "static" / "js"
    assert any(f'CUSTOM_MODEL_DEVELOPMENT="{MODEL_TRAINING_KIND}"' in script.read_text(errors="ignore")
               for script in bundle.glob("main.*.js"))


# What the page shows once the UI has routed the experiment: MLflow 3.17 sends /#/experiments/<id> on
# to .../overview/usage?workflowType=genai or to .../runs?workflowType=machine_learning&...
SHOWN = """(() => {
    const text = document.body.innerText, hash = location.hash;
    if (hash.includes('/overview/') && hash.includes('workflowType=genai') && text.includes('Detect Issues'))
        return 'GenAI overview';
    if (hash.includes('/runs?workflowType=machine_learning') && /\\d+ matching runs?/.test(text))
        return 'training runs';
    return null;
})()"""


@pytest.fixture
def browser():
    """Headless Chromium with a fresh profile, as a first visit: nothing in localStorage."""
    chromium = shutil.which("chromium")
    require(chromium is not None, "needs Debian's chromium (apt-get install chromium)")
    with HeadlessChromium(chromium) as browser:
        yield browser


def click_the_experiment(browser, experiment_id):
    """Click experiment `w2v` in the experiment list the page shows (its link is #/experiments/<id>)."""
    browser.click("w2v", among=f"a[href='#/experiments/{experiment_id}']")


def open_from_the_home_page(browser, ui, experiment_id):
    """Open the UI's home page and click the experiment among its recent experiments."""
    browser.open(f"{ui}/")
    browser.wait_for("document.body.innerText.includes('Recent Experiments')")
    click_the_experiment(browser, experiment_id)


@pytest.mark.slow
@pytest.mark.integration
def test_a_fresh_browser_opens_the_experiment_on_the_genai_overview(ui, sweep_store, browser):
    # the experiment is tagged as a model-training one, yet the pinned UI takes the kind from its
    # GenAI / Model training switch, which starts on GenAI (the README says so)
    assert MlflowClient(sweep_store["uri"]).get_experiment(
        sweep_store["experiment_id"]).tags[EXPERIMENT_KIND_TAG] == MODEL_TRAINING_KIND
    browser.open(f"{ui}/#/experiments/{sweep_store['experiment_id']}")
    assert browser.wait_for(SHOWN) == "GenAI overview"
    assert browser.location().endswith(f"#/experiments/{sweep_store['experiment_id']}/overview/usage?workflowType=genai")
    # its charts of traces, empty, and MLflow's assistant pane beside them; no run list
    browser.wait_for("['No data available for the selected time range', 'MLflow Assistant']"
                     ".every(words => document.body.innerText.includes(words))")
    assert not re.search(r"^sweep$", browser.text(), re.MULTILINE)


@pytest.mark.slow
@pytest.mark.integration
def test_the_home_page_opens_the_experiment_on_the_genai_overview(ui, sweep_store, browser):
    open_from_the_home_page(browser, ui, sweep_store["experiment_id"])
    assert browser.wait_for(SHOWN) == "GenAI overview"


@pytest.mark.slow
@pytest.mark.integration
def test_the_readme_address_opens_the_experiment_on_its_runs_and_only_that_page(ui, sweep_store, browser):
    browser.open(f"{ui}/#/experiments/{sweep_store['experiment_id']}?workflowType=machine_learning")
    assert browser.wait_for(SHOWN) == "training runs"
    browser.wait_for("document.body.innerText.split('\\n').includes('sweep')")  # the parent's row
    text = browser.text()
    assert f"{1 + len(SEEDS)} matching runs" in text and "seed=0" not in text  # its children folded in
    assert browser.evaluate("localStorage.getItem('mlflow.workflowType_v1')") is None  # not remembered
    browser.click("Experiments")
    browser.wait_for("location.hash === '#/experiments'")  # the experiment list
    click_the_experiment(browser, sweep_store["experiment_id"])
    assert browser.wait_for(SHOWN) == "GenAI overview"


@pytest.mark.slow
@pytest.mark.integration
def test_the_model_training_switch_is_remembered_by_the_browser(ui, sweep_store, browser):
    browser.open(f"{ui}/#/experiments/{sweep_store['experiment_id']}")
    assert browser.wait_for(SHOWN) == "GenAI overview"
    browser.click("Got it")  # the "Detect Issues in Your Traces" tip holds the page until dismissed
    browser.wait_for("getComputedStyle(document.body).pointerEvents !== 'none'")
    browser.click("Model training")
    assert browser.wait_for(SHOWN) == "training runs"
    assert browser.evaluate("localStorage.getItem('mlflow.workflowType_v1')") == '"machine_learning"'
    open_from_the_home_page(browser, ui, sweep_store["experiment_id"])
    assert browser.wait_for(SHOWN) == "training runs"
    browser.open(f"{ui}/#/experiments/{sweep_store['experiment_id']}")
    assert browser.wait_for(SHOWN) == "training runs"
