"""The download_labels stage (real HTTP on 127.0.0.1, a zip built from the real trees) and the
sentiment part of the evaluate stage (real SST corpus, real labels, a real subprocess)."""
import hashlib
import io
import json
import shutil
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from pipeline.common import StageError
from pipeline.sentiment import sentiment_figures
from w2v.corpus import save_corpus
from w2v.readers import read_sst
from w2v.vectors import save_vectors, write_word2vec_text

from conftest import require_shared_data
from tests.test_download import HYDRA_QUIET, assert_one_error_line, server  # noqa: F401 (a fixture)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LABELS_DIR = PROJECT_ROOT.parent / "shared" / "data" / "trainDevTestTrees_PTB"
NAMES = ("train.txt", "dev.txt", "test.txt")


@pytest.fixture(scope="module")
def labels_dir() -> Path:
    return require_shared_data(LABELS_DIR / "trees" / "train.txt").parent.parent


@pytest.fixture(scope="module")
def labels_zip(labels_dir) -> bytes:
    """A zip in the official archive's layout (trees/train.txt, dev.txt, test.txt)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in NAMES:
            zf.writestr(f"trees/{name}", (labels_dir / "trees" / name).read_bytes())
    return buffer.getvalue()


def run_labels(*overrides: str, tmp_path: Path) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "pipeline.download_labels", *overrides,
            f"paths.download_cache={tmp_path / 'cache'}", *HYDRA_QUIET]
    return subprocess.run(args, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_download_over_http_extracts_the_trees_and_reruns_as_a_no_op(server, labels_zip, labels_dir, tmp_path):
    server.files["/sentiment/trainDevTestTrees_PTB.zip"] = labels_zip
    out = tmp_path / "raw_labels"
    overrides = [f"labels.url={server.url('/sentiment/trainDevTestTrees_PTB.zip')}", f"+labels.size={len(labels_zip)}",
                 f"+labels.sha256={hashlib.sha256(labels_zip).hexdigest()}", f"paths.labels={out}"]
    done = run_labels(*overrides, tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["dev.txt", "source.json", "test.txt", "train.txt"]
    for name in NAMES:
        assert (out / name).read_bytes() == (labels_dir / "trees" / name).read_bytes()
    recorded = json.loads((out / "source.json").read_text())
    assert recorded["files"]["dev.txt"] == "0e9336aed6e4730e19f58d00a77b3f0297efdb755f7b5e598c98a05e3f97ea40"
    requests = len(server.requests)
    again = run_labels(*overrides, tmp_path=tmp_path)
    assert again.returncode == 0 and "nothing to do" in again.stdout
    assert len(server.requests) == requests


@pytest.mark.slow
def test_archive_checksum_mismatch_is_one_error_naming_the_override(server, labels_zip, tmp_path):
    server.files["/t.zip"] = labels_zip
    out = tmp_path / "raw_labels"
    done = run_labels(f"labels.url={server.url('/t.zip')}", f"+labels.sha256={'0' * 64}", f"paths.labels={out}",
                      tmp_path=tmp_path)
    line = assert_one_error_line(done, "has sha256", "+labels.size=<bytes> +labels.sha256=<hex>", "null skips the check")
    assert "corpus." not in line
    assert not out.exists()


@pytest.mark.slow
def test_a_changed_pinned_file_is_one_error_naming_its_key(labels_dir, tmp_path):
    folder = tmp_path / "copy" / "trees"
    shutil.copytree(labels_dir / "trees", folder)
    (folder / "test.txt").write_bytes((folder / "test.txt").read_bytes() + b"(2 (2 extra))\n")
    out = tmp_path / "raw_labels"
    done = run_labels(f"labels.url={folder.parent}", f"paths.labels={out}", tmp_path=tmp_path)
    line = assert_one_error_line(done, "test.txt has sha256", "expected labels.files.test.txt=6e54806d")
    changed = hashlib.sha256((folder / "test.txt").read_bytes()).hexdigest()
    assert f"'+labels.files={{test.txt:{changed}}}'" in line
    assert not out.exists()
    accepted = run_labels(f"labels.url={folder.parent}", f"+labels.files={{test.txt:{changed}}}", f"paths.labels={out}",
                          tmp_path=tmp_path)  # the override the message names
    assert accepted.returncode == 0, accepted.stderr
    assert (out / "test.txt").read_bytes() == (folder / "test.txt").read_bytes()


@pytest.mark.slow
def test_a_train_file_of_another_length_is_one_error_naming_train_lines(labels_dir, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(labels_dir / "trees", folder)  # the three files directly, without trees/
    with open(folder / "train.txt", "ab") as file:
        file.write((labels_dir / "trees" / "dev.txt").read_bytes())
    done = run_labels(f"labels.url={folder}", f"paths.labels={tmp_path / 'raw_labels'}", tmp_path=tmp_path)
    assert_one_error_line(done, "train.txt has 9645 lines", "expected labels.train_lines=8544",
                          "+labels.train_lines=9645", "null skips the check")
    for override in ("+labels.train_lines=9645", "+labels.train_lines=null"):  # what the message offers
        done = run_labels(f"labels.url={folder}", override, f"paths.labels={tmp_path / override[-4:]}",
                          tmp_path=tmp_path)
        assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_a_folder_without_the_trees_and_a_missing_path_are_one_error(tmp_path):
    (tmp_path / "empty").mkdir()
    done = run_labels(f"labels.url={tmp_path / 'empty'}", f"paths.labels={tmp_path / 'out'}", tmp_path=tmp_path)
    assert_one_error_line(done, "the folder has no trees/train.txt")
    done = run_labels(f"labels.url={tmp_path / 'nowhere'}", f"paths.labels={tmp_path / 'out'}", tmp_path=tmp_path)
    assert_one_error_line(done, "does not exist", "labels.url")


# --- the evaluation -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def workspace(tmp_path_factory, sst_dir, labels_dir):
    """A processed SST corpus (train_on=train), its labels and a model folder of random vectors."""
    root = tmp_path_factory.mktemp("sentiment")
    corpus = read_sst(sst_dir, train_on="train")
    save_corpus(corpus, root / "processed")
    shutil.copytree(labels_dir / "trees", root / "labels")
    vectors = np.random.default_rng(7).standard_normal((corpus.vocab_size, 10))
    (root / "model").mkdir()
    save_vectors(root / "model", corpus.words, vectors)
    write_word2vec_text(root / "model" / "vectors.txt", corpus.words, vectors)
    return root


def cfg_for(root: Path, **paths):
    return OmegaConf.create({"paths": {"processed": str(root / "processed"), "labels": str(root / "labels"), **paths},
                             "evaluate": {"sentiment": {"C": [0.1, 1.0], "resamples": 200, "seed": 0}}})


@pytest.mark.slow
def test_the_evaluate_stage_reports_the_sentiment_figures_with_intervals(workspace):
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.evaluate", f"evaluate.vectors={workspace / 'model' / 'vectors.txt'}",
         f"paths.processed={workspace / 'processed'}", f"paths.labels={workspace / 'labels'}",
         "evaluate.sentiment.resamples=200", "evaluate.sentiment.C=[0.1,1]", *HYDRA_QUIET],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((workspace / "model" / "evaluation.json").read_text())
    for name in ("eval_sst5_acc", "eval_sst2_acc", "eval_sst5_acc_random", "eval_sst2_acc_random"):
        interval = metrics["intervals"][name]
        assert interval["low"] <= metrics[name] <= interval["high"]
        assert metrics[f"{name}_ci95"] == pytest.approx((interval["high"] - interval["low"]) / 2)
    assert 0.15 < metrics["eval_sst5_acc"] < 0.35 and 0.4 < metrics["eval_sst2_acc"] < 0.6  # random vectors
    report = (workspace / "model" / "evaluation.md").read_text()
    assert "## SST sentiment (test sentences)" in report and "random normal (reference)" in report
    assert "the signal is weak" in report and "train 3, dev 1, test 0" in report  # fix_encoding=false: Mollà


def test_without_labels_the_figures_are_absent_with_one_note(workspace, capsys):
    figures = sentiment_figures(cfg_for(workspace, labels=str(workspace / "nolabels")), workspace / "model")
    assert figures.metrics == {} and figures.intervals == {}
    assert "No SST sentiment figures: no sentence labels in" in figures.report
    assert capsys.readouterr().err.count("note: no SST sentiment figures") == 1


def test_switched_off_the_figures_are_absent_with_the_note(workspace, capsys):
    cfg = cfg_for(workspace)
    cfg.evaluate.sentiment.enabled = False
    figures = sentiment_figures(cfg, workspace / "model")
    assert figures.metrics == {} and figures.note == "evaluate.sentiment.enabled=false"
    assert "note: no SST sentiment figures: evaluate.sentiment.enabled=false" in capsys.readouterr().err


def test_a_text_corpus_gets_a_note_not_figures(workspace, tmp_path, capsys):
    from w2v.corpus import build_corpus

    corpus = build_corpus([["a", "good", "film"], ["a", "bad", "one"]])
    save_corpus(corpus, tmp_path / "processed")
    model = tmp_path / "model"
    model.mkdir()
    save_vectors(model, corpus.words, np.ones((corpus.vocab_size, 3)))
    figures = sentiment_figures(cfg_for(workspace, processed=str(tmp_path / "processed")), model)
    assert figures.metrics == {} and "has no dev and test sentences (not SST)" in figures.note


def test_misaligned_labels_stop_the_evaluation_with_a_clear_error(workspace, tmp_path):
    labels = tmp_path / "labels"
    shutil.copytree(workspace / "labels", labels)
    lines = (labels / "dev.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    (labels / "dev.txt").write_text("".join(reversed(lines)), encoding="utf-8")
    with pytest.raises(StageError, match=r"dev\.txt: \d+ of 1101 trees .* not aligned .*download_labels"):
        sentiment_figures(cfg_for(workspace, labels=str(labels)), workspace / "model")


@pytest.mark.slow
def test_an_unreachable_host_names_labels_url_and_the_local_copy(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on: the connection is refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = run_labels(f"labels.url=http://127.0.0.1:{port}/trainDevTestTrees_PTB.zip",
                      f"paths.labels={tmp_path / 'out'}", tmp_path=tmp_path)
    assert_one_error_line(done, "labels.url", "labels.url=../shared/data/trainDevTestTrees_PTB")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_text_corpus_needs_no_labels_not_even_a_network(tmp_path):
    """With corpus=text the stage fetches nothing (the default labels.url is unreachable here) and
    leaves a note in place of the trees, so an offline `dvc repro` of a text corpus does not stop."""
    target = tmp_path / "labels"
    done = run_labels("corpus=text", f"corpus.url={tmp_path / 'corpus.txt'}", f"paths.labels={target}",
                      tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "no labels fetched (corpus.kind=text" in done.stdout
    assert sorted(p.name for p in target.iterdir()) == ["NONE.txt"]
    assert not (tmp_path / "cache").exists()  # no download was started
