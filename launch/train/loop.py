"""The training loop's boundaries: stopping a diverged run."""

from __future__ import annotations

import jax

from launch.train import checkpoint, stopping
from launch.train.train_state import TrainState


def halt_if_diverged(state: TrainState, step: int, limit: int, manager) -> None:
    """At a log, eval or checkpoint boundary: stops a halted run (``train_step``) before it
    evaluates or saves anything, once the saves already started are complete.

    Raises:
      stopping.Diverged: naming the step, the first NaN/Inf step and the last good checkpoint.
    """
    run = int(jax.device_get(state.nonfinite_run))  # the only host sync, at a boundary
    if run < limit:
        return
    checkpoint.finish(manager)
    steps = checkpoint.complete_steps(manager.directory)
    raise stopping.Diverged(step, step - run + 1, limit, steps[-1] if steps else None,
                            str(manager.directory))
