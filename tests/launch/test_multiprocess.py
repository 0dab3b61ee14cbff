"""Two local processes × 4 fake devices, joined by jax.distributed and started by
``launch.submit --target=local``, train like one process × 8, write a profile, and the same
submission again resumes."""

import glob
import json
import os
import re
import socket
import sys

import pytest

from launch.pretraining import run as pretraining
from tests.data.stream_corpus import write_prepared_corpus
from tests.launch.test_mfu import check_mfu_logged
from tests.launch.test_pretrain_e2e import make_config, read_metrics, tiny_overrides
from tests.launch.test_submit import submit

_OVERRIDES = {"train.steps": 3, "train.checkpoint_every": 3, "data.num_shards": 2}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command(workdir, corpus, *extra):
    overrides = {**tiny_overrides(corpus), **_OVERRIDES}
    return [sys.executable, "-m", "launch.pretrain", "--config=launch/configs/bert.py:tiny",
            f"--workdir={workdir}", *[f"--config.{k}={v}" for k, v in overrides.items()], *extra]


def _env(devices: int) -> dict:
    return {**os.environ, "JAX_PLATFORMS": "cpu",
            "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}


def test_two_processes_log_the_losses_of_one_then_resume_with_a_profile(tmp_path, fixture_corpus,
                                                                        capsys):
    multi, single = str(tmp_path / "multi"), str(tmp_path / "single")
    train = _command(multi, fixture_corpus, "--config.train.profile_steps=2:4")[2:]
    code, out, err = submit("--target=local", "--num_processes=2", "--devices_per_process=4",
                            train=train, timeout=600)
    assert code == 0, (out + err)[-4000:]
    assert "[0] Done: 3 steps (0 restored)" in out
    assert "[0] profile of steps 2-3:" in out
    assert not re.search(r"^\[1\] step=", out, re.M), "only process 0 prints progress"
    assert glob.glob(os.path.join(multi, "profile", "plugins", "profile", "*", "*.xplane.pb"))
    assert not os.path.exists(os.path.join(multi, ".lock"))

    # One process with 8 devices (this one's, see conftest.py), the same config; a peak given
    # (no math changes), so it also logs MFU.
    cfg = make_config(fixture_corpus, 3)
    for key, value in _OVERRIDES.items():
        section, name = key.split(".")
        cfg[section][name] = value
    cfg.train.peak_flops_per_device = 1e9
    capsys.readouterr()
    pretraining.train_and_evaluate(cfg, single)
    check_mfu_logged(single, cfg, capsys.readouterr().out)
    assert not any("mfu" in r for r in read_metrics(multi).values())  # no peak, on a CPU
    a, b = read_metrics(multi), read_metrics(single)
    assert sorted(a) == sorted(b) == [1, 2, 3]
    for step in (1, 2, 3):
        assert a[step]["loss"] == pytest.approx(b[step]["loss"], rel=1e-5), step
    assert a[3]["eval/mlm_loss"] == pytest.approx(b[3]["eval/mlm_loss"], rel=1e-5)
    # Each process counts only its own shard's tokens; the baseline sums the counts.
    assert a[3]["eval/unigram_entropy"] == pytest.approx(b[3]["eval/unigram_entropy"], rel=1e-6)

    # The same submission again: it resumes at the last step and has nothing left to train.
    code, out, err = submit("--target=local", "--num_processes=2", "--devices_per_process=4",
                            train=train, timeout=600)
    assert code == 0, (out + err)[-4000:]
    assert "[0] resumed from the checkpoint at step 3" in out
    assert "[0] Done: 3 steps (3 restored)" in out


@pytest.mark.slow
def test_two_processes_on_prepared_shards_log_the_losses_of_one(tmp_path):
    """A prepared corpus of 4 files in 2 data shards: 2 processes (a shard each) log the losses,
    the eval and the baseline of one process reading both; then both resume from the streams'
    saved states (gathered from both processes into process 0's checkpoint)."""
    corpus = write_prepared_corpus(str(tmp_path / "prepared"))
    streamed = ["--config.data.stream_chunk_documents=16"]
    multi, single = str(tmp_path / "multi"), str(tmp_path / "single")
    code, out, err = submit("--target=local", "--num_processes=2", "--devices_per_process=4",
                            train=_command(multi, corpus, *streamed)[2:], timeout=600)
    assert code == 0, (out + err)[-4000:]
    cfg = make_config(corpus, 3)
    for key, value in {**_OVERRIDES, "data.stream_chunk_documents": 16}.items():
        section, name = key.split(".")
        cfg[section][name] = value
    pretraining.train_and_evaluate(cfg, single)
    a, b = read_metrics(multi), read_metrics(single)
    assert sorted(a) == sorted(b) == [1, 2, 3]
    for step in (1, 2, 3):
        assert a[step]["loss"] == pytest.approx(b[step]["loss"], rel=1e-5), step
    assert a[3]["eval/mlm_loss"] == pytest.approx(b[3]["eval/mlm_loss"], rel=1e-5)
    assert a[3]["eval/unigram_entropy"] == pytest.approx(b[3]["eval/unigram_entropy"], rel=1e-6)
    with open(os.path.join(multi, "checkpoints", "3", "data", "metadata")) as f:
        saved = json.load(f)
    assert sorted(saved["stream"]) == ["0", "1"]
    assert all(s["counter"] == 3 * 4 for s in saved["stream"].values())
