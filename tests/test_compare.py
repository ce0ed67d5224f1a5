"""pipeline.compare on a real SQLite MLflow store holding sweeps whose runs carry figures logged
here: seed groups with t-intervals, the distinguishability rule, eta squared, declared directions,
the columns of the parameters that really vary, and the report logged to the parent run."""
import shutil
import subprocess
import sys
import time

import matplotlib.image
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from pipeline.common import StageError
from pipeline.compare import compare, resolve_parent
from test_train_stage import run_env

pytestmark = pytest.mark.slow  # each test draws the whole report with its figures

T_975_DF2 = 4.302653  # Student t quantile 0.975 with 2 degrees of freedom (printed tables)


def log_run(client, experiment_id, name, params, metrics, parent_id=None, curve_level=2.0):
    tags = {"mlflow.parentRunId": parent_id} if parent_id else {}
    run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    now = int(time.time() * 1000)
    history = [Metric("loss_smoothed", curve_level + 8.0 / (1 + step / 10), now, step) for step in range(0, 200, 10)]
    history += [Metric(key, value, now, 0) for key, value in metrics.items()]
    client.log_batch(run_id, metrics=history, params=[Param(k, str(v)) for k, v in params.items()])
    client.set_terminated(run_id, "FINISHED")
    return run_id


def base_params(seed, **changes):
    params = {"loss.name": "neg_sampling", "loss.lr": 0.3, "train.lr": 0.3, "train.K": 10, "train.window": 5,
              "train.seed": seed, "train.dim": 10, "corpus.url": f"/data/copy{seed}/sst",
              "corpus.sha256": f"{seed:064x}", "paths.models": f"multirun/{seed}", "evaluate.heldout.K": 10}
    params.update(changes)
    return params


# sweep "loss": (loss, seed) -> eval_heldout_ns_loss; naive softmax at its own lr, K a placeholder
LOSS_SWEEP = {("neg_sampling", 0): 38.5, ("neg_sampling", 1): 38.6, ("neg_sampling", 2): 38.4,
              ("naive_softmax", 0): 50.0, ("naive_softmax", 1): 51.0, ("naive_softmax", 2): 52.0}
# sweep "window": window -> three seeds of eval_heldout_ns_loss
WINDOW_SWEEP = {5: [1.0, 2.0, 3.0], 3: [4.0, 5.0, 6.0], 1: [0.5, 3.0, 5.5]}
# sweep "single": one seed per K: (eval_heldout_ns_loss, its _ci95)
SINGLE_SWEEP = {10: (10.0, 1.0), 5: (12.5, 1.0), 2: (11.5, 1.0)}


@pytest.fixture(scope="module")
def store(tmp_path_factory, empty_store_template):
    tmp_path = tmp_path_factory.mktemp("store")
    shutil.copy(empty_store_template, tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("sweep", artifact_location=(tmp_path / "artifacts").as_uri())
    parents = {name: client.create_run(experiment_id, run_name=f"sweep {name}").info.run_id
               for name in ("loss", "window", "single")}
    for (loss, seed), ns_loss in LOSS_SWEEP.items():
        lr = 0.3 if loss == "neg_sampling" else 5.0
        log_run(client, experiment_id, f"{loss}-{seed}", base_params(seed, **{"loss.name": loss, "loss.lr": lr, "train.lr": lr}),
                {"eval_heldout_ns_loss": ns_loss, "eval_heldout_ns_loss_ci95": 0.2,
                 "eval_heldout_nll": ns_loss / 6, "eval_heldout_nll_ci95": 0.05,
                 "eval_heldout_recall10": 0.3 if loss == "neg_sampling" else 0.2 + seed / 100,
                 "eval_heldout_recall10_ci95": 0.01},
                parent_id=parents["loss"], curve_level=1.0 if loss == "neg_sampling" else 4.0)
    for window, values in WINDOW_SWEEP.items():
        for seed, value in enumerate(values):
            log_run(client, experiment_id, f"window{window}-{seed}", base_params(seed, **{"train.window": window}),
                    {"eval_heldout_ns_loss": value, "eval_heldout_nll": value, "eval_heldout_recall10": value / 10},
                    parent_id=parents["window"])
    for K, (value, half) in SINGLE_SWEEP.items():
        log_run(client, experiment_id, f"K{K}", base_params(0, **{"train.K": K, "corpus.url": f"/K{K}"}),
                {"eval_heldout_ns_loss": value, "eval_heldout_ns_loss_ci95": half, "eval_ws353_spearman": K / 100},
                parent_id=parents["single"])
    for parent in parents.values():
        client.set_terminated(parent, "FINISHED")
    lone = log_run(client, experiment_id, "single", base_params(0, **{"train.dim": 50}),
                   {"eval_heldout_ns_loss": 0.1, "eval_ws353_spearman": 0.5})
    return {"client": client, "uri": uri, "experiment_id": experiment_id, "parents": parents, "lone": lone}


def run_compare(store, tmp_path, parent, metric="eval_heldout_ns_loss"):
    out = tmp_path / "out"
    table = compare(store["client"], store["experiment_id"], store["parents"][parent], metric, out)
    return table, out


def test_columns_are_the_parameters_that_really_vary(store, tmp_path):
    # urls, hashes, paths, evaluate.*, the per-loss default loss.lr and naive softmax's K are no columns
    table, _ = run_compare(store, tmp_path, "loss")
    assert [c for c in table.columns if "." in c] == ["loss.name", "train.lr", "train.seed"]
    table, _ = run_compare(store, tmp_path, "single")
    assert [c for c in table.columns if "." in c] == ["train.K"]


def test_seed_groups_have_a_t_interval_and_welch_verdicts(store, tmp_path):
    _, out = run_compare(store, tmp_path, "window")
    groups = pd.read_csv(out / "seed_groups.csv")
    assert list(groups["train.window"]) == [5, 1, 3]  # means 2.0, 3.0, 5.0; lower is better
    assert list(groups["n"]) == [3, 3, 3]
    assert list(groups["mean"]) == pytest.approx([2.0, 3.0, 5.0])
    # values 1, 2, 3: sample sd 1, half-width t(0.975, 2) / sqrt(3)
    assert groups.loc[0, "t_ci95"] == pytest.approx(T_975_DF2 / 3 ** 0.5, rel=1e-5)
    assert groups.loc[1, "t_ci95"] == pytest.approx(T_975_DF2 * 2.5 / 3 ** 0.5, rel=1e-5)
    # 1,2,3 against 4,5,6: t = -3.674 with 4 degrees of freedom, p = 0.0213; against 0.5,3,5.5: p = 0.77
    assert list(groups["distinguishable_from_best"]) == ["best", "no", "yes"]
    assert groups.loc[2, "p_welch"] == pytest.approx(0.02131, abs=2e-4)
    assert groups.loc[1, "p_welch"] > 0.5


def test_one_seed_groups_use_the_bootstrap_intervals(store, tmp_path):
    _, out = run_compare(store, tmp_path, "single")
    groups = pd.read_csv(out / "seed_groups.csv")
    # 10 ± 1 is best; 11.5 ± 1 overlaps it, 12.5 ± 1 does not
    assert list(groups["train.K"]) == [10, 2, 5]
    assert list(groups["distinguishable_from_best"]) == ["best", "no", "yes"]
    assert groups["p_welch"].isna().all()


def test_higher_is_better_metrics_rank_descending(store, tmp_path):
    table, out = run_compare(store, tmp_path, "loss", metric="eval_heldout_recall10")
    assert list(table["eval_heldout_recall10"]) == sorted(table["eval_heldout_recall10"], reverse=True)
    groups = pd.read_csv(out / "seed_groups.csv")
    assert list(groups["loss.name"]) == ["neg_sampling", "naive_softmax"]
    assert list(groups["distinguishable_from_best"]) == ["best", "yes"]


def test_parameters_that_vary_together_are_named_and_share_one_eta_squared(store, tmp_path):
    # in the loss sweep each loss brings its own train.lr: the two effects cannot be told apart
    _, out = run_compare(store, tmp_path, "loss")
    importance = pd.read_csv(out / "importance.csv", keep_default_na=False).set_index("parameter")
    assert importance.loc["loss.name", "varies with"] == "train.lr"
    assert importance.loc["train.lr", "varies with"] == "loss.name"
    assert importance.loc["train.seed", "varies with"] == ""
    assert importance.loc["loss.name", "eta2 eval_heldout_ns_loss"] == \
        importance.loc["train.lr", "eta2 eval_heldout_ns_loss"]
    assert "cannot be told apart" in (out / "report.md").read_text()
    _, out = run_compare(store, tmp_path, "window")  # window and seed vary independently
    assert set(pd.read_csv(out / "importance.csv", keep_default_na=False)["varies with"]) == {""}


def test_parameters_that_vary_together_share_one_panel_and_one_set_of_bars(store, tmp_path):
    from pipeline.compare_report import distinct_effects, with_partners

    together = {"loss.name": ["train.lr"], "train.lr": ["loss.name"], "train.seed": []}
    assert distinct_effects(["loss.name", "train.lr", "train.seed"], together) == ["loss.name", "train.seed"]
    assert with_partners("loss.name", together) == "loss.name\n(with train.lr)"
    assert with_partners("train.seed", together) == "train.seed"
    _, out = run_compare(store, tmp_path, "loss")
    dpi = 110  # one panel is 4.2 inches wide; two would be 8.4
    assert matplotlib.image.imread(out / "vs_params_eval_heldout_ns_loss.png").shape[1] == round(4.2 * dpi)
    # importance: two rows of three bars (loss.name with train.lr, and the seed), not three
    height = matplotlib.image.imread(out / "importance.png").shape[0]
    assert abs(height - (1.2 + 0.45 * 2 * 3 / 2) * dpi) <= 1


def test_eta_squared_of_each_parameter(store, tmp_path):
    _, out = run_compare(store, tmp_path, "window")
    importance = pd.read_csv(out / "importance.csv").set_index("parameter")
    values = [v for vs in WINDOW_SWEEP.values() for v in vs]
    mean = sum(values) / len(values)
    total = sum((v - mean) ** 2 for v in values)
    between_window = 3 * ((2.0 - mean) ** 2 + (5.0 - mean) ** 2 + (3.0 - mean) ** 2)
    assert importance.loc["train.window", "eta2 eval_heldout_ns_loss"] == pytest.approx(between_window / total)
    seed_means = [(1.0 + 4.0 + 0.5) / 3, (2.0 + 5.0 + 3.0) / 3, (3.0 + 6.0 + 5.5) / 3]
    between_seed = 3 * sum((m - mean) ** 2 for m in seed_means)
    assert importance.loc["train.seed", "eta2 eval_heldout_ns_loss"] == pytest.approx(between_seed / total)
    # all three held-out figures get a column, and the figure is drawn
    assert {"eta2 eval_heldout_nll", "eta2 eval_heldout_recall10"} <= set(importance.columns)
    assert matplotlib.image.imread(out / "importance.png").std() > 0.01


def test_report_shows_intervals_and_all_held_out_figures(store, tmp_path):
    _, out = run_compare(store, tmp_path, "loss", metric="eval_heldout_nll")
    report = (out / "report.md").read_text()
    for name in ("eval_heldout_nll", "eval_heldout_ns_loss", "eval_heldout_recall10"):
        assert f"## Settings by `{name}`" in report
        assert (out / f"vs_params_{name}.png").is_file()
    assert "38.5 ± 0.2" in report  # a run's figure with its bootstrap half-width
    assert "no correction for multiple comparisons" in report
    directions = report.split("## Directions", 1)[1]
    assert [[cell.strip() for cell in line.split("|")[1:3]] for line in directions.splitlines()
            if "eval_heldout_recall10" in line] == [["eval_heldout_recall10", "higher"]]
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 5  # importance, loss curves, 3 figures against parameters
    assert "http" not in html and "<table>" in html


def test_report_logged_to_the_parent_run(store, tmp_path):
    run_compare(store, tmp_path, "window")
    client, parent = store["client"], store["parents"]["window"]
    logged = {a.path for a in client.list_artifacts(parent, "compare")}
    assert {"compare/report.md", "compare/report.html", "compare/seed_groups.csv", "compare/runs.csv",
            "compare/importance.csv", "compare/loss_curves.png", "compare/importance.png"} <= logged
    downloaded = client.download_artifacts(parent, "compare/seed_groups.csv", str(tmp_path))
    assert list(pd.read_csv(downloaded)["train.window"]) == [5, 1, 3]


def test_figures_are_readable_images(store, tmp_path):
    _, out = run_compare(store, tmp_path, "loss")
    curves = matplotlib.image.imread(out / "loss_curves.png")
    assert curves.shape[1] > 800 and curves.std() > 0.01  # two panels side by side, one per loss
    panel = matplotlib.image.imread(out / "vs_params_eval_heldout_ns_loss.png")
    assert panel.std() > 0.01  # one panel for loss.name and train.lr, which vary together (test above)


def test_a_metric_without_a_declared_direction_is_refused(store, tmp_path):
    client = store["client"]
    with pytest.raises(StageError, match="compare.metric='eval_nothing' is logged by none of the children"):
        compare(client, store["experiment_id"], store["parents"]["loss"], "eval_nothing", tmp_path / "out")
    client.log_metric(store["lone"], "eval_mystery", 1.0)
    with pytest.raises(StageError, match="'eval_mystery' has no declared direction"):
        compare(client, store["experiment_id"], None, "eval_mystery", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_experiment_scope_skips_parents(store, tmp_path):
    table = compare(store["client"], store["experiment_id"], None, "eval_heldout_ns_loss", tmp_path / "out")
    assert len(table) == 6 + 9 + 3 + 1  # every child and the single run; no parent
    assert table.loc[0, "run"] == "single"


def test_parent_by_name_and_latest(store):
    client, experiment_id, parents = store["client"], store["experiment_id"], store["parents"]
    assert resolve_parent(client, experiment_id, "latest") == parents["single"]
    assert resolve_parent(client, experiment_id, "sweep loss") == parents["loss"]
    assert resolve_parent(client, experiment_id, parents["window"]) == parents["window"]
    with pytest.raises(StageError, match="compare.parent_run='no-such-run': no run with that id or name"):
        resolve_parent(client, experiment_id, "no-such-run")


def test_missing_experiment_exits_with_one_line(store, tmp_path):
    done = subprocess.run([sys.executable, "-m", "pipeline.compare", "mlflow.experiment=absent",
                           f"compare.output_dir={tmp_path / 'cli'}", "hydra.run.dir=.", "hydra.output_subdir=null",
                           "hydra/job_logging=none", "hydra/hydra_logging=none"],
                          capture_output=True, text=True, env=run_env(store["uri"]), timeout=300)
    assert done.returncode == 1
    assert "MLflow experiment 'absent' is not in the store" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "cli").exists()
