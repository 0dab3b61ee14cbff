"""End to end: a checkpoint written by another config is refused and the workdir kept; the helpers
the other end-to-end tests share. That the binary, killed (SIGKILL or SIGTERM) and resumed,
continues exactly is test_chaos.py's."""

import json
import os
import sys

import pytest

from launch.configs import bert
from launch.pretraining import run as pretraining

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


def _cli(workdir, corpus, steps):
    overrides = {**tiny_overrides(corpus), "train.steps": steps}
    flags = [f"--config.{k}={v}" for k, v in overrides.items()]
    return [sys.executable, "-m", "launch.pretrain", "--config=launch/configs/bert.py:tiny",
            f"--workdir={workdir}", *flags]


def test_incompatible_checkpoint_is_refused_and_workdir_kept(tmp_path, fixture_corpus):
    workdir = str(tmp_path / "run")
    pretraining.train_and_evaluate(make_config(fixture_corpus, 2), workdir)
    before = {name: open(os.path.join(workdir, name)).read()
              for name in ("config.json", "metrics.jsonl", "results.json")}
    wider = make_config(fixture_corpus, 4)
    wider.data.max_seq_length = wider.model.max_length = 32  # the position table no longer fits
    with pytest.raises(ValueError, match=r"written by another config \(changed: "
                                         r"data.max_seq_length: 64 -> 32; model.max_length: 64 "
                                         r"-> 32\)"):
        pretraining.train_and_evaluate(wider, workdir)
    with pytest.raises(ValueError, match=r"does not fit this model; mismatched parameters:\n  "
                                         r"encoder/embeddings/position_embed/embedding: "
                                         r"checkpoint \(64, 128\), this model \(32, 128\)"
                                         r"(.|\n)*data.max_seq_length: 64 -> 32"):
        pretraining.train_and_evaluate(wider, workdir, allow_config_change=True)
    after = {name: open(os.path.join(workdir, name)).read() for name in before}
    assert after == before
    # No peak given, and a CPU has no published one: throughput, but no MFU.
    logged = read_metrics(workdir).values()
    assert any("tokens_per_s" in r for r in logged) and not any("mfu" in r for r in logged)
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == ["2"]
