"""The gradcheck stage as a real process: reports, exit status, and failures that stop the pipeline."""
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest

from pipeline.common import StageError
from pipeline.gradcheck import check_inputs, run_gradcheck, vocabulary_slice
from w2v import derivations, losses
from w2v.corpus import build_corpus, save_corpus

DVC_FLAGS = ["--config-dir", ".", "--config-name", "params", "hydra.searchpath=[file://conf]", "+paths=default",
             "hydra.run.dir=.", "hydra.output_subdir=null",
             "hydra/job_logging=stdout", "hydra/hydra_logging=none"]  # as dvc.yaml runs the stage


@pytest.fixture(scope="module")
def processed_dir(sst_dir, tmp_path_factory):
    """A processed corpus of the first 200 SST sentences (a real vocabulary of several hundred words)."""
    lines = (sst_dir / "datasetSentences.txt").read_text(encoding="utf-8").splitlines()[1:201]
    corpus = build_corpus([line.split("\t", 1)[1].split() for line in lines])
    directory = tmp_path_factory.mktemp("processed")
    save_corpus(corpus, directory)
    return directory, corpus.words


def run_stage(project_root, tmp_path, *overrides, dvc_form=False):
    flags = DVC_FLAGS if dvc_form else [f"hydra.run.dir={tmp_path / 'hydra'}"]
    metrics = f"paths.metrics={tmp_path / 'metrics'}"  # the headline, kept out of the project's metrics/
    return subprocess.run([sys.executable, "-m", "pipeline.gradcheck", *flags, metrics, *overrides],
                          cwd=project_root, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_stage_writes_reports_and_exits_zero(project_root, processed_dir, tmp_path):
    processed, words = processed_dir
    reports = tmp_path / "reports"
    done = run_stage(project_root, tmp_path, f"paths.processed={processed}", f"paths.reports={reports}",
                     dvc_form=True)
    assert done.returncode == 0, done.stderr
    assert "30/30 passed" in done.stdout

    report = json.loads((reports / "gradcheck.json").read_text())
    assert report["passed"] is True and report["failed"] == 0
    assert report["tolerance"] == 1e-5
    assert list(report["checks"]) == derivations.CHECK_NAMES
    assert all(entry["passed"] and entry["max_rel_error"] < 1e-6 for entry in report["checks"].values())
    assert set(report["engines"]) == {"per_pair", "batched", "activations"}
    assert all(entry["passed"] for entry in report["engines"].values())

    table = (reports / "gradcheck.md").read_text()
    assert "**All checks passed.**" in table
    assert f"first 50 words of {processed}, d = 10, K = 10" in table
    cells = [line.strip("| ").split(" | ") for line in table.splitlines() if line.startswith("| `")]
    rows = {(row[0].strip("`"), row[2], row[3], row[5]) for row in cells}  # check, engine, inputs, passed
    assert len(cells) == 30
    expected = {(check, engine, inputs, "yes") for check in derivations.ENGINE_CHECKS
                for engine in ("per_pair", "batched") for inputs in ("random", "vocabulary")}
    expected |= {("e_leaky_relu_derivative", "activations", "random", "yes"),
                 ("f_sigmoid_derivative", "activations", "random", "yes")}
    assert rows == expected
    assert sorted(p.name for p in reports.iterdir()) == ["gradcheck.json", "gradcheck.md"]  # no temp files


@pytest.mark.slow
def test_stage_fails_with_nonzero_exit_when_checks_fail(project_root, processed_dir, tmp_path):
    # a tolerance below the finite-difference error of h = 1e-4 (about 1e-9): the gradient checks fail
    processed, _ = processed_dir
    reports = tmp_path / "reports"
    done = run_stage(project_root, tmp_path, f"paths.processed={processed}", f"paths.reports={reports}",
                     "gradcheck.tol=1e-12")
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error: ") and "gradient checks failed" in done.stderr
    assert "FAILED b_softmax_grad_center [per_pair, random]" in done.stdout
    report = json.loads((reports / "gradcheck.json").read_text())
    assert report["passed"] is False and report["failed"] > 0
    assert report["checks"]["a_cross_entropy_is_softmax_loss"]["passed"] is True  # loss values agree exactly
    assert "checks FAILED" in (reports / "gradcheck.md").read_text()


@pytest.mark.slow
def test_stage_without_processed_corpus_says_to_tokenize(project_root, tmp_path):
    reports = tmp_path / "reports"
    done = run_stage(project_root, tmp_path, f"paths.processed={tmp_path / 'nowhere'}", f"paths.reports={reports}")
    assert done.returncode == 1
    assert "tokenize" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not reports.exists()


def test_broken_gradient_fails_the_stage_and_is_named_in_the_report(processed_dir, tmp_path, capsys):
    _, words = processed_dir

    def forgets_repeated_negatives(v_c, o, U, negatives):
        return losses.neg_sampling_loss_and_gradient(v_c, o, U, np.unique(negatives))

    broken = dataclasses.replace(derivations.per_pair_engine(), neg_sampling=forgets_repeated_negatives)
    with pytest.raises(StageError, match="gradient checks failed"):
        run_gradcheck(words[:50], tmp_path, engines=[broken])
    report = json.loads((tmp_path / "gradcheck.json").read_text())
    assert [check for check, entry in report["checks"].items() if not entry["passed"]] == ["h_neg_sampling_repeated"]
    assert report["failed"] == 2  # random inputs and the vocabulary slice
    assert report["engines"]["per_pair"]["passed"] is False
    assert "| `h_neg_sampling_repeated` |" in (tmp_path / "gradcheck.md").read_text()
    assert "FAILED h_neg_sampling_repeated [per_pair, random]" in capsys.readouterr().out


def test_engine_that_raises_is_reported_as_failed_in_strict_json(processed_dir, tmp_path):
    _, words = processed_dir

    def crashes(*args):
        raise RuntimeError("kernel crashed")

    broken = dataclasses.replace(derivations.per_pair_engine(), naive_softmax=crashes)
    with pytest.raises(StageError):
        run_gradcheck(words[:50], tmp_path, engines=[broken])

    def reject(constant):
        raise AssertionError(f"{constant} is not valid JSON")

    report = json.loads((tmp_path / "gradcheck.json").read_text(), parse_constant=reject)
    assert report["checks"]["b_softmax_grad_center"] == {"max_rel_error": None, "passed": False}
    assert report["max_rel_error"] is None
    assert "raised RuntimeError: kernel crashed" in (tmp_path / "gradcheck.md").read_text()


def test_vocabulary_slice_is_the_first_words_of_the_processed_corpus(processed_dir, tmp_path):
    processed, words = processed_dir
    assert vocabulary_slice(processed) == list(words[:50])
    tiny = tmp_path / "tiny"
    save_corpus(build_corpus([["a", "b", "a"]]), tiny)
    with pytest.raises(StageError, match="at least 4"):
        check_inputs(vocabulary_slice(tiny))
