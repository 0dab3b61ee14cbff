"""Preemption: SIGTERM/SIGINT finish the step, save it, and stop with exit status 75; the run
resumes exactly. On several processes all save the step JAX's preemption service agreed on."""

import dataclasses
import os
import re
import signal
import subprocess
import time

import numpy as np
import pytest

from launch import checkpoint, pretraining, stopping
from tests.launch.test_multiprocess import _command, _env, _free_port
from tests.launch.test_pretrain_e2e import REPO, make_config, read_metrics


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


def _signal_at(monkeypatch, step: int, signum: int):
    """Sends ``signum`` to this process while the loop fetches step ``step``'s batch."""
    real = pretraining.objective_data

    def objective_data(objectives):
        inputs = real(objectives)

        def make_dataset(cfg, split, *, start_position=0, **kw):
            stream = inputs.make_dataset(cfg, split, start_position=start_position, **kw)
            if split != "train":
                return stream
            return _signalling(stream, start_position // kw["batch_size"] + 1, step, signum)
        return dataclasses.replace(inputs, make_dataset=make_dataset)
    monkeypatch.setattr(pretraining, "objective_data", objective_data)


def _signalling(stream, first: int, step: int, signum: int):
    for s, batch in enumerate(stream, start=first):
        if s == step:
            os.kill(os.getpid(), signum)
        yield batch


def _config(corpus, steps):
    cfg = make_config(corpus, steps)
    cfg.train.checkpoint_every = 4
    cfg.model.dropout_rate = 0.1  # the resumed run must draw the same dropout masks
    return cfg


def test_sigterm_saves_that_step_and_resume_is_exact(tmp_path, fixture_corpus, monkeypatch):
    straight, split = str(tmp_path / "straight"), str(tmp_path / "split")
    pretraining.train_and_evaluate(_config(fixture_corpus, 6), straight)
    handler = signal.getsignal(signal.SIGTERM)
    with monkeypatch.context() as m:
        _signal_at(m, 3, signal.SIGTERM)
        with pytest.raises(stopping.Preempted) as stop:
            pretraining.train_and_evaluate(_config(fixture_corpus, 6), split)
    assert signal.getsignal(signal.SIGTERM) is handler
    assert stop.value.step == 3 and stop.value.exit_status == stopping.EXIT_PREEMPTED == 75
    assert str(stop.value) == (f"preempted at step 3: checkpoint saved in {split}/checkpoints; "
                               "run the same command again to resume")
    assert checkpoint.complete_steps(os.path.join(split, "checkpoints")) == [3]
    results = pretraining.train_and_evaluate(_config(fixture_corpus, 6), split)
    assert results["resumed_from"] == 3
    a, b = read_metrics(straight), read_metrics(split)
    assert sorted(b) == list(range(1, 7))
    for step in range(1, 7):  # bit-identical: same batches, same dropout keys, same updates
        assert b[step]["loss"] == a[step]["loss"], step
    assert b[6]["eval/mlm_loss"] == a[6]["eval/mlm_loss"]
    assert np.isfinite(b[6]["loss"])


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
