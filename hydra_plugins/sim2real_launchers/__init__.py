"""This project's submitit launchers (``conf/hydra/launcher``), where Hydra takes launchers
from: only a class in the ``hydra_plugins`` namespace may be one. What they add is in
``gan.launchers``."""

from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher

from gan.launchers import SaysFailedJobs


class LocalJobs(SaysFailedJobs, LocalLauncher):
    """``hydra/launcher=local_jobs``."""


class SlurmJobs(SaysFailedJobs, SlurmLauncher):
    """``hydra/launcher=slurm_jobs``."""
