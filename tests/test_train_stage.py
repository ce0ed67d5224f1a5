"""The training stage end to end: `python -m pipeline.train` in a subprocess on a small corpus,
logging into a real SQLite MLflow store in tmp_path, queried with MlflowClient.

Also the helpers its outputs rest on (w2v.vectors, w2v.plots, pipeline.tracking.tracking_uri).
`fixture_corpus` and `empty_store` are fixtures of conftest.py.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors
from mlflow.tracking import MlflowClient

from pipeline import tracking
from pipeline.train import MODEL_FILES
from w2v.plots import VISUALIZE_WORDS, plot_loss, plot_word_vectors, svd_projection
from w2v.vectors import load_vectors, read_word2vec_text, save_vectors, write_word2vec_text

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STEP_METRICS = ("loss", "loss_smoothed", "lr", "windows_per_second")


def train_command(corpus: Path, tmp_path: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.train", f"paths.processed={corpus}",
            f"paths.checkpoints={tmp_path / 'checkpoints'}", f"hydra.run.dir={tmp_path / 'run'}", *overrides]


def run_env(store: str) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DVC_", "W2V_"))}
    env["MLFLOW_TRACKING_URI"] = store
    return env


def the_only_run(store: str):
    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("w2v").experiment_id])
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return client, runs[0]


def steps_of(client, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


@pytest.mark.slow
def test_single_run_records_params_tags_metrics_and_artifacts(fixture_corpus, empty_store, tmp_path):
    command = train_command(fixture_corpus, tmp_path, "train.iterations=120", "train.checkpoint_every=50",
                            "train.window=3")
    done = subprocess.run(command, cwd=tmp_path, env=run_env(empty_store), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]

    client, run = the_only_run(empty_store)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert params["train.iterations"] == "120" and params["train.window"] == "3" and params["train.lr"] == "0.3"
    assert params["loss.name"] == "neg_sampling" and params["paths.processed"] == str(fixture_corpus)
    tags = run.data.tags
    # the commit checked out when the run started: HEAD or, if a commit landed since, an ancestor
    is_ancestor = subprocess.run(["git", "merge-base", "--is-ancestor", tags["git_commit"], "HEAD"], cwd=PROJECT_ROOT)
    assert len(tags["git_commit"]) == 40 and is_ancestor.returncode == 0
    assert tags["mlflow.source.git.commit"] == tags["git_commit"] and tags["git_dirty"] in ("true", "false")
    assert tags["numpy_version"] == np.__version__ and tags["hydra_version"] == "1.3.8"
    assert tags["mlflow_version"] and tags["dvc_version"]
    assert "train.window=3" in tags["hydra_overrides"]
    for key in STEP_METRICS:  # every log_every = 10 iterations, each step once
        assert steps_of(client, run.info.run_id, key) == list(range(10, 121, 10)), key
    metrics = run.data.metrics
    assert metrics["final_loss_smoothed"] == pytest.approx(metrics["loss_smoothed"])
    assert metrics["train_seconds"] > 0 and metrics["compile_seconds"] >= 0
    assert "eval_ws353_spearman" in metrics  # the evaluation followed, into the same run

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert set(MODEL_FILES) <= artifacts
    local = Path(client.download_artifacts(run.info.run_id, "vectors.txt", str(tmp_path / "download")))
    vectors = KeyedVectors.load_word2vec_format(str(local))
    center = np.load(tmp_path / "run" / "vectors.npy")
    vocab = (tmp_path / "run" / "vocab.txt").read_text().splitlines()
    assert vectors.vectors.shape == center.shape == (len(vocab), 10)
    assert vectors.index_to_key == vocab
    np.testing.assert_allclose(vectors.vectors, center, rtol=1e-6, atol=1e-9)

    run_record = json.loads((tmp_path / "run" / "mlflow_run.json").read_text())
    assert run_record == {"run_id": run.info.run_id, "tracking_uri": empty_store,
                          "experiment_id": run.info.experiment_id}
    rows = (tmp_path / "run" / "loss.csv").read_text().splitlines()
    assert rows[0] == "step,loss,loss_smoothed,lr" and len(rows) == 13
    assert json.loads((tmp_path / "run" / "train.json").read_text())["final_loss_smoothed"] == pytest.approx(
        metrics["final_loss_smoothed"])
    # a finished run leaves no checkpoint behind to resume
    assert not list((tmp_path / "checkpoints").rglob("checkpoint.json"))


@pytest.mark.slow
@pytest.mark.integration
def test_killed_run_resumes_into_the_same_run_with_every_step_once(fixture_corpus, empty_store, tmp_path):
    # log every iteration: 1000 buffered values are flushed at step 250 and 550, between the
    # checkpoints at 300 and 600, so the kill happens with steps logged past the last checkpoint;
    # large batches keep those stretches long enough for the poll below to see them
    command = train_command(fixture_corpus, tmp_path, "train.iterations=800", "train.checkpoint_every=300",
                            "train.log_every=1", "train.engine=loop", "train.batch_size=200")
    env = run_env(empty_store)
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    client = MlflowClient(empty_store)
    deadline = time.monotonic() + 120
    killed_at = None
    while time.monotonic() < deadline and process.poll() is None:
        checkpoints = list((tmp_path / "checkpoints").rglob("checkpoint.json"))
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        if checkpoints and runs:
            checkpoint_step = json.loads(checkpoints[0].read_text())["step"]
            logged = steps_of(client, runs[0].info.run_id, "loss")
            if logged and logged[-1] > checkpoint_step:
                process.send_signal(signal.SIGKILL)
                killed_at = (checkpoint_step, logged[-1])
                break
        time.sleep(0.05)
    process.wait()
    assert killed_at is not None, f"the run ended before it could be killed: {process.stderr.read()[-2000:]}"
    assert killed_at[1] < 800

    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming MLflow run" in done.stdout + done.stderr
    client, run = the_only_run(empty_store)
    assert run.info.status == "FINISHED"
    for key in STEP_METRICS:
        history = client.get_metric_history(run.info.run_id, key)
        assert sorted(m.step for m in history) == list(range(1, 801)), key
    rows = (tmp_path / "run" / "loss.csv").read_text().splitlines()
    assert [int(row.split(",")[0]) for row in rows[1:]] == list(range(1, 801))


@pytest.mark.slow
def test_diverging_run_is_marked_failed_and_keeps_its_last_good_checkpoint(fixture_corpus, empty_store, tmp_path):
    # float64: its vectors overflow later (iteration 80) than float32's (13), after a checkpoint
    command = train_command(fixture_corpus, tmp_path, "train.iterations=300", "train.checkpoint_every=20",
                            "train.lr=1000", "train.dtype=float64")
    done = subprocess.run(command, cwd=tmp_path, env=run_env(empty_store), capture_output=True, text=True)
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "diverged at iteration" in errors[0] and "train.lr" in errors[0], done.stderr

    client, run = the_only_run(empty_store)
    assert run.info.status == "FAILED"
    failed_at = int(run.data.tags["failed_at_iteration"])
    assert "diverged" in run.data.tags["failure_reason"]
    assert f"iteration {failed_at}" in errors[0]
    checkpoint = json.loads(next((tmp_path / "checkpoints").rglob("checkpoint.json")).read_text())
    assert 0 < checkpoint["step"] < failed_at and checkpoint["step"] % 20 == 0
    assert checkpoint["metadata"]["mlflow_run_id"] == run.info.run_id
    assert steps_of(client, run.info.run_id, "loss")[-1] < failed_at


def test_tracking_uri_is_the_workspace_store_unless_the_environment_says_otherwise(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    assert tracking.tracking_uri() == f"sqlite:///{PROJECT_ROOT / 'mlflow.db'}"
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))  # DVC's parent repository, also for queued copies
    assert tracking.tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking.tracking_uri() == "http://127.0.0.1:5000"


def test_word2vec_text_round_trip_and_gensim(tmp_path):
    rng = np.random.default_rng(1)
    words = ["the", "café", "UNK"]
    vectors = rng.normal(size=(3, 4)) * 1e3
    write_word2vec_text(tmp_path / "v.txt", words, vectors)
    read_words, read_vectors = read_word2vec_text(tmp_path / "v.txt")
    assert read_words == words
    np.testing.assert_allclose(read_vectors, vectors, rtol=1e-8)
    loaded = KeyedVectors.load_word2vec_format(str(tmp_path / "v.txt"))
    assert loaded.index_to_key == words
    np.testing.assert_allclose(loaded["café"], vectors[1].astype(np.float32))

    save_vectors(tmp_path / "m", words, vectors, -vectors)
    again_words, center, outside = load_vectors(tmp_path / "m")
    assert again_words == words and np.array_equal(center, vectors) and np.array_equal(outside, -vectors)


@pytest.mark.parametrize("words, message", [(["a b", "c"], "whitespace"), (["a"], "rows")])
def test_word2vec_writer_refuses_what_the_format_cannot_hold(tmp_path, words, message):
    with pytest.raises(ValueError, match=message):
        write_word2vec_text(tmp_path / "v.txt", words, np.zeros((2, 3)))
    assert not (tmp_path / "v.txt").exists()


def test_word2vec_reader_names_a_truncated_file(tmp_path):
    (tmp_path / "v.txt").write_text("3 2\na 1 2\nb 3 4\n")
    with pytest.raises(ValueError, match="announces 3 words"):
        read_word2vec_text(tmp_path / "v.txt")
    (tmp_path / "w.txt").write_text("2 2\na 1 2\nb 3\n")
    with pytest.raises(ValueError, match="line 3"):
        read_word2vec_text(tmp_path / "w.txt")


def test_svd_projection_is_the_assignments_and_plots_are_pngs(tmp_path):
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(24, 10)) @ np.diag(np.arange(10, 0, -1.0))
    coords = svd_projection(vectors)
    # the top-2 principal components: centred, uncorrelated, variance = top eigenvalues of the covariance
    centred = vectors - vectors.mean(axis=0)
    eigenvalues = np.sort(np.linalg.eigvalsh(centred.T @ centred / 24))[::-1]
    np.testing.assert_allclose(coords.mean(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(np.cov(coords.T, bias=True), np.diag(eigenvalues[:2]), atol=1e-8)

    words = VISUALIZE_WORDS[:-2] + ["other"]
    plot = plot_word_vectors(tmp_path / "word_vectors.png", words, rng.normal(size=(23, 10)))
    assert plot.missing == ["coffee", "tea"]
    plot_loss(tmp_path / "loss.png", [10, 20, 30], [3.0, 2.0, 2.5], [3.0, 2.95, 2.93])
    for name in ("word_vectors.png", "loss.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_corpus_settings_that_contradict_the_processed_corpus_are_refused(empty_store, tmp_path):
    """Train logs the corpus settings its vectors came from: an override that the processed corpus
    was not built with, and cannot be derived from it, is one line saying to tokenize again, and
    opens no run. A larger corpus.min_count is applied on load (next test)."""
    rng = np.random.default_rng(0)
    words = VISUALIZE_WORDS + [f"w{i}" for i in range(40)]
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "corpus.txt").write_text(
        "\n".join(" ".join(rng.choice(words, size=8)) for _ in range(300)) + "\nrare once\n", encoding="utf-8")
    processed = tmp_path / "processed"
    corpus_args = ["corpus=text", "corpus.min_count=2"]
    tokenize = subprocess.run([sys.executable, "-m", "pipeline.tokenize", *corpus_args, f"paths.raw={tmp_path / 'raw'}",
                               f"paths.processed={processed}", f"paths.metrics={tmp_path / 'metrics'}",
                               f"hydra.run.dir={tmp_path / 'tok'}"],
                              cwd=tmp_path, env=run_env(empty_store), capture_output=True, text=True)
    assert tokenize.returncode == 0, tokenize.stderr[-3000:]

    refused = subprocess.run(train_command(processed, tmp_path, "corpus=text", "corpus.min_count=1",
                                           "train.iterations=40"),
                             cwd=tmp_path, env=run_env(empty_store), capture_output=True, text=True)
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        f"error: corpus.min_count=1, but the processed corpus in {processed} was built with corpus.min_count=2: "
        f"rerun tokenize with it first (python -m pipeline.tokenize corpus.min_count=1, or dvc exp run -S "
        f"corpus.min_count=...), or drop the override"]
    assert MlflowClient(empty_store).get_experiment_by_name("w2v") is None  # no run, not even its experiment
    for override in ("corpus=sst", "corpus.train_on=train"):
        other = subprocess.run(train_command(processed, tmp_path, *corpus_args, override, "train.iterations=40"),
                               cwd=tmp_path, env=run_env(empty_store), capture_output=True, text=True)
        assert other.returncode == 1 and "rerun tokenize" in other.stderr, other.stderr[-2000:]

    done = subprocess.run(train_command(processed, tmp_path, *corpus_args, "train.iterations=40"),
                          cwd=tmp_path, env=run_env(empty_store), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    _, run = the_only_run(empty_store)
    params = run.data.params
    assert (params["corpus.kind"], params["corpus.min_count"], params["corpus.train_on"]) == ("text", "2", "all")
    # threads and dtype "auto" are logged as what this run used
    assert params["train.dtype"] == "float32" and int(params["train.threads"]) >= 1


@pytest.mark.slow
def test_a_larger_min_count_is_applied_on_load_for_training_and_evaluation(fixture_corpus, empty_store, tmp_path):
    """corpus.min_count above the processed corpus's: the run trains, writes and evaluates the
    vocabulary tokenizing with it would give, without tokenizing again."""
    from w2v.corpus import load_corpus, with_min_count

    done = subprocess.run(train_command(fixture_corpus, tmp_path, "corpus.min_count=50", "train.iterations=40",
                                        "corpus.train_on=train"),
                          cwd=tmp_path, env=run_env(empty_store), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    expected = with_min_count(load_corpus(fixture_corpus), 50)
    assert 10 < len(expected.words) < load_corpus(fixture_corpus).vocab_size  # some words became UNK
    vocab = (tmp_path / "run" / "vocab.txt").read_text().splitlines()
    assert vocab == expected.words and np.load(tmp_path / "run" / "vectors.npy").shape == (len(vocab), 10)
    assert read_word2vec_text(tmp_path / "run" / "vectors.txt")[0] == expected.words
    _, run = the_only_run(empty_store)
    assert run.info.status == "FINISHED" and run.data.params["corpus.min_count"] == "50"
    evaluation = json.loads((tmp_path / "run" / "evaluation.json").read_text())
    assert evaluation["eval_heldout_nll"] is not None  # the dev pairs on the same 50-count vocabulary
    assert evaluation["eval_heldout_nll_unigram"] < np.log(len(vocab))
