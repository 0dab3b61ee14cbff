"""Why a training run stops early, and its exit status: preemption, divergence, a failed save.

Each reason is an exception carrying its exit status; the binaries print its message and exit
with that status (``binary.explain_errors``), so a job scheduler can tell them apart:

  EXIT_PREEMPTED = 75  (EX_TEMPFAIL) SIGTERM/SIGINT/SIGUSR1: a checkpoint was saved; run the same
                       command again to resume.
  EXIT_DIVERGED = 65   (EX_DATAERR) the loss or gradient norm stayed NaN/Inf; the last good
                       checkpoint is intact.
  EXIT_SAVE_FAILED = 74 (EX_IOERR) a checkpoint could not be written (e.g. disk full); the previous
                       one is intact.

``Preemption`` turns SIGTERM/SIGINT into a request to stop after the current step, and SIGUSR1
too: the warning a scheduler sends ahead of a time limit (the Slurm script ``launch.submit``
writes asks for it 120 s before, ``--signal``, and requeues the job). With several processes all
must save the same step: SIGTERM is left to JAX's preemption service (its notifier owns SIGTERM
once ``jax.distributed`` is initialised, and tells every process), and
``multihost_utils.reached_preemption_sync_point(step)`` says when the agreed step is reached.
"""

from __future__ import annotations

import os
import signal
import threading

import jax
from absl import logging
from jax.experimental import multihost_utils

EXIT_PREEMPTED = 75
EXIT_DIVERGED = 65
EXIT_SAVE_FAILED = 74


class Stopped(Exception):
    """Training stopped before its last step; ``exit_status`` tells the scheduler why."""
    exit_status = 1


class Preempted(Stopped):
    """A SIGTERM/SIGINT/SIGUSR1 was honoured: the checkpoint at ``step`` is saved and complete;
    or, when the updates since ``skipped_since`` were NaN/Inf (skipped), none was saved and a
    rerun resumes from ``resume_step`` (None: from scratch)."""
    exit_status = EXIT_PREEMPTED

    def __init__(self, step: int, directory: str, *, skipped_since: int | None = None,
                 resume_step: int | None = None):
        self.step, self.resume_step = step, step if skipped_since is None else resume_step
        if skipped_since is None:
            super().__init__(f"preempted at step {step}: checkpoint saved in {directory}; run "
                             "the same command again to resume")
            return
        resume = (f"the checkpoint at step {resume_step}" if resume_step is not None else
                  "the start (no checkpoint was saved before them)")
        super().__init__(
            f"preempted at step {step}: no checkpoint saved, as every update since step "
            f"{skipped_since} was NaN/Inf (skipped); run the same command again to resume from "
            f"{resume} in {directory}")


class Diverged(Stopped):
    """The loss or gradient norm was not finite for ``train.max_nonfinite_steps`` steps in a row."""
    exit_status = EXIT_DIVERGED

    def __init__(self, step: int, first_bad: int, limit: int, last_good: int | None,
                 directory: str):
        self.step, self.first_bad, self.last_good = step, first_bad, last_good
        kept = (f"the last good checkpoint, step {last_good} in {directory}, is intact"
                if last_good is not None else f"no checkpoint was saved in {directory}")
        super().__init__(
            f"training stopped at step {step}: the loss or gradient norm was NaN/Inf at every "
            f"step since step {first_bad} (train.max_nonfinite_steps={limit} in a row); those "
            f"updates were skipped and nothing was saved from them; {kept}. Lower "
            "train.learning_rate (or raise train.warmup_steps), check the training data around "
            f"step {first_bad}, then run again (it resumes from the last good checkpoint)")


class SaveFailed(Stopped):
    """Writing the checkpoint at ``step`` failed (e.g. disk full); earlier ones are intact."""
    exit_status = EXIT_SAVE_FAILED

    def __init__(self, step: int | None, reason: str, last_good: int | None, directory: str):
        self.step, self.last_good = step, last_good
        which = f"at step {step}" if step is not None else "in progress"
        kept = (f"the checkpoint at step {last_good} is intact" if last_good is not None
                else "no earlier checkpoint exists")
        super().__init__(
            f"saving the checkpoint {which} in {directory} failed: {reason}; {kept}. Free disk "
            "space (or fix the directory's permissions), then run the same command again to "
            "resume" + (f" from step {last_good}" if last_good is not None else ""))


class Preemption:
    """While active (``with Preemption() as p``), SIGTERM, SIGINT and SIGUSR1 ask the loop to
    stop.

    ``p.reached(step)`` is True at the step to save and stop at: on one process, the first step
    that ends after a signal (a Python flag: no host sync); on several, the step all processes
    agreed on through JAX's preemption service. A second SIGINT aborts at once
    (KeyboardInterrupt). The previous handlers come back on exit.
    """

    def __init__(self):
        self.signal: int | None = None
        self._multiprocess = jax.process_count() > 1
        self._coordinated = True
        self._previous: dict[int, object] = {}

    def __enter__(self) -> Preemption:
        if threading.current_thread() is not threading.main_thread():
            return self  # only the main thread may set handlers; signals then act as usual
        # With several processes, SIGTERM belongs to JAX's preemption notifier (installed by
        # jax.distributed.initialize); replacing it would hide the notice from the other hosts.
        signals = (signal.SIGINT, signal.SIGUSR1) + ((signal.SIGTERM,) * (not self._multiprocess))
        for s in signals:
            self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self._previous.items():
            # None: the old handler was set outside Python and cannot be put back.
            signal.signal(s, signal.SIG_DFL if handler is None else handler)
        self._previous = {}

    def _handle(self, signum: int, frame) -> None:
        del frame
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: abort without saving
        first = self.signal is None
        self.signal = signum
        if self._multiprocess:
            # SIGINT and SIGUSR1 reach JAX's notifier as a SIGTERM, so every process learns of it.
            os.kill(os.getpid(), signal.SIGTERM)
        if first and jax.process_index() == 0:
            print(f"\nreceived {signal.Signals(signum).name}: saving a checkpoint after this "
                  "step, then stopping (Ctrl-C again aborts without saving)", flush=True)

    def reached(self, step: int) -> bool:
        """Whether to save at ``step`` and stop. Call it at every step, in order."""
        if not self._multiprocess:
            return self.signal is not None
        if not self._coordinated:
            return False
        try:
            return multihost_utils.reached_preemption_sync_point(step)
        except RuntimeError as e:  # the preemption service is off: SIGTERM ends the run as usual
            logging.warning("no coordinated preemption: %s", e)
            self._coordinated = False
            return False
