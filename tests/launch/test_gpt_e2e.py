"""End to end for GPT: pretrain (gpt.py:tiny, a few steps) → generate → perplexity → fine-tune."""

import json
import math
import os
import subprocess
import sys

import pytest

from launch.configs import gpt
from launch.evaluation import perplexity
from launch.finetuning import run as finetuning
from launch.generation import run as generating
from launch.pretraining import run as pretraining
from tests.launch.test_finetune_e2e import finetune_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(REPO, "tests", "fixtures", "corpus_slice.txt.gz")


def make_config(steps: int):
    cfg = gpt.get_config("tiny")
    overrides = {"data.corpus": CORPUS, "data.max_seq_length": 32, "model.max_length": 32,
                 "data.eval_fraction": 0.2, "train.batch_size": 8, "train.warmup_steps": 2,
                 "train.log_every": 1,
                 "train.eval_every": 1000, "train.eval_batches": 2, "train.checkpoint_every": 2,
                 "train.steps": steps}
    for key, value in overrides.items():
        section, name = key.split(".")
        cfg[section][name] = value
    return cfg


def test_pretraining_logs_perplexity_and_the_unigram_baseline(gpt_run):
    run_dir, results = gpt_run
    assert results["step"] == 3
    assert results["eval/perplexity"] == pytest.approx(math.exp(results["eval/clm_loss"]))
    assert results["eval/unigram_perplexity"] == pytest.approx(
        math.exp(results["eval/unigram_entropy"]))
    assert 100 < results["eval/unigram_perplexity"] < 8192
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        logged = [json.loads(line) for line in f]
    assert any("eval/perplexity" in r for r in logged) and any("clm_loss" in r for r in logged)


def test_resume_continues_from_the_checkpoint(gpt_run, tmp_path):
    run_dir, _ = gpt_run
    copy = str(tmp_path / "copy")
    subprocess.run(["cp", "-r", run_dir, copy], check=True)
    results = pretraining.train_and_evaluate(make_config(4), copy)
    assert results["resumed_from"] == 3 and results["step"] == 4


def test_generate_binary_prints_a_continuation(gpt_run):
    run_dir, _ = gpt_run
    env = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-m", "launch.generate", f"--workdir={run_dir}",
                          "--prompt=The sea was", "--prompt=And God said unto Moses",
                          "--max_new_tokens=5"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=900)  # minutes on a loaded 2-core machine
    assert out.returncode == 0, out.stderr[-3000:]
    lines = [x for x in out.stdout.splitlines() if x.startswith("[step 3, greedy]")]
    assert len(lines) == 2 and "The sea was →" in lines[0]


@pytest.mark.parametrize("method", ["sample", "beam"])
def test_every_method_decodes(gpt_run, method):
    run_dir, _ = gpt_run
    texts = generating.generate_from_workdir(run_dir, ["The sea was", "I"], method=method,
                                             max_new_tokens=4, top_k=5, top_p=0.9,
                                             temperature=0.8, beam_width=2)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)


def test_generation_refuses_a_bert_workdir_and_too_many_tokens(gpt_run, tmp_path):
    # BERT's objectives, and a config from before ``objectives`` (never read as a causal LM).
    for config in ({"objectives": {"mlm": 1.0, "nsp": 1.0}}, {"objective": "clm"}):
        (tmp_path / "config.json").write_text(json.dumps(config))
        with pytest.raises(ValueError, match="causal-LM"):
            generating.load_model(str(tmp_path))
        assert not perplexity.is_clm_workdir(str(tmp_path))
    with pytest.raises(ValueError, match="positions"):
        generating.generate_from_workdir(gpt_run[0], ["The sea"], max_new_tokens=40)


def test_evaluate_scores_perplexity_of_held_out_and_of_a_file(gpt_run, tmp_path):
    run_dir, results = gpt_run
    assert perplexity.is_clm_workdir(run_dir)
    held_out = perplexity.evaluate_clm_workdir(run_dir)
    assert held_out["step"] == 3 and held_out["tokens"] > 0
    assert held_out["perplexity"] == pytest.approx(math.exp(held_out["clm_loss"]))
    text = tmp_path / "mine.txt"
    text.write_text("The sea was calm.\nThe ship sailed on.\n\nAnother document here.\n")
    mine = perplexity.evaluate_clm_workdir(run_dir, text=str(text))
    assert mine["tokens"] > 5 and math.isfinite(mine["perplexity"])
    assert os.path.exists(os.path.join(run_dir, "eval", "mine.txt", "results.json"))


def test_finetune_classification_from_a_gpt_workdir(gpt_run, tmp_path, capsys):
    run_dir, _ = gpt_run
    results = finetuning.finetune(finetune_config(run_dir, steps=4, evals=1),
                                  str(tmp_path / "ft"))
    out = capsys.readouterr().out
    assert "loaded from" in out and "encoder/layers_0" in out and "encoder/embeddings" in out
    assert "new (randomly initialised): classifier_head/classifier" in out
    assert 0.0 <= results["test"]["accuracy"] <= 1.0
