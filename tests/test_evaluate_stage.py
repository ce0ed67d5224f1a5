"""pipeline.evaluate: the stage on a model folder (files, held-out figures, intervals, MLflow run),
on any vectors file, and its errors; a real SQLite MLflow store in tmp_path, the stage run as a
subprocess."""
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient
from omegaconf import OmegaConf

from pipeline.common import StageError
from pipeline.evaluate import evaluate_model_dir, evaluate_vectors_file
from w2v.corpus import build_corpus, save_corpus

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Vocabulary: WordSim-353 pairs (scores ascending) and SimLex-999 pairs (scores ascending) whose
# words occur in no other pair of either benchmark; see test_evaluation.py for the construction.
WS353_PAIRS = [("chord", "smile"), ("sign", "recess"), ("drug", "abuse"), ("war", "troops"), ("gem", "jewel")]
WS353_COSINES = [0.1, 0.3, 0.5, 0.9, 0.7]    # Spearman 0.9
SIMLEX_PAIRS = [("tax", "income"), ("church", "choir"), ("joy", "pride"), ("mud", "dirt"), ("cop", "sheriff")]
SIMLEX_COSINES = [0.9, 0.7, 0.5, 0.3, 0.1]   # Spearman -1
DIM = 21
TRAIN = [["chord", "smile", "sign"], ["recess", "drug", "abuse", "war"], ["troops", "gem", "jewel", "tax"]]
# dev sentences mix training words with words of count 0 (left out of the held-out pairs)
DEV = [["income", "war", "church", "troops", "choir"], ["joy", "gem", "pride", "jewel", "mud", "dirt", "joy", "war"]]
TEST = [["cop", "sheriff"]]


def known_vectors(words: list[str]) -> np.ndarray:
    """Centre vectors (V, DIM): pair (a, b) number n in plane (2n, 2n+1) with cos(a, b) as listed;
    UNK on the last axis."""
    rows = {}
    for n, ((a, b), cosine) in enumerate(zip(WS353_PAIRS + SIMLEX_PAIRS, WS353_COSINES + SIMLEX_COSINES)):
        rows[a] = np.eye(DIM)[2 * n]
        rows[b] = cosine * np.eye(DIM)[2 * n] + math.sqrt(1 - cosine**2) * np.eye(DIM)[2 * n + 1]
    rows["UNK"] = np.eye(DIM)[DIM - 1]
    return np.array([rows[word] for word in words])


def heldout_nll(corpus, center_vectors, outside_vectors, window=5) -> tuple[float, float]:
    """(mean -log softmax(U v_c)_o over the training words, share of pairs left out) on the dev
    sentences, written out directly: full window, centre occurrences and count-0 words left out."""
    vocabulary = np.flatnonzero(corpus.counts > 0)
    total, used, pairs = 0.0, 0, 0
    for s in np.flatnonzero(corpus.split == 3):
        sentence = corpus.tokens[corpus.offsets[s]:corpus.offsets[s + 1]]
        for i, c in enumerate(sentence):
            for j, o in enumerate(sentence):
                if j == i or abs(j - i) > window or o == c:
                    continue
                pairs += 1
                if corpus.counts[c] and corpus.counts[o]:
                    scores = outside_vectors[vocabulary] @ center_vectors[c]
                    total += math.log(np.exp(scores).sum()) - outside_vectors[o] @ center_vectors[c]
                    used += 1
    return total / used, (pairs - used) / pairs


HELDOUT = ("eval_heldout_nll", "eval_heldout_ns_loss", "eval_heldout_recall10")


@pytest.fixture
def project(tmp_path, empty_store_template, monkeypatch):
    """A processed corpus (train_on=train), a model folder trained on it, and an MLflow run."""
    shutil.copy(empty_store_template, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    corpus = build_corpus(TRAIN + DEV + TEST, split=[1] * len(TRAIN) + [3] * len(DEV) + [2] * len(TEST), train_on="train")
    save_corpus(corpus, tmp_path / "processed")

    cfg = OmegaConf.load(PROJECT_ROOT / "params.yaml")
    cfg.paths = {"raw": str(tmp_path / "raw"), "processed": str(tmp_path / "processed"), "models": str(tmp_path / "models"),
                 "metrics": str(tmp_path / "metrics"), "reports": str(tmp_path / "reports"), "plots": str(tmp_path / "plots")}
    cfg.corpus.train_on = "train"
    cfg.loss.name = "naive_softmax"
    cfg.train.window = 1

    models = tmp_path / "models"
    models.mkdir()
    center = known_vectors(corpus.words)
    outside = np.random.default_rng(7).normal(scale=0.5, size=center.shape)
    lines = [f"{len(corpus.words)} {DIM}"] + [w + " " + " ".join(f"{x:.9g}" for x in row) for w, row in zip(corpus.words, center)]
    (models / "vectors.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    np.save(models / "vectors.npy", center)
    np.save(models / "outside_vectors.npy", outside)
    (models / "config.yaml").write_text(OmegaConf.to_yaml(cfg), encoding="utf-8")

    client = MlflowClient(uri)
    experiment_id = client.create_experiment("w2v", artifact_location=(tmp_path / "artifacts").as_uri())
    run_id = client.create_run(experiment_id).info.run_id
    client.set_terminated(run_id)  # the DVC train stage has finished its run before evaluate starts
    (models / "mlflow_run.json").write_text(json.dumps({"run_id": run_id, "tracking_uri": uri, "experiment_id": experiment_id}))
    nll, oov = heldout_nll(corpus, center, outside)
    return {"tmp": tmp_path, "uri": uri, "cfg": cfg, "models": models, "run_id": run_id, "client": client,
            "nll": nll, "oov": oov}


def run_stage(project, *overrides):
    paths = [f"paths.{key}={value}" for key, value in project["cfg"].paths.items()]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "W2V_"))} | {"MLFLOW_TRACKING_URI": project["uri"]}
    return subprocess.run(
        [sys.executable, "-m", "pipeline.evaluate", *paths, "corpus.train_on=train", "loss=naive_softmax",
         "train.window=1", *overrides, "hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=none",
         "hydra/hydra_logging=none"],
        cwd=project["tmp"], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_stage_writes_dvc_metrics_report_and_logs_into_the_training_run(project):
    done = run_stage(project)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((project["tmp"] / "reports" / "evaluation.json").read_text())
    headline = json.loads((project["tmp"] / "metrics" / "evaluation.json").read_text())  # what DVC shows
    assert headline == {name: metrics[name] for name in ("eval_ws353_spearman", "eval_simlex_spearman", "eval_analogy_acc",
                                                         *HELDOUT)}
    assert metrics["eval_ws353_spearman"] == pytest.approx(0.9)
    assert metrics["eval_ws353_oov"] == pytest.approx(348 / 353)
    assert metrics["eval_simlex_spearman"] == pytest.approx(-1.0)
    assert metrics["eval_simlex_oov"] == pytest.approx(994 / 999)
    assert metrics["eval_analogy_acc"] is None  # no analogy question is covered: null, not a crash
    assert metrics["eval_absent_words"] == 24
    assert metrics["eval_heldout_nll"] == pytest.approx(project["nll"], rel=1e-9)
    assert metrics["eval_heldout_oov"] == pytest.approx(project["oov"], rel=1e-12) and 0 < project["oov"] < 1
    assert metrics["eval_heldout_ns_loss_zero"] == pytest.approx(11 * math.log(2))
    assert "eval_dev_loss" not in metrics
    for name in HELDOUT:
        interval = metrics["intervals"][name]
        assert interval["low"] <= metrics[name] <= interval["high"]
        assert metrics[f"{name}_ci95"] == pytest.approx((interval["high"] - interval["low"]) / 2)
    # figure - reference, with the interval of the same resamples scored both ways
    vs_unigram = metrics["eval_heldout_nll_vs_unigram"]
    assert vs_unigram == pytest.approx(metrics["eval_heldout_nll"] - metrics["eval_heldout_nll_unigram"], abs=1e-12)
    interval = metrics["intervals"]["eval_heldout_nll_vs_unigram"]
    assert interval["low"] <= vs_unigram <= interval["high"]
    assert metrics["eval_heldout_nll_vs_unigram_ci95"] == pytest.approx((interval["high"] - interval["low"]) / 2)
    assert {"eval_heldout_ns_loss_vs_zero", "eval_heldout_recall10_vs_frequent"} <= set(metrics)
    assert metrics["intervals"]["eval_ws353_spearman"] == {"low": None, "high": None}  # 5 pairs: no interval
    report = (project["tmp"] / "reports" / "evaluation.md").read_text()
    assert "| WordSim-353 | Spearman | 0.9000 | n/a | 5/353 pairs | 98.6% |" in report
    assert "Not in the vocabulary (24 of 24)" in report
    assert f"| NLL, -log softmax(U v_c)_o (nats) | {project['nll']:.4f} |" in report

    run = project["client"].get_run(project["run_id"])
    assert run.data.metrics["eval_ws353_spearman"] == pytest.approx(0.9)
    assert run.data.metrics["eval_simlex_oov"] == pytest.approx(994 / 999)
    for name in HELDOUT:
        assert run.data.metrics[name] == pytest.approx(metrics[name], rel=1e-12)
        assert run.data.metrics[f"{name}_ci95"] == pytest.approx(metrics[f"{name}_ci95"], rel=1e-12)
    assert run.data.metrics["eval_heldout_nll_vs_unigram"] == pytest.approx(vs_unigram, rel=1e-12)
    assert "eval_analogy_acc" not in run.data.metrics  # NaN figures stay out of MLflow
    assert "eval_ws353_spearman_ci95" not in run.data.metrics
    artifacts = {a.path for a in project["client"].list_artifacts(project["run_id"], "evaluation")}
    assert artifacts == {"evaluation/evaluation.md", "evaluation/neighbours.json"}


def held_out_keys(metrics) -> set[str]:
    return {name for name in metrics if name.startswith("eval_heldout")}


@pytest.mark.slow
def test_same_vectors_give_the_same_held_out_figures_whatever_config_they_were_trained_with(project):
    assert run_stage(project).returncode == 0
    first = json.loads((project["tmp"] / "reports" / "evaluation.json").read_text())
    saved = OmegaConf.load(project["models"] / "config.yaml")
    saved.train.window, saved.train.K, saved.loss.name = 2, 3, "neg_sampling"
    (project["models"] / "config.yaml").write_text(OmegaConf.to_yaml(saved), encoding="utf-8")
    done = run_stage(project, "train.window=4", "train.K=7", "loss=neg_sampling")
    assert done.returncode == 0, done.stderr
    second = json.loads((project["tmp"] / "reports" / "evaluation.json").read_text())
    assert len(held_out_keys(first)) == 16  # 3 figures, 3 references, 3 differences, 6 half-widths, the OOV share
    assert {k: first[k] for k in held_out_keys(first)} == {k: second[k] for k in held_out_keys(second)}
    assert {k: first["intervals"][k] for k in HELDOUT} == {k: second["intervals"][k] for k in HELDOUT}
    other_protocol = run_stage(project, "evaluate.heldout.window=2")
    assert other_protocol.returncode == 0, other_protocol.stderr
    third = json.loads((project["tmp"] / "reports" / "evaluation.json").read_text())
    assert third["eval_heldout_nll"] != pytest.approx(first["eval_heldout_nll"])  # the protocol does count


def test_no_held_out_figures_when_the_dev_sentences_were_trained_on(project, capsys):
    cfg = project["cfg"].copy()
    cfg.corpus.train_on = "all"
    metrics = evaluate_model_dir(cfg, project["models"], None)
    assert not held_out_keys(metrics)
    note = "No held-out figures: the model was trained on all sentences (corpus.train_on=all), dev included"
    assert note in (project["tmp"] / "reports" / "evaluation.md").read_text()
    assert "note: no held-out figures: the model was trained on all sentences" in capsys.readouterr().err


def test_no_held_out_figures_without_outside_vectors_or_without_a_dev_split(project, tmp_path):
    (project["models"] / "outside_vectors.npy").unlink()
    metrics = evaluate_model_dir(project["cfg"], project["models"], None)
    assert not held_out_keys(metrics) and metrics["eval_simlex_spearman"] == pytest.approx(-1.0)
    report = (project["tmp"] / "reports" / "evaluation.md").read_text()
    assert "No held-out figures: no vectors.npy and outside_vectors.npy beside the vectors" in report
    assert "intervals" in json.loads((project["tmp"] / "reports" / "evaluation.json").read_text())

    np.save(project["models"] / "outside_vectors.npy", np.zeros((21, DIM)))
    text = build_corpus(TRAIN + DEV + TEST, train_on="train")  # a plain-text corpus: every sentence is training
    save_corpus(text, tmp_path / "processed_text")
    cfg = project["cfg"].copy()
    cfg.paths.processed = str(tmp_path / "processed_text")
    assert not held_out_keys(evaluate_model_dir(cfg, project["models"], None))
    assert "has no dev sentences" in (project["tmp"] / "reports" / "evaluation.md").read_text()


@pytest.mark.slow
def test_bad_held_out_protocol_is_one_stage_error(project):
    done = run_stage(project, "evaluate.heldout.K=0")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("error: evaluate.heldout.K must be an integer >= 1, got 0")
    assert not (project["tmp"] / "metrics").exists()


def test_sweep_job_folder_gets_its_own_files(project, tmp_path):
    job = tmp_path / "multirun" / "0"
    shutil.copytree(project["models"], job)
    metrics = evaluate_model_dir(project["cfg"], job, project["run_id"])
    assert json.loads((job / "evaluation.json").read_text())["eval_simlex_spearman"] == pytest.approx(-1.0)
    assert (job / "evaluation.md").is_file()
    assert not (tmp_path / "metrics").exists()  # the DVC stage's outputs are left alone
    assert metrics["eval_heldout_nll"] == pytest.approx(project["nll"], rel=1e-9)


@pytest.mark.slow
def test_any_vectors_file_reports_beside_it(project, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "gensim.txt").write_text("3 2\nwar 1 0\ntroops 0.9 0.435889894\nking 0 1\n", encoding="utf-8")
    done = run_stage(project, f"evaluate.vectors={other / 'gensim.txt'}")
    assert done.returncode == 0, done.stderr
    assert "not logged to MLflow" in done.stderr
    metrics = json.loads((other / "evaluation.json").read_text())
    assert metrics["eval_ws353_oov"] == pytest.approx(352 / 353)
    assert metrics["eval_ws353_spearman"] is None  # one covered pair has no rank correlation
    assert not held_out_keys(metrics)  # no outside vectors beside it: no held-out figures
    assert (other / "evaluation.md").is_file()


@pytest.mark.slow
def test_truncated_file_exits_non_zero_with_one_line_and_writes_nothing(project):
    vectors = project["models"] / "vectors.txt"
    lines = vectors.read_text().splitlines()
    vectors.write_text("\n".join(lines[:-3]) + "\n")
    done = run_stage(project)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: vectors file {vectors} has {len(lines) - 4} vector lines but its header says {len(lines) - 1} words: "
        f"the file is truncated or damaged; write it again"]
    assert not (project["tmp"] / "metrics").exists() and not (project["tmp"] / "reports").exists()
    assert "eval_ws353_spearman" not in project["client"].get_run(project["run_id"]).data.metrics


def test_missing_file_and_dimension_mismatch_are_stage_errors(project, tmp_path):
    cfg = project["cfg"]
    with pytest.raises(StageError, match="vectors.txt does not exist"):
        evaluate_model_dir(cfg, tmp_path / "empty", None)
    bad = tmp_path / "bad.txt"
    bad.write_text("2 3\nwar 1 0 0\ntroops 1 0\n", encoding="utf-8")
    with pytest.raises(StageError, match="line 3 has 2 values but the header says dimension 3"):
        evaluate_vectors_file(cfg, None, bad, tmp_path / "m.json", tmp_path / "r.md", None)
    assert not (tmp_path / "m.json").exists()


def test_run_missing_from_the_store_fails_before_writing(project):
    with pytest.raises(StageError, match="MLflow run 0123abcd is not in the store"):
        evaluate_model_dir(project["cfg"], project["models"], "0123abcd")
    assert not (project["tmp"] / "metrics").exists()


def test_corpus_tokenized_with_all_sentences_gives_no_held_out_figures_and_no_error(project, tmp_path, capsys):
    corpus = build_corpus(TRAIN + DEV + TEST, split=[1] * len(TRAIN) + [3] * len(DEV) + [2] * len(TEST), train_on="all")
    save_corpus(corpus, tmp_path / "processed_all")
    cfg = project["cfg"].copy()
    cfg.paths.processed = str(tmp_path / "processed_all")
    metrics = evaluate_model_dir(cfg, project["models"], None)
    assert not held_out_keys(metrics) and metrics["eval_simlex_spearman"] == pytest.approx(-1.0)
    assert "training saw the dev sentences" in capsys.readouterr().err


def test_model_of_another_corpus_is_a_stage_error(project, tmp_path):
    corpus = build_corpus([["war", "troops"], ["gem", "jewel"]], split=[1, 3], train_on="train")
    save_corpus(corpus, tmp_path / "processed_small")
    cfg = project["cfg"].copy()
    cfg.paths.processed = str(tmp_path / "processed_small")
    with pytest.raises(StageError, match="has 5 words but the model in .* has 21: it was trained on another corpus"):
        evaluate_model_dir(cfg, project["models"], None)
