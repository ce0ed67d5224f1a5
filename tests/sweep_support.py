"""Helpers for the tests that run the real training module against an MLflow store and check,
through the MLflow client, what arrived (test_tracking_server.py, test_launchers.py)."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from mlflow.tracking import MlflowClient

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STEP_METRICS = ("loss", "loss_smoothed", "lr", "windows_per_second")


def write_tiny_corpus(sst_dir: Path, directory: Path, sentences: int = 300) -> Path:
    """The first SST sentences, tokenized as the assignment does, saved as a processed corpus."""
    from w2v.corpus import build_corpus, save_corpus

    lines = (sst_dir / "datasetSentences.txt").read_text(encoding="utf-8").splitlines()[1:sentences + 1]
    save_corpus(build_corpus([line.split("\t", 1)[1].lower().split() for line in lines], train_on="train"), directory)
    return directory


def train_command(*overrides: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.train", *overrides]


def run_training(argv: list[str], tracking_uri: str, timeout: float = 600, **env) -> subprocess.CompletedProcess:
    """Run pipeline.train in the project root with MLFLOW_TRACKING_URI (and `env`) set."""
    return subprocess.run(argv, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout,
                          env=os.environ | {"MLFLOW_TRACKING_URI": tracking_uri} | env)


def sweep_runs(client: MlflowClient, experiment: str):
    """(parent run, child runs) of the one sweep logged to `experiment`."""
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([experiment_id], max_results=1000)
    parents = [run for run in runs if run.data.tags.get("sweep") == "parent"]
    assert len(parents) == 1, f"expected one parent run, found {len(parents)}"
    parent = parents[0]
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) + 1 == len(runs), "runs outside the sweep's parent/child tree"
    return parent, children


def assert_full_history(client: MlflowClient, run_id: str, iterations: int, log_every: int) -> None:
    """Every per-step metric holds each step log_every, 2 log_every, ..., iterations exactly once."""
    expected = list(range(log_every, iterations + 1, log_every))
    for key in STEP_METRICS:
        steps = sorted(m.step for m in client.get_metric_history(run_id, key))
        assert steps == expected, (f"run {run_id} metric {key}: {len(steps)} values for {len(expected)} steps, "
                                   f"duplicated {sorted({s for s in steps if steps.count(s) > 1})[:5]}, "
                                   f"missing {sorted(set(expected) - set(steps))[:5]}")


def assert_vectors_artifact(client: MlflowClient, run_id: str, download_to: Path) -> np.ndarray:
    """The run's vectors.txt artifact downloads, loads in gensim and equals the vectors.npy artifact."""
    from gensim.models import KeyedVectors

    names = {artifact.path for artifact in client.list_artifacts(run_id)}
    assert {"vectors.txt", "vectors.npy", "vocab.txt", "outside_vectors.npy"} <= names, names
    folder = download_to / run_id
    folder.mkdir(parents=True)
    text = client.download_artifacts(run_id, "vectors.txt", str(folder))
    array = np.load(client.download_artifacts(run_id, "vectors.npy", str(folder)))
    vocab = Path(client.download_artifacts(run_id, "vocab.txt", str(folder))).read_text(encoding="utf-8").split("\n")
    vectors = KeyedVectors.load_word2vec_format(text, binary=False)
    assert vectors.index_to_key == vocab[:len(vectors.index_to_key)]
    assert vectors.vectors.shape == array.shape
    np.testing.assert_allclose(vectors.vectors, array, rtol=1e-6, atol=1e-6)  # text rounds to float32
    return array
