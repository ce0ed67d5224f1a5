"""Compose conf/experiment.yaml (the experiment settings) into params.yaml exactly as `dvc exp run`
does (DVC's own Hydra composition, `hydra.config_name = experiment` in .dvc/config).

    python -m pipeline.params                 # conf/ -> params.yaml
    python -m pipeline.params train.lr=0.1    # with overrides, as `dvc exp run -S train.lr=0.1`

`dvc repro` reads params.yaml without composing, so `make repro` runs this first.
"""
import sys
from pathlib import Path

from dvc.utils.hydra import compose_and_dump

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_NAME = "experiment"  # the settings only: paths and tools' options stay out of params.yaml


def compose_params(output_file: Path, overrides: list[str]) -> None:
    """Write the composition of conf/experiment.yaml with `overrides` to `output_file` (YAML)."""
    compose_and_dump(
        output_file,
        config_dir=str(REPO_ROOT / "conf"),
        config_module=None,
        config_name=CONFIG_NAME,
        plugins_path=str(REPO_ROOT),
        overrides=overrides,
    )


if __name__ == "__main__":
    compose_params(REPO_ROOT / "params.yaml", sys.argv[1:])
