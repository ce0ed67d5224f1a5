"""Compose conf/experiment.yaml (the experiment settings) into params.yaml exactly as `dvc exp run`
does (DVC's own Hydra composition, `hydra.config_name = experiment` in .dvc/config).

    python -m pipeline.params                 # conf/ (+ your local layer) -> params.yaml
    python -m pipeline.params train.lr=0.1    # with overrides, as `dvc exp run -S train.lr=0.1`
    python -m pipeline.params --without-local # the committed params.yaml: conf/ without the layer

`dvc repro` reads params.yaml without composing, so `make repro` runs this first. The local layer
(LOCAL_LAYER, git-ignored) is composed like every other config; the params.yaml in git is the
composition without it (tests/test_params.py).
"""
import sys
from pathlib import Path

from dvc.utils.hydra import compose_and_dump

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_NAME = "experiment"  # the settings only: paths and tools' options stay out of params.yaml
LOCAL_LAYER = REPO_ROOT / "conf" / "local" / "local.yaml"  # the `optional local@_global_` default of conf/experiment.yaml
WITHOUT_LOCAL_LAYER = "~local@_global_"  # the Hydra override that leaves it out


def compose_params(output_file: Path, overrides: list[str], local_layer: bool = True) -> None:
    """Write the composition of conf/experiment.yaml with `overrides` to `output_file` (YAML);
    local_layer=False leaves conf/local/local.yaml out."""
    if not local_layer and LOCAL_LAYER.is_file():
        overrides = [*overrides, WITHOUT_LOCAL_LAYER]
    compose_and_dump(
        output_file,
        config_dir=str(REPO_ROOT / "conf"),
        config_module=None,
        config_name=CONFIG_NAME,
        plugins_path=str(REPO_ROOT),
        overrides=overrides,
    )


if __name__ == "__main__":
    arguments = sys.argv[1:]
    compose_params(REPO_ROOT / "params.yaml", [a for a in arguments if a != "--without-local"],
                   local_layer="--without-local" not in arguments)
