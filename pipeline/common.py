"""What every stage shares: the Hydra entry point on conf/, project paths and one-line errors.

A stage module looks like

    @stage
    def main(cfg):
        ...

    if __name__ == "__main__":
        main()

and runs by hand on conf/ (`python -m pipeline.X key=value`) or, from dvc.yaml, on the composed
params.yaml (`--config-dir . --config-name params`).
"""
import functools
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class StageError(Exception):
    """A problem the user can fix: printed as one line (what is wrong, what to do), exit status 1."""


def project_path(path: str | Path) -> Path:
    """Resolve a configured path: relative paths are relative to the project root, not the cwd."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else PROJECT_ROOT / path


def dvc_stage_name() -> str | None:
    """The DVC stage this process runs as ("train"; "dir/dvc.yaml:name" outside the root), None
    when DVC did not start it. DVC puts $DVC_STAGE into the environment of every stage command
    (dvc.stage.run.prepare_kwargs), in `dvc repro`, `dvc exp run` and queued experiments alike."""
    return os.environ.get("DVC_STAGE") or None


def stage(task):
    """Make `task(cfg)` a Hydra app on conf/config.yaml that checks the whole configuration first
    (pipeline.config.validate) and reports StageError as one line."""

    @functools.wraps(task)
    def run(cfg: DictConfig):
        from pipeline.config import validate  # imports w2v; keep `import pipeline.common` light

        try:
            validate(cfg)
            return task(cfg)
        except StageError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(1)

    return hydra.main(config_path=str(PROJECT_ROOT / "conf"), config_name="config", version_base="1.3")(run)
