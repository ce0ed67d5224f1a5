"""What the Hydra launcher of a multirun means for one of its jobs.

Hydra's own BasicLauncher runs the jobs one after another in the launching process: a job may
show a progress bar and use every CPU. Any other launcher runs them side by side (joblib's
processes, submitit's local processes or SLURM tasks): no progress bar, whose lines would
interleave, and the CPUs are shared by the jobs that run at once on this machine. The launcher is
recognised by the class its config's `_target_` names, not by its spelling.
"""
import os
from dataclasses import dataclass

from omegaconf import DictConfig


@dataclass(frozen=True)
class LauncherPlan:
    sequential: bool   # the jobs run one after another in this process (Hydra's BasicLauncher)
    jobs_at_once: int  # jobs of the sweep that share this machine's CPUs at a time (>= 1)


SINGLE_RUN = LauncherPlan(sequential=True, jobs_at_once=1)


def _launcher_class(target: str) -> type | None:
    from hydra.utils import get_class

    try:
        return get_class(target)
    except Exception:  # a plugin that is not installed here: nothing is known about it
        return None


def _is_subclass(cls: type | None, module: str, name: str) -> bool:
    """Whether cls derives from module.name; False when that plugin is not installed."""
    if cls is None:
        return False
    try:
        base = getattr(__import__(module, fromlist=[name]), name)
    except ImportError:
        return False
    return issubclass(cls, base)


def launcher_plan(launcher: DictConfig, cpus: int) -> LauncherPlan:
    """The plan of a multirun under `launcher` (the `hydra.launcher` node) on `cpus` CPUs.

    BasicLauncher: sequential, 1 job at a time. JoblibLauncher: its n_jobs at a time (a negative
    n_jobs counts back from all CPUs, as joblib does: -1 is all of them). A submitit launcher: as
    many as fit with its cpus_per_task each ($SLURM_CPUS_PER_TASK in a SLURM job; unset: one job
    the whole machine). Any other launcher: parallel, 1 job on this machine's CPUs.
    """
    cls = _launcher_class(str(launcher.get("_target_", "")))
    if _is_subclass(cls, "hydra._internal.core_plugins.basic_launcher", "BasicLauncher"):
        return SINGLE_RUN
    if _is_subclass(cls, "hydra_plugins.hydra_joblib_launcher.joblib_launcher", "JoblibLauncher"):
        n_jobs = launcher.get("n_jobs") or 1
        return LauncherPlan(False, max(1, cpus + 1 + n_jobs if n_jobs < 0 else n_jobs))
    if _is_subclass(cls, "hydra_plugins.hydra_submitit_launcher.submitit_launcher", "BaseSubmititLauncher"):
        per_task = int(os.environ.get("SLURM_CPUS_PER_TASK") or launcher.get("cpus_per_task") or cpus)
        return LauncherPlan(False, max(1, cpus // max(1, per_task)))
    return LauncherPlan(False, 1)


def current_launcher_plan(cpus: int | None = None) -> LauncherPlan:
    """launcher_plan of this process's Hydra multirun on `cpus` CPUs (None: os.cpu_count());
    SINGLE_RUN outside one (no Hydra app, a single run)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return SINGLE_RUN
    return launcher_plan(HydraConfig.get().launcher, cpus or os.cpu_count() or 1)
