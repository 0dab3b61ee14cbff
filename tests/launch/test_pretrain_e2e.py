"""End to end: the pretraining binary runs, saves, is killed, resumes and continues exactly."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from launch import pretraining
from launch.configs import bert

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny_overrides(corpus: str) -> dict:
    return {"data.corpus": corpus, "data.max_seq_length": 64, "data.max_predictions_per_seq": 10,
            "data.eval_fraction": 0.2, "train.batch_size": 8, "train.warmup_steps": 2,
            "train.log_every": 1, "train.eval_every": 1000, "train.eval_batches": 2,
            "train.checkpoint_every": 2}


def make_config(corpus: str, steps: int):
    cfg = bert.get_config("tiny")
    for key, value in {**tiny_overrides(corpus), "train.steps": steps}.items():
        section, name = key.split(".")
        cfg[section][name] = value
    return cfg


def read_metrics(workdir: str) -> dict[int, dict]:
    out = {}
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            rec = json.loads(line)
            out.setdefault(rec["step"], {}).update(rec)
    return out


def test_resume_continues_exactly(tmp_path, fixture_corpus):
    straight, split = str(tmp_path / "straight"), str(tmp_path / "split")
    pretraining.train_and_evaluate(make_config(fixture_corpus, 4), straight)
    first = pretraining.train_and_evaluate(make_config(fixture_corpus, 2), split)
    assert first["step"] == 2 and first["resumed_from"] == 0
    second = pretraining.train_and_evaluate(make_config(fixture_corpus, 4), split)
    assert second["resumed_from"] == 2 and second["step"] == 4
    a, b = read_metrics(straight), read_metrics(split)
    assert sorted(b) == [1, 2, 3, 4]
    for step in (3, 4):  # same data position, same dropout rng, same update
        assert b[step]["loss"] == pytest.approx(a[step]["loss"], rel=1e-6, abs=1e-6)
    with open(os.path.join(straight, "results.json")) as f:
        assert second["eval/mlm_loss"] == pytest.approx(json.load(f)["eval/mlm_loss"], rel=1e-6)


def _cli(workdir, corpus, steps):
    overrides = {**tiny_overrides(corpus), "train.steps": steps}
    flags = [f"--config.{k}={v}" for k, v in overrides.items()]
    return [sys.executable, "-m", "launch.pretrain", "--config=launch/configs/bert.py:tiny",
            f"--workdir={workdir}", *flags]


def _finished_steps(workdir):
    ckpt = os.path.join(workdir, "checkpoints")
    if not os.path.isdir(ckpt):
        return []
    return sorted(int(d) for d in os.listdir(ckpt) if d.isdigit())


def test_binary_sigkill_then_resume(tmp_path, fixture_corpus):
    workdir = str(tmp_path / "run")
    env = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"}  # one device, like a user
    proc = subprocess.Popen(_cli(workdir, fixture_corpus, 100_000), cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while time.time() < deadline and not _finished_steps(workdir) and proc.poll() is None:
        time.sleep(0.5)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    saved = _finished_steps(workdir)
    assert saved, f"no checkpoint before the deadline; stderr:\n{err[-3000:]}"
    resume_at = saved[-1]
    out = subprocess.run(_cli(workdir, fixture_corpus, resume_at + 2), cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    with open(os.path.join(workdir, "results.json")) as f:
        results = json.load(f)
    assert results["resumed_from"] == resume_at > 0
    assert results["step"] == resume_at + 2
    steps = sorted(read_metrics(workdir))
    assert steps == list(range(1, resume_at + 3)), "metrics.jsonl must continue without gaps"


def test_incompatible_checkpoint_is_refused_and_workdir_kept(tmp_path, fixture_corpus):
    workdir = str(tmp_path / "run")
    pretraining.train_and_evaluate(make_config(fixture_corpus, 2), workdir)
    before = {name: open(os.path.join(workdir, name)).read()
              for name in ("config.json", "metrics.jsonl", "results.json")}
    wider = make_config(fixture_corpus, 4)
    wider.data.max_seq_length = 32  # the position table no longer matches
    with pytest.raises(ValueError, match=r"written by another config \(changed: "
                                         r"data.max_seq_length: 64 -> 32\)"):
        pretraining.train_and_evaluate(wider, workdir)
    with pytest.raises(ValueError, match=r"does not fit this model; mismatched parameters:\n  "
                                         r"encoder/embeddings/position_embed/embedding: "
                                         r"checkpoint \(64, 128\), this model \(32, 128\)"
                                         r"(.|\n)*data.max_seq_length: 64 -> 32"):
        pretraining.train_and_evaluate(wider, workdir, allow_config_change=True)
    after = {name: open(os.path.join(workdir, name)).read() for name in before}
    assert after == before
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2"]
