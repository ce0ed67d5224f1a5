"""The training module knows it runs as a DVC stage from $DVC_STAGE, which DVC sets for every stage
command: checked on the installed DVC with a real `dvc repro` of a one-stage repository."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.common import dvc_stage_name

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def test_dvc_stage_name_is_the_environment_variable_dvc_sets(monkeypatch):
    monkeypatch.delenv("DVC_STAGE", raising=False)
    assert dvc_stage_name() is None
    monkeypatch.setenv("DVC_STAGE", "")
    assert dvc_stage_name() is None
    monkeypatch.setenv("DVC_STAGE", "train")
    assert dvc_stage_name() == "train"


@pytest.mark.integration
def test_dvc_repro_runs_its_stage_command_with_dvc_stage_set(tmp_path):
    env = {key: value for key, value in os.environ.items() if not key.startswith("DVC_")}
    env["PYTHONPATH"] = str(PROJECT_ROOT)
    (tmp_path / "sub").mkdir()
    probe = f"{sys.executable} -c 'from pipeline.common import dvc_stage_name; print(dvc_stage_name())'"
    (tmp_path / "dvc.yaml").write_text(f"stages:\n  train:\n    cmd: {probe} > stage.txt\n    outs:\n      - stage.txt\n")
    (tmp_path / "sub" / "dvc.yaml").write_text(f"stages:\n  probe:\n    cmd: {probe} > stage.txt\n"
                                               f"    outs:\n      - stage.txt\n")
    dvc = [str(Path(sys.executable).parent / "dvc")]
    for command in (["init", "--no-scm"], ["repro"], ["repro", "sub/dvc.yaml:probe"]):
        done = subprocess.run(dvc + command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "stage.txt").read_text() == "train\n"
    assert (tmp_path / "sub" / "stage.txt").read_text() == "sub/dvc.yaml:probe\n"
    # the same command by hand, in the same folder, is not a stage
    by_hand = subprocess.run(probe, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert by_hand.stdout == "None\n"
