"""The named sweeps of conf/sweep/ (`python -m pipeline.train -m +sweep=<name>`): what they sweep,
and a real Hydra multirun of one, ending with the comparison logged to its parent run, the job
table on the terminal and every job's log lines prefixed with its number and swept values."""
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient

from test_sweep import parent_and_children
from test_train_stage import run_env

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PRESETS = {"window": "train.window", "negatives": "train.K", "lr": "train.lr", "loss": "loss"}


def composed(*overrides):
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=True)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_preset_sweeps_its_parameter_over_three_seeds(name):
    cfg = composed(f"+sweep={name}")
    params = dict(cfg.hydra.sweeper.params)
    assert set(params) == {PRESETS[name], "train.seed"}
    assert params["train.seed"] == "0,1,2"
    assert len(params[PRESETS[name]].split(",")) >= 2
    assert "sweep" not in cfg  # the preset only sets hydra.sweeper.params, train.* sizes and (loss) min_count
    # the loss preset compares both losses on the words seen 5 times or more (applied on load)
    assert cfg.corpus.min_count == (5 if name == "loss" else composed().corpus.min_count)


def test_each_loss_has_its_own_learning_rate_and_subsampling():
    # naive softmax learns nothing at negative sampling's lr (it stays at ln V), and on subsampled
    # windows it learns a flatter distribution than the held-out NLL measures, so each loss config
    # carries its own defaults; an explicit train.lr still wins
    assert (composed().train.lr, composed().train.subsample) == (0.3, 1e-5)
    assert composed("loss=naive_softmax").train.lr == composed("loss=naive_softmax", "+sweep=loss").train.lr
    naive = composed("loss=naive_softmax").train
    assert (naive.lr, naive.lr_schedule, naive.subsample) == (1.5, "linear", 0)
    assert composed("loss=naive_softmax", "+sweep=loss").train.subsample == 0
    assert composed("loss=naive_softmax", "train.lr=0.1").train.lr == 0.1


@pytest.mark.slow
def test_a_preset_sweep_ends_with_its_report_and_the_job_table(fixture_corpus, empty_store, tmp_path):
    command = [sys.executable, "-m", "pipeline.train", "-m", "+sweep=window", f"paths.processed={fixture_corpus}",
               f"paths.checkpoints={tmp_path / 'checkpoints'}", f"hydra.sweep.dir={tmp_path / 'sweep'}",
               "train.iterations=40", "train.checkpoint_every=40", "train.seed=0,1",  # 3 windows x 2 seeds
               "compare.metric=final_loss_smoothed"]
    done = subprocess.run(command, cwd=tmp_path, env=run_env(empty_store), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    client, parent, children = parent_and_children(empty_store)
    assert parent.info.status == "FINISHED" and len(children) == 6

    # the comparison is in the parent's artifacts
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "compare")}
    assert {"compare/report.md", "compare/report.html", "compare/seed_groups.csv", "compare/importance.csv"} <= logged
    groups = pd.read_csv(client.download_artifacts(parent.info.run_id, "compare/seed_groups.csv", str(tmp_path)))
    assert sorted(groups["train.window"]) == [1, 3, 5] and list(groups["n"]) == [2, 2, 2]
    report = Path(client.download_artifacts(parent.info.run_id, "compare/report.md", str(tmp_path))).read_text()
    assert "distinguishable_from_best" in report and "eta²" in report

    # one table row per job, in launch order, with its status, figure and run id
    by_values = {(c.data.params["train.window"], c.data.params["train.seed"]): c for c in children}
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["job", "swept", "status"])
    header_line_names = lines[header].split()
    rows = [line.split() for line in lines[header + 2:header + 8]]
    jobs = [(w, s) for w in ("1", "3", "5") for s in ("0", "1")]
    for number, (row, (window, seed)) in enumerate(zip(rows, jobs)):
        child = by_values[(window, seed)]
        assert row[0] == f"#{number}" and row[1] == f"window={window},seed={seed}"
        assert row[2] == "FINISHED" and row[-1] == child.info.run_id
        # the first figure column: the held-out NS loss (the fixture corpus holds out its dev sentences)
        assert header_line_names[3] == "eval_heldout_ns_loss"
        assert float(row[3]) == pytest.approx(child.data.metrics["eval_heldout_ns_loss"], rel=1e-3)
        assert float(row[5]) == pytest.approx(child.data.metrics["eval_heldout_ns_loss_ci95"], rel=1e-2, abs=1e-4)

    # every log line of a job carries its number and swept values
    job_lines = [line for line in lines if "][pipeline.train][" in line or "][__main__][" in line]
    assert job_lines and all(re.match(r"\[#\d window=\d,seed=\d\] \[", line) for line in job_lines), job_lines[:3]
    for number, (window, seed) in enumerate(jobs):
        assert any(line.startswith(f"[#{number} window={window},seed={seed}] ") for line in job_lines)


@pytest.mark.slow
def test_a_run_by_hand_has_no_prefix_and_ends_with_its_figures(fixture_corpus, empty_store, tmp_path):
    done = subprocess.run([sys.executable, "-m", "pipeline.train", f"paths.processed={fixture_corpus}",
                           f"paths.checkpoints={tmp_path / 'checkpoints'}", f"hydra.run.dir={tmp_path / 'run'}",
                           "train.iterations=20", "train.checkpoint_every=20"],
                          cwd=tmp_path, env=run_env(empty_store), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert any(line.startswith("[20") and "MLflow run" in line for line in lines), done.stdout[-2000:]
    client = MlflowClient(empty_store)
    run = client.search_runs([client.get_experiment_by_name("w2v").experiment_id])[0]
    header = lines.index(f"MLflow run {run.info.run_id}")
    assert lines[header + 1].split() == ["figure", "value", "±", "95%", "better"]
    printed = {line.split()[0]: line.split()[1:] for line in lines[header + 3:] if line.strip()}
    assert float(printed["final_loss_smoothed"][0]) == pytest.approx(run.data.metrics["final_loss_smoothed"], rel=1e-3)
    assert printed["final_loss_smoothed"][-1] == "lower"
    evaluated = {m for m in run.data.metrics if m.startswith("eval_") and not m.endswith("_ci95")}
    assert evaluated and evaluated <= set(printed)  # every figure of the evaluation is printed
    assert lines[-1] == lines[header + 2 + len(printed)]  # the table is the run's last output
