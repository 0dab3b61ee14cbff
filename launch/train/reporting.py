"""Where numbers go: stdout progress lines and the metric writers (`metrics.jsonl`, TensorBoard,
W&B: `writers.py`). Process 0 only."""

from __future__ import annotations

import math
import os
import time

import jax

from launch.train import storage
from launch.train import writers as writers_lib


def say(message: str) -> None:
    """A line for the person watching (process 0 only)."""
    if jax.process_index() == 0:
        print(message, flush=True)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"
    return str(v)


def writers_of(cfg) -> str:
    """``train.writers``; the default for a config from before it existed."""
    return cfg.train.get("writers", writers_lib.DEFAULT)


def check_writers(cfg) -> None:
    """Refuses writers the run could not make (before it starts; ``writers.check``).

    Raises:
      ValueError: an unknown writer, or wandb without the wandb package.
    """
    writers_lib.check(writers_of(cfg))


class MetricLogger:
    """Each logged step's scalars to the writers ``train.writers`` names (``writers.py``:
    ``metrics.jsonl``, TensorBoard, W&B), and a progress line to stdout. Process 0 only.

    A resumed run first drops rows past the restored step from ``metrics.jsonl``, so it reads
    as one run.
    """

    def __init__(self, workdir: str, *, resume_step: int = 0,
                 writers: str = writers_lib.DEFAULT, config: dict | None = None):
        self.active = jax.process_index() == 0
        self._writers: list[writers_lib.Writer] = []
        if not self.active:
            return
        storage.makedirs(workdir)
        self._writers = writers_lib.make(writers, workdir, resume_step=resume_step,
                                         config=config)

    @classmethod
    def for_run(cls, cfg, workdir: str, *, resume_step: int = 0) -> MetricLogger:
        """The logger of a run of ``cfg`` (its ``train.writers``; W&B gets the config)."""
        return cls(workdir, resume_step=resume_step, writers=writers_of(cfg),
                   config=cfg.to_dict())

    def write(self, step: int, scalars: dict, *, echo: bool = True) -> None:
        if not self.active:
            return
        values = {k: float(v) for k, v in scalars.items()}
        for writer in self._writers:
            writer.write_scalars(int(step), values)
            writer.flush()
        if echo:
            record = {"step": int(step), **values}
            print(" ".join(f"{k}={_fmt(v)}" for k, v in record.items()), flush=True)

    def close(self) -> None:
        for writer in self._writers:
            writer.close()
        self._writers = []


class Throughput:
    """Tokens/s, ETA and, when both are known, MFU over the last logging window (the first
    window excludes compilation).

    MFU (model FLOPs utilisation) = ``flops_per_step`` (``launch.train.flops.model_flops``) / the
    step time / ``peak_flops`` (the peak FLOP/s of all devices together).
    """

    def __init__(self, start_step: int, total_steps: int, tokens_per_step: int, *,
                 flops_per_step: float = 0.0, peak_flops: float = 0.0):
        self.total = total_steps
        self.tokens_per_step = tokens_per_step
        self.flops_per_step, self.peak_flops = flops_per_step, peak_flops
        self._mark(start_step)

    def _mark(self, step: int) -> None:
        self.last_step, self.last_time = step, time.perf_counter()

    def restart(self, step: int) -> None:
        """Call after a pause that should not count (compilation, eval, checkpointing)."""
        self._mark(step)

    def update(self, step: int) -> dict:
        elapsed = time.perf_counter() - self.last_time
        steps = step - self.last_step
        self._mark(step)
        if steps <= 0 or elapsed <= 0:
            return {}
        per_step = elapsed / steps
        out = {"tokens_per_s": self.tokens_per_step / per_step,
               "steps_per_s": 1.0 / per_step,
               "eta_min": math.ceil(per_step * (self.total - step) / 6) / 10}
        if self.flops_per_step > 0 and self.peak_flops > 0:
            out["mfu"] = self.flops_per_step / per_step / self.peak_flops
        return out


def parse_profile_steps(spec: str) -> tuple[int, int] | None:
    """``"START:STOP"`` → (START, STOP): trace steps START..STOP-1, like a Python slice.

    Raises:
      ValueError: anything but "" or two integers 1 <= START < STOP.
    """
    if not spec:
        return None
    start, sep, stop = spec.partition(":")
    try:
        first, end = int(start), int(stop)
    except ValueError:
        first = end = 0
    if not sep or not 1 <= first < end:
        raise ValueError(f"train.profile_steps={spec!r}: write START:STOP to trace steps START "
                         "to STOP-1 (e.g. --config.train.profile_steps=10:13; steps count from "
                         "1), or leave it empty for no trace")
    return first, end


class Profiler:
    """A ``jax.profiler`` trace of the steps ``profile_steps`` names, in ``WORKDIR/profile``.

    Open it with TensorBoard's profile plugin or Perfetto. Only process 0 traces. Call
    ``step(step, state)`` right after each step is dispatched; the trace starts before the first
    traced step runs and ends once the last traced step (or the run's last step) has finished.
    """

    def __init__(self, workdir: str, profile_steps: str, *, first_step: int, last_step: int):
        window = parse_profile_steps(profile_steps)
        self.dir = os.path.join(workdir, "profile")
        self.first, self.end = window or (0, 0)
        self.last_step = last_step
        self.active, self.started_at = False, 0
        if window and jax.process_index() == 0 and self.first <= first_step < self.end:
            self._start(first_step)

    def _start(self, step: int) -> None:
        jax.profiler.start_trace(self.dir)
        self.active, self.started_at = True, step

    def step(self, step: int, state) -> None:
        """After step ``step`` was dispatched (``state``: its output, to wait for)."""
        if self.active and (step >= self.end - 1 or step >= self.last_step):
            jax.block_until_ready(state)
            jax.profiler.stop_trace()
            self.active = False
            say(f"profile of steps {self.started_at}-{step}: {self.dir}")
        elif (not self.active and jax.process_index() == 0 and step + 1 == self.first
              and step < self.last_step):
            self._start(step + 1)
