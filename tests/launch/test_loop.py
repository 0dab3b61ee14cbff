"""The training loop itself, around fake hooks (no model): when it logs, evaluates and saves,
how a preemption stops it and how a halted state stops it before anything is evaluated or saved."""

import logging
import os
import signal

import numpy as np
import pytest

from launch.train import checkpoint, loop, reporting, stopping, train_state


class _FakeManager:
    """What the loop asks of a checkpoint manager: a directory and waiting for saves."""

    def __init__(self, directory):
        self.directory, self.waits = directory, 0

    def wait_until_finished(self):
        self.waits += 1


class _Job:
    """Hooks that record every call as (what, step, ...) in ``events``; the step ``signal_at``
    receives SIGTERM while it runs, and from ``bad_from`` on (up to ``bad_until``, exclusive,
    when given) every step is NaN/Inf."""

    def __init__(self, tmp_path, *, signal_at: int = 0, bad_from: int = 0, bad_until: int = 0,
                 with_rate=True):
        self.manager = _FakeManager(tmp_path / "checkpoints")
        self.events, self.signal_at, self.bad_from = [], signal_at, bad_from
        self.bad_until = bad_until
        self.hooks = loop.Hooks(
            train=self.train, log=lambda step, row: self.events.append(("log", step, row)),
            evaluate=self.evaluate, save=self.save, finish=self.finish,
            learning_rate=(lambda updates: updates / 100) if with_rate else None)

    def train(self, s):
        step = int(s.step) + 1
        self.events.append(("train", step))
        if step == self.signal_at:
            os.kill(os.getpid(), signal.SIGTERM)
        bad = bool(self.bad_from) and step >= self.bad_from and not (
            self.bad_until and step >= self.bad_until)
        return (s.replace(step=np.int32(step), skipped_steps=s.skipped_steps + bad,
                          nonfinite_run=(s.nonfinite_run + 1) * bad),
                {"loss": (np.float32(step), np.float32(1.0))})

    def evaluate(self, step, s):
        self.events.append(("evaluate", step))
        return {"eval/loss": float(step) / 10}

    def save(self, step, s):
        assert int(s.step) == step
        self.events.append(("save", step))
        (self.manager.directory / str(step)).mkdir(parents=True)  # a complete checkpoint

    def finish(self):
        self.events.append(("finish",))

    def kinds(self, kind: str) -> list[int]:
        return [e[1] for e in self.events if e[0] == kind]

    def rows(self) -> list[tuple[int, dict]]:
        return [(e[1], e[2]) for e in self.events if e[0] == "log"]


def _state(step: int = 0):
    zero = np.int32(0)
    return train_state.TrainState(step=np.int32(step), params={}, opt_state=(),
                                  skipped_steps=zero, nonfinite_run=zero)


def _run(job, *, steps=10, start=0, log=3, evals=4, saves=5, limit=2, profiler=None):
    schedule = loop.Schedule(steps=steps, start_step=start, log_every=log, eval_every=evals,
                             checkpoint_every=saves, max_nonfinite_steps=limit)
    return loop.run(schedule, _state(start), job.hooks, job.manager,
                    meter=reporting.Throughput(start, steps, 1), profiler=profiler)


class _Profiler:
    def __init__(self):
        self.steps = []

    def step(self, step, state):
        assert int(state.step) == step  # right after that step
        self.steps.append(step)


def test_logs_evaluates_and_saves_on_schedule_and_always_at_the_last_step(tmp_path):
    job, profiler = _Job(tmp_path), _Profiler()
    state, step, evaluated = _run(job, profiler=profiler)
    assert int(state.step) == step == 10 and evaluated == {"eval/loss": 1.0}
    assert job.kinds("train") == profiler.steps == list(range(1, 11))
    assert job.kinds("evaluate") == [4, 8, 10] and job.kinds("save") == [5, 10]
    rows = job.rows()
    assert [s for s, _ in rows] == [3, 4, 6, 8, 9, 10, 10]  # training rows and eval rows
    train_rows = [r for _, r in rows if "loss" in r]
    assert [r["loss"] for r in train_rows] == [2.0, 5.0, 8.0, 10.0]  # each window's mean
    assert list(train_rows[0])[:3] == ["loss", "learning_rate", "skipped_steps"]
    assert [r["learning_rate"] for r in train_rows] == [0.02, 0.05, 0.08, 0.09]  # updates before
    assert rows[-1] == (10, {"eval/loss": 1.0})
    # At step 10: the training row, then the eval and its row, then the save; then every wait.
    assert job.events[-5:] == [("log", 10, rows[-2][1]), ("evaluate", 10),
                               ("log", 10, {"eval/loss": 1.0}), ("save", 10), ("finish",)]
    assert job.manager.waits == 1  # the manager's saves, waited for once at the end


def test_a_resumed_run_starts_after_the_restored_step_and_logs_no_rate_when_none(tmp_path):
    job = _Job(tmp_path, with_rate=False)
    _, step, _ = _run(job, start=6)
    assert job.kinds("train") == [7, 8, 9, 10] and step == 10
    assert [r["loss"] for _, r in job.rows() if "loss" in r] == [8.0, 10.0]  # 7-9, then 10
    assert all("learning_rate" not in r for _, r in job.rows())


def test_nothing_left_to_run_returns_the_restored_state(tmp_path):
    job = _Job(tmp_path)
    state, step, evaluated = _run(job, start=10)
    assert step == 10 and evaluated == {} and int(state.step) == 10
    assert job.events == [("finish",)]


@pytest.mark.parametrize("signal_at, saves", [(6, [5, 6]), (5, [5])])
def test_a_preempted_step_is_saved_once_then_the_loop_stops(tmp_path, signal_at, saves):
    handler = signal.getsignal(signal.SIGTERM)
    job = _Job(tmp_path, signal_at=signal_at)
    with pytest.raises(stopping.Preempted) as stop:
        _run(job)
    assert stop.value.step == signal_at and stop.value.exit_status == 75
    assert job.kinds("train") == list(range(1, signal_at + 1))  # no step after it
    assert job.kinds("save") == saves and job.events[-1] == ("finish",)
    assert str(stop.value) == (f"preempted at step {signal_at}: checkpoint saved in "
                               f"{tmp_path}/checkpoints; run the same command again to resume")
    assert signal.getsignal(signal.SIGTERM) is handler


def test_a_preemption_at_the_last_step_just_finishes_the_run(tmp_path):
    job = _Job(tmp_path, signal_at=10)
    _, step, _ = _run(job)
    assert step == 10 and job.kinds("save") == [5, 10] and job.events[-1] == ("finish",)


def test_a_halted_state_stops_at_the_next_boundary_before_evaluating_or_saving(tmp_path):
    job = _Job(tmp_path, bad_from=4)  # halted at step 5 (limit 2): a log, eval or save boundary?
    with pytest.raises(stopping.Diverged) as stop:
        _run(job, log=7, evals=6, saves=3)  # no boundary at 5: the next one is the eval at 6
    assert stop.value.step == 6 and stop.value.first_bad == 4 and stop.value.last_good == 3
    assert stop.value.exit_status == 65
    assert job.kinds("train") == list(range(1, 7))
    assert job.kinds("save") == [3] and job.kinds("evaluate") == [] and job.rows() == []
    assert job.manager.waits == 1  # the saves in flight were waited for before it names one
    assert checkpoint.complete_steps(job.manager.directory) == [3]


def test_nothing_is_saved_while_nonfinite_steps_are_being_skipped(tmp_path, caplog):
    """Steps 4-6 are NaN/Inf (under the limit of 5): the save due at 5 would hold step 3's
    parameters under step 5's number and rotate older checkpoints away; it is skipped, said so."""
    job = _Job(tmp_path, bad_from=4, bad_until=7)
    with caplog.at_level(logging.WARNING):
        _, step, _ = _run(job, steps=12, log=12, evals=12, saves=5, limit=5)
    assert step == 12 and job.kinds("save") == [10, 12]
    assert job.kinds("evaluate") == [12]
    assert "step 5: no checkpoint saved: the last 2 update(s) were NaN/Inf and skipped; the " \
           "newest checkpoint stays the one before step 4" in caplog.text


def test_a_preemption_during_a_nonfinite_streak_saves_nothing_and_says_where_it_resumes(
        tmp_path):
    job = _Job(tmp_path, signal_at=7, bad_from=6)
    with pytest.raises(stopping.Preempted) as stop:
        _run(job, saves=5, limit=5)
    assert stop.value.step == 7 and stop.value.resume_step == 5
    assert stop.value.exit_status == 75
    assert job.kinds("save") == [5] and job.events[-1] == ("finish",)
    assert str(stop.value) == (
        "preempted at step 7: no checkpoint saved, as every update since step 6 was NaN/Inf "
        "(skipped); run the same command again to resume from the checkpoint at step 5 in "
        f"{tmp_path}/checkpoints")
    job = _Job(tmp_path / "fresh", signal_at=2, bad_from=1)
    with pytest.raises(stopping.Preempted, match=r"resume from the start \(no checkpoint was "
                                                 r"saved before them\)"):
        _run(job, limit=5)


def test_the_halt_names_the_newest_checkpoint_from_before_the_streak(tmp_path):
    job = _Job(tmp_path, bad_from=4)
    (job.manager.directory / "4").mkdir(parents=True)  # e.g. written mid-streak by older code
    with pytest.raises(stopping.Diverged, match=r"the last good checkpoint, step 3 in") as stop:
        _run(job, log=7, evals=6, saves=3)
    assert stop.value.last_good == 3 and stop.value.first_bad == 4
