"""train.profile_steps: which steps reporting.Profiler traces, and that a trace file appears."""

import glob
import os

import jax
import jax.numpy as jnp
import pytest

from launch.train import reporting


def _traces(workdir) -> list[str]:
    return glob.glob(os.path.join(workdir, "profile", "plugins", "profile", "*", "*.xplane.pb"))


def _run(workdir, spec: str, first_step: int, last_step: int) -> list[tuple[int, bool]]:
    """A toy loop; returns (step, tracing while it ran) for each step."""
    profiler = reporting.Profiler(str(workdir), spec, first_step=first_step, last_step=last_step)
    step_fn = jax.jit(lambda x: x @ x.T / x.shape[0])
    state, seen = jnp.ones((64, 64)), []
    for step in range(first_step, last_step + 1):
        tracing = profiler.active
        state = step_fn(state)
        profiler.step(step, state)
        seen.append((step, tracing))
    assert not profiler.active  # always stopped by the run's end
    return seen


def test_a_three_step_run_traces_steps_two_and_three(tmp_path):
    seen = _run(tmp_path, "2:4", first_step=1, last_step=3)
    assert seen == [(1, False), (2, True), (3, True)]
    assert len(_traces(tmp_path)) == 1


def test_a_resumed_run_inside_the_window_traces_from_its_first_step(tmp_path):
    seen = _run(tmp_path, "2:4", first_step=3, last_step=6)
    assert seen == [(3, True), (4, False), (5, False), (6, False)]
    assert len(_traces(tmp_path)) == 1


@pytest.mark.parametrize("spec", ["", "8:9"])
def test_no_window_or_one_past_the_run_traces_nothing(tmp_path, spec):
    assert not any(tracing for _, tracing in _run(tmp_path, spec, first_step=1, last_step=3))
    assert not os.path.exists(tmp_path / "profile")


@pytest.mark.parametrize("spec", ["3", "a:b", "3:3", "0:2", "4:2", "2:"])
def test_a_bad_window_names_the_key_and_the_fix(spec):
    with pytest.raises(ValueError) as e:
        reporting.parse_profile_steps(spec)
    assert str(e.value) == (
        f"train.profile_steps={spec!r}: write START:STOP to trace steps START to STOP-1 (e.g. "
        "--config.train.profile_steps=10:13; steps count from 1), or leave it empty for no "
        "trace")
