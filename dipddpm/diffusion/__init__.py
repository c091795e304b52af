"""The noise process (schedules, forward process, posterior) and the reverse-chain samplers."""

from dipddpm.diffusion.process import DiffusionProcess
from dipddpm.diffusion.schedules import SCHEDULES, make_betas

__all__ = ["SCHEDULES", "DiffusionProcess", "make_betas"]
