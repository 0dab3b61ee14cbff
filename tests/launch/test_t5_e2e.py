"""End to end for T5: span-corruption pretraining (t5.py:tiny, a few steps, a slice of the
monolingual es+en corpora) with its unigram baseline and an exact resume."""

import gzip
import json
import os
import shutil

import numpy as np
import pytest

from data import monolingual, seq2seq_pretraining
from launch.configs import t5
from launch.pretraining import run as pretraining
from launch.train import data_options


def small_corpus(path: str, chapters: int = 16) -> str:
    """The first ``chapters`` chapters of each monolingual corpus (a document a chapter)."""
    docs = []
    for p in monolingual.corpus_paths().values():
        with gzip.open(p, "rt", encoding="utf-8") as f:
            docs += [d.strip() for d in f.read().split("\n\n")[:chapters]]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n\n".join(docs) + "\n")
    return path


def make_config(corpus: str, steps: int, denoising: str = "span_corruption"):
    cfg = t5.get_config("tiny")
    cfg.data.corpus, cfg.data.eval_fraction, cfg.data.denoising = corpus, 0.125, denoising
    cfg.train.update(batch_size=8, steps=steps, warmup_steps=2, log_every=1, eval_every=1000,
                     eval_batches=2, checkpoint_every=2)
    return cfg


def _logged(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_span_corruption_pretraining_learns_and_reports_the_baseline(t5_run):
    run_dir, results = t5_run
    assert results["step"] == 4
    losses = [r["seq2seq_loss"] for r in _logged(run_dir) if "seq2seq_loss" in r]
    assert len(losses) == 4 and all(np.isfinite(losses)) and losses[-1] < losses[0]
    # A context-free guess over 8,192 ids: well below log(V), above 0.
    assert 1.0 < results["eval/unigram_entropy"] < np.log(8192)
    assert np.isfinite(results["eval/seq2seq_loss"])


def test_resume_equals_the_uninterrupted_run(t5_run, tmp_path, t5_corpus):
    run_dir, results = t5_run
    copy = str(tmp_path / "copy")
    shutil.copytree(run_dir, copy)
    shutil.rmtree(os.path.join(copy, "checkpoints", "4"))
    resumed = pretraining.train_and_evaluate(make_config(t5_corpus, 4), copy)
    assert resumed["resumed_from"] == 2
    assert resumed["eval/seq2seq_loss"] == pytest.approx(results["eval/seq2seq_loss"], abs=1e-5)
    step4 = [r for r in _logged(copy) if r.get("step") == 4 and "seq2seq_loss" in r][-1]
    first = [r for r in _logged(run_dir) if r.get("step") == 4 and "seq2seq_loss" in r][0]
    assert step4["seq2seq_loss"] == pytest.approx(first["seq2seq_loss"], abs=1e-5)


@pytest.mark.parametrize("denoising", ["span_corruption", "sentence_permutation"])
def test_the_stream_resumes_at_its_position(t5_corpus, denoising):
    cfg = make_config(t5_corpus, 4, denoising)
    kw = dict(batch_size=4, seed=3)
    opts = data_options.corpus_options(cfg.data), data_options.denoising_options(cfg.data)
    stream = seq2seq_pretraining.make_dataset(*opts, "train", **kw)
    batches = [next(stream) for _ in range(3)]
    resumed = next(seq2seq_pretraining.make_dataset(*opts, "train", start_position=8, **kw))
    for key, value in batches[2].items():
        np.testing.assert_array_equal(resumed[key], value)
    assert not np.array_equal(batches[0]["encoder_input_ids"], batches[1]["encoder_input_ids"])
    t = seq2seq_pretraining.target_length(opts[1])
    assert batches[0]["decoder_target_ids"].shape == (4, t)
