"""launch.evaluate and launch.probe on a workdir of every family: BERT (MLM+NSP, MLM alone),
ALBERT (SOP, order), GPT, XLNet, T5 (its encoder probed and fine-tuned as a classifier), and a
fine-tuned classifier."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from launch.evaluation import finetuned, intrinsic, perplexity, probing

PRETRAINED = ("bert", "bert_mlm", "albert_sop", "albert_order", "xlnet")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("family", PRETRAINED)
def test_intrinsic_evaluation_reproduces_the_runs_eval(family_runs, family, tmp_path):
    run_dir, results = family_runs[family]
    metrics = intrinsic.evaluate_pretraining_workdir(run_dir, output=str(tmp_path),
                                                     pppl_sequences=3, rows_per_pass=16)
    with open(tmp_path / "results.json") as f:
        assert json.load(f)["step"] == results["step"] == metrics["step"]
    # The same held-out batches and checkpoint as the run's final evaluation: the same figures.
    for key, value in results.items():
        if key.startswith("eval/") and key[5:] in metrics:
            assert metrics[key[5:]] == pytest.approx(value, rel=1e-4, abs=1e-5), key
    names = set(json.load(open(os.path.join(run_dir, "config.json")))["objectives"])
    for name in ("nsp", "sop", "order"):
        if f"eval/{name}_accuracy" in results:
            assert 0.0 < metrics[f"{name}_majority"] <= 1.0
    if "eval/mlm_loss" in results:
        assert 1.0 < metrics["pseudo_perplexity"] < 1e6 and metrics["pppl_sequences"] == 3
        assert metrics["unigram_pseudo_perplexity"] > 1.0 and metrics["pppl_tokens"] > 3
    else:
        assert "pseudo_perplexity" not in metrics, names


def test_t5_workdir_evaluation_reproduces_the_runs_eval(t5_run, tmp_path):
    """launch.evaluate on a T5 pretraining run: its span-corruption loss and accuracy beside
    the unigram baseline of the decoder's targets, the figures of the run's last evaluation."""
    run_dir, results = t5_run
    metrics = intrinsic.evaluate_pretraining_workdir(run_dir, output=str(tmp_path))
    assert metrics["step"] == results["step"]
    for key in ("seq2seq_loss", "seq2seq_accuracy", "unigram_entropy"):
        assert metrics[key] == pytest.approx(results[f"eval/{key}"], rel=1e-4, abs=1e-5), key
    assert "pseudo_perplexity" not in metrics
    assert 1.0 <= metrics["encoder_effective_rank"] <= metrics["hidden_size"]
    assert 1 <= metrics["encoder_rank99"] <= metrics["hidden_size"]
    assert metrics["encoder_tokens"] > 0 and -1.0 <= metrics["encoder_mean_cosine"] <= 1.0


def test_t5_workdir_probe_runs_on_its_encoder(t5_run, tmp_path):
    """launch.probe on a T5 run, as a user runs it: every encoder layer probed."""
    env = {**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-m", "launch.probe", f"--workdir={t5_run[0]}",
                           "--task=sentiment_rt", "--max_train_examples=48",
                           "--max_eval_examples=40", f"--output={tmp_path}"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    with open(tmp_path / "results.json") as f:
        results = json.load(f)
    assert [r["layer"] for r in results["layers"]] == ["embeddings", "block 1", "block 2"]
    assert all(0.0 <= r["test"] <= 1.0 for r in results["layers"])


def test_t5_run_fine_tunes_as_a_classifier_from_its_shared_table_and_encoder(t5_run, tmp_path,
                                                                            capsys):
    from launch.finetuning import run as finetuning
    from tests.launch.test_finetune_e2e import finetune_config
    cfg = finetune_config(t5_run[0], steps=2, evals=1)  # pooling "pooler": T5's mean
    results = finetuning.finetune(cfg, str(tmp_path / "ft"))
    assert 0.0 <= results["test"]["accuracy"] <= 1.0
    out = capsys.readouterr().out
    loaded = next(line for line in out.splitlines() if line.startswith("loaded from"))
    assert "shared/embedding" in loaded and "encoder/layers_0" in loaded
    unused = next(line for line in out.splitlines() if line.startswith("in the checkpoint"))
    assert "decoder/layers_0" in unused and "lm_head/embedding" in unused


def test_pseudo_perplexity_batching_does_not_change_scores(family_runs):
    """Many masked rows per pass (of different sequences, the last pass padded) give every
    token the score it gets alone."""
    cfg, model, params, _, corpus = intrinsic.load(family_runs["bert"][0])
    from launch.pretraining.inputs import objective_data
    batch = next(objective_data(("mlm", "nsp")).make_dataset(cfg.data, "eval", batch_size=4,
                                                              seed=cfg.seed))
    tokens = intrinsic.originals(batch)
    masked_positions = batch["mlm_positions"][batch["mlm_weights"] > 0]
    assert not np.isin(tokens, [corpus.tokenizer.special_ids.mask]).any()
    assert masked_positions.size  # the batch had masked tokens, now put back
    special = corpus.tokenizer.special_ids
    one, targets = intrinsic.pseudo_log_likelihoods(model, params, tokens[:2],
                                                    batch["type_ids"][:2], special, 1)
    many, same = intrinsic.pseudo_log_likelihoods(model, params, tokens[:2],
                                                   batch["type_ids"][:2], special, 7)
    assert len(one) == int(np.sum(~np.isin(tokens[:2], [special.pad, special.cls, special.sep])))
    np.testing.assert_array_equal(targets, same)
    np.testing.assert_allclose(one, many, rtol=1e-4, atol=1e-5)
    assert np.all(one < 0)


def test_albert_workdir_is_evaluated_not_crashed(family_runs):
    run_dir, _ = family_runs["albert_sop"]
    env = {**os.environ, "PYTHONPATH": REPO, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-m", "launch.evaluate", f"--workdir={run_dir}",
                           "--pppl_sequences=1", f"--output={run_dir}_eval"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    said = done.stderr + done.stdout
    assert "SOP accuracy" in said and "majority class" in said and "pseudo-perplexity" in said
    assert os.path.exists(f"{run_dir}_eval/results.json")


def test_gpt_workdir_keeps_its_perplexity(family_runs, tmp_path):
    run_dir, results = family_runs["gpt"]
    assert perplexity.is_clm_workdir(run_dir) and intrinsic.is_pretraining_workdir(run_dir)
    metrics = perplexity.evaluate_clm_workdir(run_dir, output=str(tmp_path))
    assert metrics["perplexity"] == pytest.approx(math.exp(metrics["clm_loss"]))


@pytest.mark.parametrize("family", PRETRAINED + ("gpt", "finetuned"))
def test_probe_every_layer(family_runs, family, tmp_path):
    run_dir, _ = family_runs[family]
    enc = probing.load_encoder(run_dir)
    layers = json.load(open(os.path.join(run_dir, "config.json")))["model"]["num_layers"]
    results = probing.run(enc, run_dir, "sentiment_rt", output=str(tmp_path),
                          max_train_examples=48, max_eval_examples=40)
    assert [r["layer"] for r in results["layers"]] == (
        ["embeddings"] + [f"block {i}" for i in range(1, layers + 1)])
    width = enc.model.config.hidden_size
    for r in results["layers"]:
        assert 0.0 <= r["test"] <= 1.0 and 0.0 < r["effective_rank"] <= width
        assert 1 <= r["rank99"] <= min(width, 40)
    assert results["test_examples"] == 40 and 0.0 < results["majority"] < 1.0
    # Layers differ: each block changes the features.
    features = probing.layer_features(enc, *_rows(enc))
    assert features.shape[0] == layers + 1
    assert not np.allclose(features[0], features[-1])
    random = probing.load_encoder(run_dir, init="random", seed=3)
    assert not np.allclose(probing.layer_features(random, *_rows(enc))[-1], features[-1])


def _rows(enc):
    ids = np.full((3, enc.max_seq_length), enc.model.config.pad_id, np.int32)
    ids[:, :5] = [[2, 10, 11, 12, 3], [2, 20, 21, 22, 3], [2, 30, 31, 32, 3]]
    return ids, np.zeros_like(ids)


def test_finetuned_classifier_report_and_predictions(family_runs, tmp_path):
    run_dir, _ = family_runs["finetuned"]
    metrics = finetuned.evaluate_workdir(run_dir, split="dev", output=str(tmp_path))
    report = metrics["report"]
    n = int(metrics["examples"])
    assert np.sum(report["confusion_matrix"]) == n
    assert report["accuracy"] == pytest.approx(metrics["accuracy"])
    assert [c["label"] for c in report["per_class"]] == ["negative", "positive"]
    assert sum(c["support"] for c in report["per_class"]) == n
    assert 0.5 <= report["majority_baseline"]["accuracy"] <= 1.0
    assert 0.0 <= metrics["ece"] <= 1.0 and sum(metrics["reliability"]["count"]) == n
    with open(tmp_path / "predictions.jsonl") as f:
        rows = [json.loads(line) for line in f]
    assert len(rows) == n and rows[0]["index"] == 0 and rows[0]["text_a"]
    for row in rows:
        assert sum(row["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert row["predicted"] == max(row["probabilities"], key=row["probabilities"].get)
    correct = np.mean([r["predicted"] == r["label"] for r in rows])
    assert correct == pytest.approx(metrics["accuracy"])
    assert (tmp_path / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    with open(tmp_path / "results.json") as f:
        assert json.load(f)["report"]["macro_f1"] == pytest.approx(report["macro_f1"])
