"""The one training loop every job runs (pretraining, fine-tuning): steps, logging, evaluation,
checkpoints, preemption and the non-finite halt, on one schedule.

The job says what happens at each point (``Hooks``: its step, its eval, its save, where rows go);
the loop says when, and owns how a run stops: a preempted run saves the step it reached and
raises ``stopping.Preempted``; a halted one (``train_step`` counted
``max_nonfinite_steps`` NaN/Inf steps in a row) raises ``stopping.Diverged`` at the next
boundary, before it evaluates or saves anything. While NaN/Inf steps are being skipped (fewer
than the limit so far) nothing is saved either: the state is then the last good step's under a
later step number, and saving it would rotate the checkpoints from before the streak away.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
from absl import logging

from launch.train import checkpoint, reporting, step_fns, stopping
from launch.train.train_state import TrainState


@dataclasses.dataclass(frozen=True)
class Schedule:
    """When the loop does what. Steps count from 1; a run covers ``start_step + 1 … steps``.
    Every cadence also fires at the last step.

    Attributes:
      steps: the last step.
      start_step: the step the state was restored at (0 for a fresh run).
      log_every: log the training metrics every this many steps.
      eval_every: evaluate every this many steps.
      checkpoint_every: save every this many steps.
      max_nonfinite_steps: NaN/Inf steps in a row that halt the run.
    """
    steps: int
    start_step: int
    log_every: int
    eval_every: int
    checkpoint_every: int
    max_nonfinite_steps: int

    def due(self, step: int, every: int) -> bool:
        """Whether a cadence of ``every`` steps fires at ``step`` (always at the last)."""
        return step % every == 0 or step == self.steps


@dataclasses.dataclass(frozen=True)
class Hooks:
    """What a job does at each point of the loop.

    Attributes:
      train: ``(state) -> (state, metrics)``: one step on the next batch; ``metrics`` are
        (sum, weight) pairs (``step_fns.reduce_metrics``).
      log: ``(step, scalars)``: writes one metrics row (training or eval).
      evaluate: ``(step, state) -> metrics``: the eval metrics, logged as they are.
      save: ``(step, state)``: starts the checkpoint of ``state`` at ``step``; never called
        while the last update was NaN/Inf (skipped).
      learning_rate: the schedule (updates so far → rate), logged with the training metrics;
        None logs no rate.
      finish: waits for the saves the hooks started beyond the checkpoint manager's (e.g. the
        best parameters); called before the loop returns or stops for a preemption.
    """
    train: Callable[[TrainState], tuple[TrainState, dict]]
    log: Callable[[int, dict], None]
    evaluate: Callable[[int, TrainState], dict]
    save: Callable[[int, TrainState], None]
    learning_rate: Callable[[int], float] | None = None
    finish: Callable[[], None] = lambda: None


def run(schedule: Schedule, state: TrainState, hooks: Hooks, manager, *,
        meter: reporting.Throughput, profiler: reporting.Profiler | None = None):
    """Steps ``schedule.start_step + 1 … schedule.steps``; at each: train, log, the halt check
    (at any boundary), evaluate, save, stop if preempted.

    ``manager`` is the checkpoint manager ``hooks.save`` saves with, waited for before the loop
    returns or stops. ``meter`` (tokens/s of each logging window) restarts after the first step,
    which compiles, and after each evaluation. ``profiler`` traces the steps it names.

    Returns:
      (state, the last step, the last eval metrics or {} when no step evaluated).

    Raises:
      stopping.Preempted: after SIGTERM/SIGINT, once the state at that step is saved.
      stopping.Diverged: the state is halted; found at the next log, eval or checkpoint
        boundary, and never saved (nor is any state since the first NaN/Inf step).
      stopping.SaveFailed: a checkpoint could not be written.
    """
    window, evaluated = [], {}
    step = saved = schedule.start_step
    with stopping.Preemption() as preemption:
        for step in range(schedule.start_step + 1, schedule.steps + 1):
            state, metrics = hooks.train(state)
            if profiler is not None:
                profiler.step(step, state)
            window.append(metrics)
            if step == schedule.start_step + 1:
                jax.block_until_ready(state.step)
                meter.restart(step)  # the first step compiles; keep it out of tokens/s
            log = schedule.due(step, schedule.log_every)
            run_eval = schedule.due(step, schedule.eval_every)
            save = schedule.due(step, schedule.checkpoint_every)
            preempted = preemption.reached(step)  # at every step, in order (a sync point)
            if log:
                hooks.log(step, _train_scalars(window, step, state, hooks, meter))
                window = []
            if log or run_eval or save or preempted:
                in_a_row = halt_if_diverged(state, step, schedule.max_nonfinite_steps, manager)
            if run_eval:
                evaluated = hooks.evaluate(step, state)
                hooks.log(step, evaluated)
            if save and in_a_row:
                logging.warning("step %d: no checkpoint saved: the last %d update(s) were NaN/Inf "
                                "and skipped; the newest checkpoint stays the one before step %d",
                                step, in_a_row, step - in_a_row + 1)
            elif save:
                hooks.save(step, state)
                saved = step
            if run_eval:  # the eval and its save are no training time
                meter.restart(step)
            if preempted and step != schedule.steps:  # at the last step the run is done
                _stop(step, state, saved, hooks, manager, in_a_row)
    hooks.finish()
    checkpoint.finish(manager)
    return state, step, evaluated


def _train_scalars(window: list[dict], step: int, state: TrainState, hooks: Hooks,
                   meter: reporting.Throughput) -> dict:
    """The training metrics of the steps since the last log, the rate, skips and throughput."""
    scalars = step_fns.reduce_metrics(window)
    if hooks.learning_rate is not None:
        scalars["learning_rate"] = float(hooks.learning_rate(step - 1))
    scalars.update(skipped_steps=int(state.skipped_steps), **meter.update(step))
    return scalars


def _stop(step: int, state: TrainState, saved: int, hooks: Hooks, manager,
          in_a_row: int) -> None:
    """Saves ``state`` at ``step`` (once; not while ``in_a_row`` NaN/Inf steps are being
    skipped) and waits for every save.

    Raises:
      stopping.Preempted: always, once the checkpoint at ``step`` (or the newest) is complete.
    """
    if saved != step and not in_a_row:
        hooks.save(step, state)
    hooks.finish()
    checkpoint.finish(manager)
    if not in_a_row:
        raise stopping.Preempted(step, str(manager.directory))
    steps = checkpoint.complete_steps(manager.directory)
    raise stopping.Preempted(step, str(manager.directory), skipped_since=step - in_a_row + 1,
                             resume_step=steps[-1] if steps else None)


def halt_if_diverged(state: TrainState, step: int, limit: int, manager) -> int:
    """At a log, eval or checkpoint boundary: stops a halted run (``train_step``) before it
    evaluates or saves anything, once the saves already started are complete.

    Returns:
      How many steps in a row, up to ``step``, were NaN/Inf (0: the last update was good).

    Raises:
      stopping.Diverged: naming the step, the first NaN/Inf step and the newest checkpoint from
        before it.
    """
    in_a_row = int(jax.device_get(state.nonfinite_run))  # the only host sync, at a boundary
    if in_a_row < limit:
        return in_a_row
    checkpoint.finish(manager)
    first_bad = step - in_a_row + 1
    good = [s for s in checkpoint.complete_steps(manager.directory) if s < first_bad]
    raise stopping.Diverged(step, first_bad, limit, good[-1] if good else None,
                            str(manager.directory))
