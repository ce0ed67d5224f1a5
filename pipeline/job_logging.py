"""A logging filter that prefixes every log line of a multirun job with the job's number and its
swept values (`[#3 lr=1,window=5] ...`), so that the interleaved lines of parallel jobs say which
job they come from. Installed by conf/hydra/job_logging/w2v.yaml; outside a multirun it adds nothing.
"""
import json
import logging
import os
from pathlib import Path



def short_overrides(overrides: list[str]) -> str:
    """`train.lr=1 train.window=5` -> `lr=1,window=5` (the last part of each key)."""
    return ",".join(f"{key.rsplit('.', 1)[-1]}={value}" for key, _, value in (o.partition("=") for o in overrides))


def job_prefix() -> str:
    """`[#<job number> <swept values>] ` in a multirun job, else ""."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return ""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN:
        return ""
    overrides = list(hydra_cfg.overrides.task)
    from pipeline.sweep import SWEEP_FILE_VARIABLE

    path = os.environ.get(SWEEP_FILE_VARIABLE)
    if path and Path(path).is_file():
        swept = set(json.loads(Path(path).read_text(encoding="utf-8")).get("swept_keys", []))
        overrides = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") in swept] or overrides
    return f"[#{hydra_cfg.job.num} {short_overrides(overrides)}] "


class JobPrefix(logging.Filter):
    """Sets `record.job_prefix` (used by the format of conf/hydra/job_logging/w2v.yaml)."""

    def __init__(self):
        super().__init__()
        self.prefix = None

    def filter(self, record: logging.LogRecord) -> bool:
        if self.prefix is None:  # computed at the first record: the job's Hydra config is set by then
            try:
                self.prefix = job_prefix()
            except Exception:  # never lose a log line over its prefix
                self.prefix = ""
        record.job_prefix = self.prefix
        return True
