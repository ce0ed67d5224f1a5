"""Launcher classes for tests/test_launchers.py: a BasicLauncher under another name, and a
launcher that is not one under a name that says "basic"."""
from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra.plugins.launcher import Launcher


class InTurnLauncher(BasicLauncher):
    pass


class BasicLookalike(Launcher):  # launcher_support.basic_parallel.Launcher
    def setup(self, *, hydra_context, task_function, config):
        pass

    def launch(self, job_overrides, initial_job_idx):
        raise NotImplementedError
