"""What a user sees of the experiments in DVC, on a real DVC repository (a copy of the project as
a clone holds it, trained 200 iterations): a `dvc exp show` of at most 60 columns with room for
the evaluation figures, headline metrics that read well, params.yaml without paths, the declared
loss and lr plots from `dvc plots show`/`dvc plots diff` with no arguments, in HTML that loads
nothing from the network, and no results committed on main."""
import csv
import io
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import require
import yaml

from dvc_project import PROJECT_ROOT, reproduced_project, sh, tracked_files  # noqa: F401 (a fixture)

MAX_COLUMNS = 60


@pytest.fixture(scope="module")
def repo(reproduced_project) -> Path:
    """The reproduced project and one experiment, `lr-high` (its results stay in the workspace)."""
    sh(reproduced_project, "dvc", "exp", "run", "-n", "lr-high", "-S", "train.lr=1.0")
    return reproduced_project


def exp_show_columns(repo: Path) -> list[str]:
    table = sh(repo, "dvc", "exp", "show", "--csv").stdout
    return next(csv.reader(io.StringIO(table)))


@pytest.mark.slow
@pytest.mark.integration
def test_exp_show_has_at_most_60_columns(repo):
    columns = exp_show_columns(repo)
    assert len(columns) <= MAX_COLUMNS, columns


@pytest.mark.slow
@pytest.mark.integration
def test_exp_show_lists_the_headline_figures_and_no_details(repo):
    columns = exp_show_columns(repo)
    code = [c for c in columns if c.startswith(("pipeline", "w2v"))]
    assert code == ["pipeline", "w2v"], code
    assert not [c for c in columns if c.startswith(("checks.", "engines.", "paths.", "compare.", "train.sentences"))]
    assert not [c for c in columns if c.startswith(("corpus.files", "labels.files")) or c.endswith(
        ("sha256", ".size", "train_lines", "vectors", "compile_seconds", "logging_seconds"))]
    for headline in ("passed", "max_rel_error_log10", "vocab_size", "final_loss_smoothed", "train.lr"):
        assert headline in columns


@pytest.mark.slow
@pytest.mark.integration
def test_only_changed_shows_the_experiment_against_its_baseline(repo):
    table = sh(repo, "dvc", "exp", "show", "--only-changed", "--csv").stdout
    rows = list(csv.DictReader(io.StringIO(table)))
    assert "train.lr" in rows[0] and "train.dim" not in rows[0]
    by_name = {row["Experiment"]: row for row in rows}
    assert by_name["lr-high"]["train.lr"] == "1.0"
    assert [row["train.lr"] for row in rows if row["typ"] == "baseline" and row["rev"] != "workspace"] == ["0.3"]


@pytest.mark.slow
@pytest.mark.integration
def test_headline_metrics_read_well(repo):
    gradcheck = json.loads((repo / "metrics" / "gradcheck.json").read_text())
    assert gradcheck["passed"] is True and -16 <= gradcheck["max_rel_error_log10"] < -5  # tol 1e-5
    details = json.loads((repo / "reports" / "gradcheck.json").read_text())
    assert round(__import__("math").log10(details["max_rel_error"]), 2) == gradcheck["max_rel_error_log10"]
    shown = sh(repo, "dvc", "metrics", "show").stdout
    assert f"{gradcheck['max_rel_error_log10']}" in shown and "True" in shown
    corpus = json.loads((repo / "metrics" / "corpus.json").read_text())
    assert corpus == {"vocab_size": 19539, "counted_tokens": 163567}  # train_on=train: the training sentences
    train = json.loads((repo / "metrics" / "train.json").read_text())
    assert sorted(train) == ["final_loss_smoothed", "train_seconds"]  # compile and logging seconds: MLflow
    stats = json.loads((repo / "data" / "processed" / "stats.json").read_text())
    assert stats["train"]["sentences"] == 8544  # per split, in the report


@pytest.mark.slow
@pytest.mark.integration
def test_params_yaml_holds_only_experiment_settings(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert sorted(params) == ["corpus", "evaluate", "gradcheck", "labels", "loss", "mlflow", "train"]
    committed = yaml.safe_load((PROJECT_ROOT / "params.yaml").read_text())
    assert "paths" not in committed and "compare" not in committed
    # the published data sets' checksums are w2v.sources' (data identity, not settings)
    assert sorted(committed["corpus"]) == ["fix_encoding", "kind", "min_count", "train_on", "url"]
    assert sorted(committed["labels"]) == ["url"] and "vectors" not in committed["evaluate"]


@pytest.mark.slow
@pytest.mark.integration
def test_plots_show_and_diff_need_no_arguments_and_load_nothing_remote(repo):
    sh(repo, "dvc", "plots", "show")
    html = (repo / "dvc_plots" / "index.html").read_text()
    assert "Training loss (smoothed)" in html and "Learning rate" in html
    assert_no_remote_address(html)
    sh(repo, "dvc", "plots", "diff", "HEAD", "lr-high", "-o", "diff_plots")
    html = (repo / "diff_plots" / "index.html").read_text()
    assert "lr-high" in html and "HEAD" in html
    assert_no_remote_address(html)


def assert_no_remote_address(html: str) -> None:
    """No script, link or image from a host; the only URLs left are the Vega-Lite spec's $schema
    identifiers, which vega-embed reads as text (it fetches nothing for them)."""
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    addresses = re.findall(r"""(?:https?:)?//[^\s"'<>)]+""", html)
    assert set(addresses) <= {"https://vega.github.io/schema/vega-lite/v5.json"}, set(addresses)


@pytest.mark.slow
@pytest.mark.integration
def test_plots_render_offline_in_headless_chromium(repo, tmp_path):
    chromium = shutil.which("chromium")
    vega = PROJECT_ROOT / "dvc_plots" / "vega"
    require(chromium is not None and (vega / "vega.min.js").is_file(),
            "needs Debian's chromium and Vega fetched by `make plots-offline` (npm registry)")
    sh(repo, "dvc", "plots", "show")
    shutil.copytree(vega, repo / "dvc_plots" / "vega", dirs_exist_ok=True)
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tempfile.mkdtemp()}",
         "--proxy-server=127.0.0.1:9",  # any remote load would fail
         "--virtual-time-budget=10000", "--dump-dom", (repo / "dvc_plots" / "index.html").as_uri()],
        capture_output=True, text=True, timeout=120).stdout
    assert dom.count("<canvas") == 2, dom[-2000:]   # loss and lr, drawn by Vega
    assert re.search(r'id="vega-missing"[^>]*hidden', dom)


def test_main_commits_no_results():
    results = [name for name in tracked_files()
               if name == "dvc.lock" or name.startswith(("metrics/", "reports/", "plots/", "models/", "data/"))]
    assert results == []
