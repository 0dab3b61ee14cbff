"""Two local processes × 4 fake devices, joined by jax.distributed, train like one process × 8."""

import os
import socket
import subprocess
import sys

import pytest

from tests.launch.test_pretrain_e2e import REPO, read_metrics, tiny_overrides


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command(workdir, corpus, *extra):
    overrides = {**tiny_overrides(corpus), "train.steps": 3, "train.checkpoint_every": 3,
                 "data.num_shards": 2}
    return [sys.executable, "-m", "launch.pretrain", "--config=launch/configs/bert.py:tiny",
            f"--workdir={workdir}", *[f"--config.{k}={v}" for k, v in overrides.items()], *extra]


def _env(devices: int) -> dict:
    return {**os.environ, "JAX_PLATFORMS": "cpu",
            "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}


def test_two_processes_log_the_losses_of_one(tmp_path, fixture_corpus):
    multi, single = str(tmp_path / "multi"), str(tmp_path / "single")
    address = f"127.0.0.1:{_free_port()}"
    procs = [subprocess.Popen(
        _command(multi, fixture_corpus, f"--coordinator_address={address}", "--num_processes=2",
                 f"--process_id={i}"), cwd=REPO, env=_env(4), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outputs = [p.communicate(timeout=420)[0] for p in procs]
    for p, out in zip(procs, outputs, strict=True):
        assert p.returncode == 0, out[-4000:]
    one = subprocess.run(_command(single, fixture_corpus), cwd=REPO, env=_env(8),
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr[-4000:]

    a, b = read_metrics(multi), read_metrics(single)
    assert sorted(a) == sorted(b) == [1, 2, 3]
    for step in (1, 2, 3):
        assert a[step]["loss"] == pytest.approx(b[step]["loss"], rel=1e-5), step
    assert a[3]["eval/mlm_loss"] == pytest.approx(b[3]["eval/mlm_loss"], rel=1e-5)
    # Each process counts only its own shard's tokens; the baseline sums the counts.
    assert a[3]["eval/unigram_entropy"] == pytest.approx(b[3]["eval/unigram_entropy"], rel=1e-6)
    assert "step=3" not in outputs[1], "only process 0 prints progress"
    assert os.path.isdir(os.path.join(multi, "checkpoints", "3"))
