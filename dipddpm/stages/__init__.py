"""Stage schedulers and stage timesteps for staged / guided DIP."""

from dipddpm.stages.schedulers import (
    STAGE_SCHEDULERS,
    stage_counts,
    stage_of_iteration,
)

__all__ = ["STAGE_SCHEDULERS", "stage_counts", "stage_of_iteration"]
