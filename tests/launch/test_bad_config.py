"""Bad configs: a mesh or batch that does not fit, an unknown key on the command line, and a
workdir written by another config (refused before anything is written, unless allowed)."""

import json
import logging
import os
import subprocess
import sys

import pytest
from absl import flags
from ml_collections import config_flags

from launch import binary
from launch.configs import finetune as finetune_configs
from launch.finetuning import run as finetuning
from launch.finetuning import setup as finetune_setup
from launch.pretraining import run as pretraining
from launch.train import workdir as workdir_lib
from tests.launch.test_pretrain_e2e import REPO, _cli, make_config

BERT = os.path.join(REPO, "launch", "configs", "bert.py")
ENV = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"}  # one device, like a user


def _listing(path: str) -> dict[str, bytes]:
    return {os.path.relpath(os.path.join(root, f), path): open(os.path.join(root, f), "rb").read()
            for root, _, names in os.walk(path) for f in names}


@pytest.mark.parametrize("override,hint", [
    ("--config.train.stepz=5", "has no train.stepz; did you mean --config.train.steps?"),
    ("--config.trian.steps=5", "has no trian; did you mean --config.train.steps?"),
    ("--config.model.arch.x=1", "model.arch is a single value, not a group of keys"),
    ("--config.train.lr=0.1", "has no train.lr; the keys under train are adam_b1, adam_b2, "),
])
def test_unknown_config_key_is_named_with_the_closest_key(override, hint):
    argv = ["pretrain", f"--config={BERT}:tiny", "--workdir=w", "--config.train.steps=3",
            override]
    flag_values = flags.FlagValues()  # what binary.define_flags defines, apart from FLAGS
    config_flags.DEFINE_config_file("config", flag_values=flag_values)
    problem = binary.unknown_config_key(argv, flag_values=flag_values)
    key = override.split("=")[0].removeprefix("--config.")
    assert problem.startswith(f"unknown config key {key} in {override}: {BERT}:tiny ")
    assert hint in problem
    assert binary.unknown_config_key(argv[:-1], flag_values=flag_values) is None


def test_binary_names_an_unknown_key_in_one_line(tmp_path):
    workdir = tmp_path / "run"
    out = subprocess.run(
        [sys.executable, "-m", "launch.pretrain", "--config=launch/configs/bert.py:tiny",
         f"--workdir={workdir}", "--config.train.stepz=5"],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stderr[-3000:]
    assert out.stderr.strip().splitlines()[-1] == (
        "error: unknown config key train.stepz in --config.train.stepz=5: "
        "launch/configs/bert.py:tiny has no train.stepz; did you mean --config.train.steps?")
    assert not workdir.exists()


def _recorded(tmp_path, cfg) -> str:
    workdir = str(tmp_path / "run")
    workdir_lib.write_config(workdir, cfg, [])
    return workdir


def test_binary_refuses_a_workdir_of_another_config_and_writes_nothing(tmp_path,
                                                                       fixture_corpus):
    workdir = _recorded(tmp_path, make_config(fixture_corpus, 4))
    before = _listing(workdir)
    out = subprocess.run(_cli(workdir, fixture_corpus, 4) + ["--config.data.max_seq_length=32"],
                         cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stderr[-3000:]
    assert out.stderr.strip().splitlines()[-1] == (
        f"error: {workdir} was written by another config (changed: data.max_seq_length: 64 -> "
        f"32); nothing was written. Rerun with the config in {workdir}/config.json, use a new "
        "--workdir, or pass --allow_config_change to resume with the new values")
    assert _listing(workdir) == before


def test_safe_changes_resume_with_a_warning(tmp_path, fixture_corpus, caplog):
    workdir = _recorded(tmp_path, make_config(fixture_corpus, 4))
    cfg = make_config(fixture_corpus, 40)
    cfg.train.log_every, cfg.train.eval_every, cfg.train.checkpoint_every = 5, 20, 10
    cfg.train.keep_checkpoints, cfg.train.eval_batches, cfg.mesh.data = 1, 3, 8
    cfg.model.remat = "full"
    with caplog.at_level(logging.WARNING):
        changes = workdir_lib.check_config(workdir, cfg)
    assert changes == ["mesh.data: -1 -> 8", "model.remat: 'none' -> 'full'",
                       "train.checkpoint_every: 2 -> 10", "train.eval_batches: 2 -> 3",
                       "train.eval_every: 1000 -> 20", "train.keep_checkpoints: 3 -> 1",
                       "train.log_every: 1 -> 5", "train.steps: 4 -> 40"]
    assert "config changes that are safe on resume: mesh.data: -1 -> 8" in caplog.text


def test_unsafe_changes_are_refused_unless_allowed(tmp_path, fixture_corpus):
    workdir = _recorded(tmp_path, make_config(fixture_corpus, 4))
    cfg = make_config(fixture_corpus, 8)
    cfg.seed, cfg.model.num_layers = 1, 12
    with pytest.raises(ValueError, match=r"another config \(changed: model.num_layers: 2 -> "
                                         r"12; seed: 0 -> 1\); nothing was written"):
        workdir_lib.check_config(workdir, cfg)
    assert len(workdir_lib.check_config(workdir, cfg, allow_change=True)) == 3


def test_a_changed_config_keeps_every_earlier_one(tmp_path, fixture_corpus):
    configs = [make_config(fixture_corpus, steps) for steps in (2, 4, 6)]
    workdir = _recorded(tmp_path, configs[0])
    for cfg in configs[1:]:
        workdir_lib.write_config(workdir, cfg, workdir_lib.check_config(workdir, cfg))
    steps = {name: json.load(open(os.path.join(workdir, name)))["train"]["steps"]
             for name in os.listdir(workdir)}
    assert steps == {"config.json": 6, "config.previous.json": 4, "config.previous.1.json": 2}


def test_a_garbled_config_json_is_named(tmp_path):
    workdir = tmp_path / "run"
    workdir.mkdir()
    (workdir / "config.json").write_text("{'model': __import__('os')}")
    with pytest.raises(ValueError, match=r"config.json is not a pretrax config \(Expecting "
                                         r"property name .*\); restore it"):
        workdir_lib.read_config(str(workdir))


def test_finetuning_refuses_a_workdir_of_another_config(tmp_path):
    cfg = finetune_configs.get_config("sentiment_rt")
    workdir = _recorded(tmp_path, finetune_setup.resolve(cfg))
    before = _listing(workdir)
    cfg.train.learning_rate = 1e-3
    with pytest.raises(ValueError, match=r"changed: train.learning_rate: 0.0001 -> 0.001\)"):
        finetuning.finetune(cfg, workdir)
    assert _listing(workdir) == before


def test_a_mesh_that_does_not_fit_the_devices(tmp_path, fixture_corpus):
    cfg = make_config(fixture_corpus, 2)
    cfg.mesh.data = 3
    with pytest.raises(ValueError) as e:
        pretraining.train_and_evaluate(cfg, str(tmp_path / "run"))
    assert str(e.value) == (
        "mesh data=3 fsdp=1 tensor=1 does not fit 8 devices: the product of the sizes (with -1 "
        "for the rest) must equal the device count. For example --config.mesh.data=-1 "
        "--config.mesh.fsdp=1 --config.mesh.tensor=1 (data=8).")
    cfg.mesh.data, cfg.mesh.fsdp = -1, -1
    with pytest.raises(ValueError, match=r"fsdp=-1 tensor=1 does not fit 8 devices: each size "
                                         r"must be positive, or -1 \(the rest of the devices\) "
                                         r"on at most one axis\. For example"):
        pretraining.train_and_evaluate(cfg, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


def test_a_batch_that_does_not_divide_over_the_data_parallel_devices(tmp_path, fixture_corpus):
    cfg = make_config(fixture_corpus, 2)
    cfg.train.batch_size = 12
    with pytest.raises(ValueError) as e:
        pretraining.train_and_evaluate(cfg, str(tmp_path / "run"))
    assert str(e.value) == (
        "global batch 12 does not divide by the data-parallel size 8 (mesh {'data': 8, 'fsdp': "
        "1, 'tensor': 1}) and process count 1; use a multiple of 8, e.g. "
        "--config.train.batch_size=8")
    assert not (tmp_path / "run").exists()


def test_a_workdir_config_is_read_as_data_never_run(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("still here")
    code = f"__import__('os').remove({str(victim)!r})"
    (tmp_path / "config.json").write_text(json.dumps({"model": {"arch": code}}))
    assert workdir_lib.read_config(str(tmp_path)) == {"model": {"arch": code}}
    assert victim.read_text() == "still here"


def test_cpu_devices_splits_the_host_and_a_bad_count_is_named(tmp_path):
    """``--cpu_devices=3`` makes three CPU devices (the batch of 8 then does not divide over
    them, which the error names before anything is written); a negative count is a usage error."""
    workdir = tmp_path / "run"
    base = [sys.executable, "-m", "launch.pretrain", "--config=launch/configs/bert.py:tiny",
            f"--workdir={workdir}", "--config.train.batch_size=8"]
    out = subprocess.run(base + ["--cpu_devices=3"], cwd=REPO, env=ENV, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 1, out.stderr[-3000:]
    assert out.stderr.strip().splitlines()[-1].startswith(
        "error: global batch 8 does not divide by the data-parallel size 3 (mesh {'data': 3, ")
    out = subprocess.run(base + ["--cpu_devices=-2"], cwd=REPO, env=ENV, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 1
    assert "--cpu_devices=-2: give a device count, 0 (JAX's default) or -1 (one per core)" in (
        out.stderr)
    assert not workdir.exists()


def test_cpu_devices_after_jax_started_is_refused():
    import jax
    jax.devices()  # the backends are up (the suite's 8 forced devices)
    with pytest.raises(ValueError, match="JAX's backends already started"):
        binary.set_cpu_devices(jax.device_count() + 1)
