"""pipeline.compare on a real SQLite MLflow store holding a small sweep with real metric histories."""
import subprocess
import sys
import time

import matplotlib.image
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from pipeline.common import StageError
from pipeline.compare import compare, resolve_parent
from test_train_stage import run_env

# eval_ws353_spearman per (dim, seed); loss curves decay towards a level that depends on dim
WS353 = {(5, 0): 0.10, (5, 1): 0.12, (5, 2): 0.14, (10, 0): 0.20, (10, 1): 0.25, (10, 2): 0.30}
DEV_LOSS = {(5, 0): 6.0, (5, 1): 6.2, (5, 2): 6.4, (10, 0): 5.0, (10, 1): 5.5, (10, 2): 5.3}


def log_run(client, experiment_id, name, params, metrics, parent_id=None, curve_level=2.0):
    tags = [RunTag("mlflow.runName", name)]
    if parent_id:
        tags.append(RunTag("mlflow.parentRunId", parent_id))
    run = client.create_run(experiment_id, run_name=name, tags={t.key: t.value for t in tags})
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    history = [Metric("loss_smoothed", curve_level + 8.0 / (1 + step / 10), now, step) for step in range(0, 200, 10)]
    history += [Metric(key, value, now, 0) for key, value in metrics.items()]
    client.log_batch(run_id, metrics=history, params=[Param(k, str(v)) for k, v in params.items()])
    client.set_terminated(run_id, "FINISHED")
    return run_id


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A SQLite store with one sweep (parent + 6 children: dim x seed) and one unrelated run."""
    tmp_path = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment_id = client.create_experiment("sweep", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(experiment_id, run_name="sweep-parent").info.run_id
    children = {}
    for (dim, seed), ws in WS353.items():
        children[(dim, seed)] = log_run(
            client, experiment_id, f"dim{dim}-seed{seed}",
            params={"train.dim": dim, "train.seed": seed, "train.lr": 0.3, "loss.name": "neg_sampling",
                    "paths.models": f"multirun/{dim}_{seed}"},
            metrics={"eval_ws353_spearman": ws, "eval_dev_loss": DEV_LOSS[(dim, seed)]},
            parent_id=parent, curve_level=1.0 if dim == 10 else 3.0)
    client.set_terminated(parent, "FINISHED")
    lone = log_run(client, experiment_id, "single", {"train.dim": 50, "train.seed": 0, "train.lr": 0.3,
                                                     "loss.name": "neg_sampling", "paths.models": "models"},
                   {"eval_ws353_spearman": 0.5, "eval_dev_loss": 4.0})
    return {"client": client, "uri": uri, "experiment_id": experiment_id, "parent": parent, "children": children, "lone": lone}


def test_sweep_table_ranked_with_swept_params_and_seed_groups(store, tmp_path):
    out = tmp_path / "out"
    table = compare(store["client"], store["experiment_id"], store["parent"], "eval_ws353_spearman", out)
    # children only, best first; swept columns are dim and seed (lr, loss and paths are not swept)
    assert list(table["run"]) == ["dim10-seed2", "dim10-seed1", "dim10-seed0", "dim5-seed2", "dim5-seed1", "dim5-seed0"]
    assert list(table["rank"]) == [1, 2, 3, 4, 5, 6]
    assert "train.dim" in table and "train.seed" in table
    assert not {"train.lr", "loss.name", "paths.models"} & set(table.columns)
    assert table.loc[0, "train.dim"] == 10 and table.loc[0, "eval_ws353_spearman"] == pytest.approx(0.30)

    saved = pd.read_csv(out / "runs.csv")
    assert list(saved["run_id"]) == [store["children"][(10, 2)], store["children"][(10, 1)], store["children"][(10, 0)],
                                     store["children"][(5, 2)], store["children"][(5, 1)], store["children"][(5, 0)]]
    groups = pd.read_csv(out / "seed_groups.csv")
    assert list(groups["train.dim"]) == [10, 5]
    assert list(groups["n"]) == [3, 3]
    assert list(groups["mean"]) == pytest.approx([0.25, 0.12])
    assert list(groups["std"]) == pytest.approx([0.05, 0.02])  # sample standard deviation over 3 seeds
    report = (out / "runs.md").read_text()
    assert "0.2500 ± 0.0500" in report and "0.1200 ± 0.0200" in report
    header = next(line for line in report.splitlines() if line.startswith("|") and "rank" in line)
    assert [cell.strip() for cell in header.strip("|").split("|")][:5] == ["rank", "run", "run_id", "train.dim", "train.seed"]


def test_figures_are_real_images(store, tmp_path):
    out = tmp_path / "out"
    compare(store["client"], store["experiment_id"], store["parent"], "eval_ws353_spearman", out)
    for name, min_width in (("loss_curves.png", 900), ("metric_vs_params.png", 400)):
        image = matplotlib.image.imread(out / name)
        assert image.ndim == 3 and image.shape[1] >= min_width
        assert image.std() > 0.01  # something is drawn


def test_results_logged_to_the_parent_run(store, tmp_path):
    compare(store["client"], store["experiment_id"], store["parent"], "eval_ws353_spearman", tmp_path / "out")
    logged = {a.path for a in store["client"].list_artifacts(store["parent"], "compare")}
    assert logged == {f"compare/{n}" for n in ("runs.csv", "runs.md", "seed_groups.csv", "loss_curves.png", "metric_vs_params.png")}


def test_loss_metrics_rank_ascending_and_experiment_scope_skips_parents(store, tmp_path):
    table = compare(store["client"], store["experiment_id"], None, "eval_dev_loss", tmp_path / "out")
    assert len(table) == 7  # 6 children + the single run; the parent (no metrics) is left out
    assert list(table["run"][:3]) == ["single", "dim10-seed0", "dim10-seed2"]
    assert list(table["eval_dev_loss"]) == sorted(table["eval_dev_loss"])


def test_parent_by_name_and_latest(store):
    client, experiment_id = store["client"], store["experiment_id"]
    assert resolve_parent(client, experiment_id, "latest") == store["parent"]
    assert resolve_parent(client, experiment_id, "sweep-parent") == store["parent"]
    assert resolve_parent(client, experiment_id, store["parent"]) == store["parent"]


def run_compare(store, *overrides):
    env = run_env(store["uri"])
    return subprocess.run([sys.executable, "-m", "pipeline.compare", "mlflow.experiment=sweep", *overrides,
                           "hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=none", "hydra/hydra_logging=none"],
                          capture_output=True, text=True, env=env, timeout=300)


def test_real_training_sweep_compared_from_the_command_line(fixture_corpus, empty_store, tmp_path):
    """A real 2 x 2 Hydra sweep of the training stage (each job evaluated), then pipeline.compare."""
    sweep = subprocess.run(
        [sys.executable, "-m", "pipeline.train", "-m", f"paths.processed={fixture_corpus}",
         f"paths.checkpoints={tmp_path / 'checkpoints'}", f"hydra.sweep.dir={tmp_path / 'sweep'}",
         "train.iterations=60", "train.checkpoint_every=60", "train.dim=4,8", "train.seed=0,1"],
        cwd=tmp_path, env=run_env(empty_store), capture_output=True, text=True, timeout=600)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.compare", "compare.parent_run=latest", "compare.metric=final_loss_smoothed",
         f"compare.output_dir={tmp_path / 'compare'}", "hydra.run.dir=.", "hydra.output_subdir=null",
         "hydra/job_logging=none", "hydra/hydra_logging=none"],
        cwd=tmp_path, env=run_env(empty_store), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    client = MlflowClient(empty_store)
    experiment_id = client.get_experiment_by_name("w2v").experiment_id
    runs = client.search_runs([experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    children = {r.info.run_id: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    table = pd.read_csv(tmp_path / "compare" / "runs.csv")
    assert set(table["run_id"]) == set(children)
    assert [c for c in table.columns if c.startswith(("train.", "loss.", "corpus.", "paths."))] == ["train.dim", "train.seed"]
    losses = [children[run_id].data.metrics["final_loss_smoothed"] for run_id in table["run_id"]]
    assert list(table["final_loss_smoothed"]) == pytest.approx(losses) and losses == sorted(losses)
    for _, row in table.iterrows():  # the evaluation of each job is in its run and in the table
        assert row["eval_ws353_oov"] == pytest.approx(children[row["run_id"]].data.metrics["eval_ws353_oov"])
        assert int(children[row["run_id"]].data.params["train.dim"]) == row["train.dim"]
    groups = pd.read_csv(tmp_path / "compare" / "seed_groups.csv")
    assert sorted(groups["train.dim"]) == [4, 8] and list(groups["n"]) == [2, 2]
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "compare")}
    assert {"compare/runs.md", "compare/loss_curves.png", "compare/metric_vs_params.png"} <= logged
    assert f"4 runs; best by final_loss_smoothed: {table.loc[0, 'run']}" in done.stdout


def test_metric_nobody_logged_is_a_clear_error(store, tmp_path):
    with pytest.raises(StageError, match="compare.metric='eval_nothing' is logged by none of the children") as error:
        compare(store["client"], store["experiment_id"], store["parent"], "eval_nothing", tmp_path / "out")
    assert "eval_ws353_spearman" in str(error.value)  # names the metrics there are
    assert not (tmp_path / "out").exists()


def test_unknown_parent_is_a_clear_error(store):
    with pytest.raises(StageError, match="compare.parent_run='no-such-run': no run with that id or name"):
        resolve_parent(store["client"], store["experiment_id"], "no-such-run")


def test_missing_experiment_exits_with_one_line(store, tmp_path):
    done = run_compare(store, f"compare.output_dir={tmp_path / 'cli'}", "mlflow.experiment=absent")
    assert done.returncode == 1
    assert "MLflow experiment 'absent' is not in the store" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "cli").exists()
