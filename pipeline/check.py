"""Stage `check`: reject a bad params.yaml before any stage removes an output.

    dvc repro                     # check runs first: every other stage depends on its report
    python -m pipeline.check train.window=abc      # by hand on conf/: one error line, exit 1

DVC deletes a stage's outputs right before it runs the stage's command, so a value that the
train stage would reject cost models/ before the rejection. This stage checks every value the
stages read (the same checks they apply themselves) and is the first stage of the pipeline:
when it fails, DVC stops before any other stage has started, and every output stays in place.
Its report holds no values, so it never changes: a passing check reruns nothing downstream.
"""
from omegaconf import DictConfig

from pipeline.common import project_path, stage
from w2v.atomic import atomic_write_text

REPORT = "params_check.txt"  # in paths.reports


@stage
def main(cfg: DictConfig) -> None:  # `stage` has applied pipeline.config.validate: a bad value never gets here
    atomic_write_text(project_path(cfg.paths.reports) / REPORT, "the parameters passed pipeline.check\n")


if __name__ == "__main__":
    main()
