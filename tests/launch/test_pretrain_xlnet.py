"""End to end: XLNet pretraining runs on its tiny config, evaluates against the unigram baseline
of its own targets, and resumes from its checkpoint."""

import json
import os

from launch.configs import xlnet
from launch.pretraining import run as pretraining


def make_config(corpus: str, steps: int):
    cfg = xlnet.get_config("tiny")
    overrides = {"data.corpus": corpus, "data.max_seq_length": 32, "model.max_length": 32,
                 "data.max_predictions_per_seq": 8, "data.eval_fraction": 0.2,
                 "train.batch_size": 8, "train.warmup_steps": 2, "train.log_every": 1,
                 "train.eval_every": 1000, "train.eval_batches": 2, "train.checkpoint_every": 2,
                 "train.steps": steps}
    for key, value in overrides.items():
        section, name = key.split(".")
        cfg[section][name] = value
    return cfg


def test_xlnet_pretrains_evaluates_and_resumes(tmp_path, fixture_corpus):
    workdir = str(tmp_path / "run")
    first = pretraining.train_and_evaluate(make_config(fixture_corpus, 2), workdir)
    assert first["step"] == 2 and first["resumed_from"] == 0
    for key in ("eval/plm_loss", "eval/plm_accuracy", "eval/unigram_entropy"):
        assert 0.0 <= first[key] < 20.0, key
    second = pretraining.train_and_evaluate(make_config(fixture_corpus, 3), workdir)
    assert second["resumed_from"] == 2 and second["step"] == 3
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        steps = sorted({json.loads(line)["step"] for line in f})
    assert steps == [1, 2, 3]
