"""Preemption: SIGTERM/SIGINT/SIGUSR1 finish the step, save it, and stop with exit status 75; the
run resumes exactly. On several processes all save the step JAX's preemption service agreed on."""

import os
import re
import signal
import subprocess
import time

import jax.numpy as jnp
import pytest

from launch.configs import bert
from launch.pretraining import run as pretraining
from launch.train import checkpoint, loop, optimizer, reporting, stopping, train_state
from tests.launch.test_multiprocess import _command, _env, _free_port
from tests.launch.test_pretrain_e2e import REPO


def test_signals_set_a_flag_and_the_old_handlers_come_back():
    def previous(signum, frame):
        pass
    old = {s: signal.signal(s, previous) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with stopping.Preemption() as preemption:
            assert not preemption.reached(1)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.01)  # the handler runs at the next bytecode boundary
            assert preemption.reached(2) and preemption.signal == signal.SIGTERM
            os.kill(os.getpid(), signal.SIGTERM)  # a second SIGTERM changes nothing
            time.sleep(0.01)
            with pytest.raises(KeyboardInterrupt):  # a second signal by Ctrl-C aborts
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.01)
        assert signal.getsignal(signal.SIGINT) is previous
        assert signal.getsignal(signal.SIGTERM) is previous
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _loop(tmp_path, signal_at: int, steps: int = 10, checkpoint_every: int = 4,
          signum: int = signal.SIGTERM):
    """The loop on pretraining's schedule around a stand-in step (``w += 1``) that receives
    ``signum`` while it runs step ``signal_at``; returns the saved steps and what stopped it."""
    cfg = bert.get_config("tiny")
    cfg.train.update(steps=steps, checkpoint_every=checkpoint_every, log_every=1, eval_every=100)
    zero = jnp.zeros((), jnp.int32)
    state = train_state.TrainState(step=zero, params={"w": jnp.zeros(2)}, opt_state=(),
                                 skipped_steps=zero, nonfinite_run=zero)

    def train(s):
        if int(s.step) + 1 == signal_at:
            os.kill(os.getpid(), signum)
        return (s.replace(step=s.step + 1, params={"w": s.params["w"] + 1}),
                {"loss": (jnp.float32(1.0), jnp.float32(1.0))})
    manager = checkpoint.make_manager(str(tmp_path), cfg.train)
    saves = []

    def save(step, s):
        saves.append(step)
        checkpoint.save(manager, step, s, {"steps": step})
    logger = reporting.MetricLogger(str(tmp_path))
    hooks = loop.Hooks(train=train, log=logger.write, evaluate=lambda step, s: {}, save=save,
                       learning_rate=optimizer.learning_rate_schedule(cfg.train))
    with pytest.raises(stopping.Preempted) as stop:
        loop.run(pretraining._schedule(cfg, 0), state, hooks, manager,
                 meter=reporting.Throughput(0, steps, 1),
                 profiler=reporting.Profiler(str(tmp_path), "", first_step=1, last_step=steps))
    logger.close()
    restored, position, step = checkpoint.restore_latest(manager, state)
    assert step == stop.value.step and position == {"steps": step}
    assert float(restored.params["w"][0]) == step  # the state after that step, not before
    return saves, stop.value


def test_sigterm_finishes_the_step_saves_it_and_stops(tmp_path):
    handler = signal.getsignal(signal.SIGTERM)
    saves, stop = _loop(tmp_path, signal_at=6)
    assert saves == [4, 6] and stop.step == 6
    assert stop.exit_status == stopping.EXIT_PREEMPTED == 75
    assert str(stop) == (f"preempted at step 6: checkpoint saved in {tmp_path}/checkpoints; "
                         "run the same command again to resume")
    assert checkpoint.complete_steps(tmp_path / "checkpoints") == [4, 6]
    assert signal.getsignal(signal.SIGTERM) is handler


def test_sigusr1_the_schedulers_warning_saves_and_stops_like_sigterm(tmp_path):
    handler = signal.getsignal(signal.SIGUSR1)
    saves, stop = _loop(tmp_path, signal_at=6, signum=signal.SIGUSR1)
    assert saves == [4, 6] and stop.step == 6 and stop.exit_status == 75
    assert checkpoint.complete_steps(tmp_path / "checkpoints") == [4, 6]
    assert signal.getsignal(signal.SIGUSR1) is handler


def test_sigterm_at_a_checkpoint_step_saves_it_once(tmp_path):
    saves, stop = _loop(tmp_path, signal_at=8)
    assert saves == [4, 8] and stop.step == 8


def _last_logged_step(workdir) -> int:
    try:
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            steps = re.findall(r'"step": (\d+)', f.read())
    except FileNotFoundError:
        return 0
    return int(steps[-1]) if steps else 0


def test_two_processes_save_the_same_step_when_one_is_preempted(tmp_path, fixture_corpus):
    workdir = str(tmp_path / "multi")
    address = f"127.0.0.1:{_free_port()}"
    long_run = ["--config.train.steps=100000", "--config.train.checkpoint_every=100000",
                "--config.train.eval_every=100000"]
    procs = [subprocess.Popen(
        _command(workdir, fixture_corpus, f"--coordinator_address={address}",
                 "--num_processes=2", f"--process_id={i}", *long_run),
        cwd=REPO, env=_env(1), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for i in range(2)]
    try:
        deadline = time.time() + 180
        while _last_logged_step(workdir) < 2 and time.time() < deadline:
            assert all(p.poll() is None for p in procs), procs[0].communicate()[1][-3000:]
            time.sleep(0.05)
        procs[1].send_signal(signal.SIGTERM)  # the preemption notice reaches one host only
        errs = [p.communicate(timeout=120)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    saved = []
    for p, err in zip(procs, errs, strict=True):
        assert p.returncode == stopping.EXIT_PREEMPTED, err[-3000:]
        saved += [int(n) for n in re.findall(r"preempted at step (\d+)", err)]
    assert len(saved) == 2 and saved[0] == saved[1] >= 2, saved
    assert checkpoint.complete_steps(os.path.join(workdir, "checkpoints")) == [saved[0]]
    assert not os.path.exists(os.path.join(workdir, ".lock"))  # process 0 held it, and let go
