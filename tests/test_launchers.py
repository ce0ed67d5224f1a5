"""The cluster launcher configs (conf/hydra/launcher/): the SLURM one composes onto submitit's SLURM
launcher, and its local stand-in, built from the same resources file, runs a real sweep of the
training module whose jobs log to the store named by MLFLOW_TRACKING_URI."""

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from sweep_support import (PROJECT_ROOT, assert_full_history, assert_vectors_artifact, run_training, sweep_runs,
                           train_command, write_tiny_corpus)

RESOURCES = OmegaConf.load(PROJECT_ROOT / "conf" / "hydra" / "launcher" / "resources" / "sweep_job.yaml")


def launcher_config(name: str, *overrides: str):
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"hydra/launcher={name}", *overrides], return_hydra_config=True)
    OmegaConf.resolve(cfg)  # ${hydra.sweep.dir} and ${hydra.job.name} point outside the launcher node
    return cfg.hydra.launcher


@pytest.mark.parametrize("name, launcher_class", [("cluster", "SlurmLauncher"), ("cluster_local", "LocalLauncher")])
def test_cluster_configs_share_one_resource_request(name, launcher_class):
    launcher = launcher_config(name)
    assert launcher._target_ == f"hydra_plugins.hydra_submitit_launcher.submitit_launcher.{launcher_class}"
    for key, value in OmegaConf.to_container(RESOURCES, resolve=False).items():
        if key != "submitit_folder":  # ${hydra.sweep.dir}/..., resolved in `launcher`
            assert launcher[key] == value, key
    assert launcher.submitit_folder.endswith("/.submitit/%j")
    assert launcher.cpus_per_task == 1 and launcher.timeout_min > 0
    # Hydra can build the launcher from it (submitit checks SLURM itself only when submitting).
    assert type(instantiate(launcher)).__name__ == launcher_class


def test_slurm_settings_are_overridable_from_the_command_line():
    launcher = launcher_config("cluster", "hydra.launcher.partition=cpu", "hydra.launcher.account=nlp",
                               "hydra.launcher.timeout_min=15", "+hydra.launcher.additional_parameters.mail-type=FAIL")
    assert (launcher.partition, launcher.account, launcher.timeout_min) == ("cpu", "nlp", 15)
    assert launcher.additional_parameters == {"mail-type": "FAIL"}


@pytest.mark.slow
def test_submitit_local_sweep_lands_in_the_store_of_mlflow_tracking_uri(sst_dir, tmp_path):
    iterations, log_every = 100, 10
    experiment = "submitit-sweep"
    tracking_uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    sweep_dir = tmp_path / "sweep"
    done = run_training(train_command(
        "-m", "hydra/launcher=cluster_local", f"hydra.sweep.dir={sweep_dir}",
        f"paths.processed={write_tiny_corpus(sst_dir, tmp_path / 'processed')}",
        f"paths.checkpoints={tmp_path / 'checkpoints'}", f"mlflow.experiment={experiment}",
        f"train.iterations={iterations}", f"train.log_every={log_every}", "train.checkpoint_every=50",
        "train.anneal_every=50", "train.lr=0.1,0.3"), tracking_uri)
    assert done.returncode == 0, done.stderr[-3000:]

    # The jobs ran as submitit jobs: one folder of submitit logs and results per job.
    job_logs = sorted(sweep_dir.glob(".submitit/*/*_log.out"))
    assert len(job_logs) == 2, list(sweep_dir.rglob("*"))
    assert sorted(sweep_dir.glob(".submitit/*/*_result.pkl"))

    client = MlflowClient(tracking_uri)
    parent, children = sweep_runs(client, experiment)
    assert parent.info.status == "FINISHED"
    assert sorted(child.data.params["train.lr"] for child in children) == ["0.1", "0.3"]
    for child in children:
        assert child.info.status == "FINISHED", child.data.tags.get("failure_reason")
        assert_full_history(client, child.info.run_id, iterations, log_every)
        assert_vectors_artifact(client, child.info.run_id, tmp_path / "downloads")


# What a launcher means for a job (pipeline.launcher), recognised by the class its config names.

@pytest.mark.parametrize("overrides, cpus, sequential, jobs_at_once", [
    ([], 8, True, 1),                                                    # Hydra's BasicLauncher
    (["hydra/launcher=basic"], 8, True, 1),
    (["hydra/launcher=joblib"], 8, False, 8),                            # joblib's n_jobs=-1: all CPUs
    (["hydra/launcher=joblib", "hydra.launcher.n_jobs=3"], 8, False, 3),
    (["hydra/launcher=joblib", "hydra.launcher.n_jobs=-2"], 8, False, 7),
    (["hydra/launcher=submitit_local"], 8, False, 1),                    # no cpus_per_task: the machine each
    (["hydra/launcher=submitit_local", "hydra.launcher.cpus_per_task=2"], 8, False, 4),
    (["hydra/launcher=cluster_local"], 4, False, 4),                     # cpus_per_task 1 (resources file)
    (["hydra/launcher=cluster"], 4, False, 4),                           # SLURM, from the same file
])
def test_launcher_plans_of_composed_launcher_configs(monkeypatch, overrides, cpus, sequential, jobs_at_once):
    from pipeline.launcher import launcher_plan

    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=overrides, return_hydra_config=True)
    plan = launcher_plan(cfg.hydra.launcher, cpus)
    assert (plan.sequential, plan.jobs_at_once) == (sequential, jobs_at_once)


def test_a_launcher_is_known_by_its_class_not_by_its_name(monkeypatch):
    from pipeline.launcher import launcher_plan

    # a subclass of the BasicLauncher whose path does not say "basic" still runs the jobs in turn
    assert launcher_plan(OmegaConf.create({"_target_": "launcher_support.InTurnLauncher"}), 8).sequential
    # and a launcher whose path does say "basic" but is not one is not taken for it
    assert not launcher_plan(OmegaConf.create({"_target_": "launcher_support.basic_parallel.Launcher"}), 8).sequential
    # SLURM's own count wins over the config's request
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "4")
    cluster = OmegaConf.create({"_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
                                "cpus_per_task": 1})
    assert launcher_plan(cluster, 8).jobs_at_once == 2


def test_outside_a_multirun_the_plan_is_a_single_run():
    from pipeline.launcher import SINGLE_RUN, current_launcher_plan

    assert current_launcher_plan(8) == SINGLE_RUN
