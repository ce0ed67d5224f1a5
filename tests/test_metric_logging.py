"""Per-step metrics through MLflow's asynchronous logging (pipeline.tracking.MetricSink), on real
SQLite stores in tmp_path: every value arrives once, `close` waits for the last batch, a store
that refuses the values fails with one clear line, and a training process killed with SIGKILL
while batches are in flight, then resumed, ends with every step in the store exactly once.
`fixture_corpus` and `empty_store` are fixtures of conftest.py."""
import json
import random
import signal
import subprocess
import time
from collections import Counter

import pytest
from mlflow.tracking import MlflowClient

from pipeline import tracking
from test_train_stage import STEP_METRICS, run_env, the_only_run, train_command


@pytest.fixture
def store_run(empty_store, monkeypatch):
    """(client, run id) of a new run in a fresh store that pipeline.tracking logs to."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", empty_store)
    client = MlflowClient(empty_store)
    experiment_id = tracking.get_or_create_experiment(client, "w2v")
    return client, client.create_run(experiment_id).info.run_id


def values_at(step: int) -> dict[str, float]:
    return {"loss": 1.0 / step, "loss_smoothed": 2.0 / step, "lr": 0.3, "windows_per_second": float(step)}


def test_close_returns_with_every_value_in_the_store_once(store_run):
    client, run_id = store_run
    sink = tracking.MetricSink(run_id)
    steps = range(1, 2 * sink.SEND_EVERY + 38)  # two full batches and a partial one
    for step in steps:
        sink.add(step, values_at(step))
    sink.close()
    for key in STEP_METRICS:
        history = client.get_metric_history(run_id, key)
        assert sorted(m.step for m in history) == list(steps), key
        assert {m.step: m.value for m in history} == {s: values_at(s)[key] for s in steps}
    assert sink.seconds > 0 and not sink.pending and not sink.in_flight


def test_a_store_that_refuses_the_values_raises_one_line_tracking_error(store_run):
    client, run_id = store_run
    sink = tracking.MetricSink(run_id)
    client.delete_run(run_id)  # MLflow refuses metrics of a deleted run
    for step in range(1, sink.SEND_EVERY + 1):
        sink.add(step, values_at(step))
    with pytest.raises(tracking.TrackingError) as caught:
        sink.close()
    message = str(caught.value)
    assert "\n" not in message and run_id in message and "active" in message, message
    assert client.get_metric_history(run_id, "loss") == []


def test_a_failed_batch_stops_the_next_send(store_run):
    client, run_id = store_run
    sink = tracking.MetricSink(run_id)
    client.delete_run(run_id)
    for step in range(1, sink.SEND_EVERY + 1):
        sink.add(step, values_at(step))
    deadline = time.monotonic() + 60
    while not all(future.done() for futures, _ in sink.in_flight for future in futures):
        assert time.monotonic() < deadline, "the first batch never finished"
        time.sleep(0.05)
    with pytest.raises(tracking.TrackingError):  # the training loop learns of it at its next send
        for step in range(sink.SEND_EVERY + 1, 2 * sink.SEND_EVERY + 1):
            sink.add(step, values_at(step))


@pytest.mark.slow
@pytest.mark.integration
def test_sigkills_while_batches_are_in_flight_then_resume_log_every_step_exactly_once(
        fixture_corpus, empty_store, tmp_path):
    # one log point per iteration: a batch of 250 steps goes to MLflow's queue at 250, 500, ...
    # and the checkpoints at 300, 600, ... so kills land with the store behind the journal (a
    # batch queued but not written) or ahead of the checkpoint; the loop engine on large batches
    # keeps a run slow enough to be killed mid-way
    iterations = 1500
    command = train_command(fixture_corpus, tmp_path, f"train.iterations={iterations}", "train.checkpoint_every=300",
                            "train.log_every=1", "train.engine=loop", "train.batch_size=200")
    env = run_env(empty_store)
    client = MlflowClient(empty_store)
    pace = random.Random(3)
    seen = []  # (checkpoint step, last step in the store) at each kill
    for kill_after in (300, 900):
        process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and process.poll() is None:
            checkpoints = list((tmp_path / "checkpoints").rglob("checkpoint.json"))
            if checkpoints and json.loads(checkpoints[0].read_text())["step"] >= kill_after:
                break
            time.sleep(0.01)
        time.sleep(pace.uniform(0, 0.5))
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL, process.stderr.read()[-2000:]
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        logged = [m.step for m in client.get_metric_history(runs[0].info.run_id, "loss")]
        seen.append((json.loads(checkpoints[0].read_text())["step"], max(logged, default=0)))
        assert len(logged) == len(set(logged)), f"a step logged twice before the kill: {seen}"
    assert seen[-1][1] < iterations, f"the run ended before its last kill: {seen}"

    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming MLflow run" in done.stdout + done.stderr
    client, run = the_only_run(empty_store)
    assert run.info.status == "FINISHED"
    for key in STEP_METRICS:
        counts = Counter(m.step for m in client.get_metric_history(run.info.run_id, key))
        assert sorted(counts) == list(range(1, iterations + 1)), (key, seen)
        assert set(counts.values()) == {1}, (key, [s for s, n in counts.items() if n > 1][:10], seen)
