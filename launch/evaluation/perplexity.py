"""Perplexity of a GPT pretraining workdir's checkpoint on held-out text."""

from __future__ import annotations

import json
import math
import os

import jax
import ml_collections
import numpy as np

from data import clm, pipeline, sources
from launch.generation import run as generating
from launch.pretraining import inputs
from launch.pretraining.run import unigram_baseline
from launch.train import modeling, reporting, storage
from launch.train import workdir as workdir_lib
from objectives import registry


def is_clm_workdir(run_dir: str) -> bool:
    """Whether ``run_dir`` holds a causal-LM pretraining run (False when it has no config)."""
    path = os.path.join(run_dir, "config.json")
    return storage.exists(path) and modeling.is_causal_lm(workdir_lib.read_config(run_dir))


def _documents(cfg, text: str) -> list:
    """The documents to score: those of ``text`` (every one), else the run's held-out split."""
    if not text:
        return inputs.load_corpus(cfg.data).eval_docs
    corpus = inputs.load_corpus(cfg.data)  # for the tokenizer (and its cache)
    return pipeline.tokenize_documents(corpus.tokenizer, sources.read_documents(text))


def perplexity(model, params, batches: list[dict]) -> tuple[float, float]:
    """``(mean next-token cross-entropy, its exp)`` over the weighted targets of ``batches``."""
    @jax.jit
    def sums(p, batch):
        outputs = model.apply({"params": p}, batch, deterministic=True)
        return registry.OBJECTIVES[registry.CLM].loss(outputs, batch)[1]["clm_loss"]
    total = np.zeros(2, np.float64)
    for b in batches:
        total += np.asarray(jax.device_get(sums(params, b)), np.float64)
    loss = float(total[0] / total[1])
    return loss, math.exp(loss)


def evaluate_clm_workdir(run_dir: str, *, text: str = "", output: str = "",
                         step: int = -1) -> dict:
    """Scores a causal-LM checkpoint on ``text`` (a corpus spec, see ``data.sources``; "" = the
    run's own held-out documents, all of them) and writes ``results.json``.

    Returns:
      ``{"clm_loss", "perplexity", "unigram_perplexity", "tokens", "step"}``; the unigram
      perplexity is that of the run's training-token distribution on the same targets.
    """
    cfg = ml_collections.ConfigDict(workdir_lib.read_config(run_dir))
    model, params, _, step = generating.load_model(run_dir, step)
    docs = _documents(cfg, text)
    rows = clm.eval_rows(docs, cfg.data.max_seq_length, cfg.train.batch_size)
    batches = [{k: v[i:i + cfg.train.batch_size] for k, v in rows.items()}
               for i in range(0, len(rows["token_ids"]), cfg.train.batch_size)]
    loss, ppl = perplexity(model, params, batches)
    log_probs = clm.unigram_log_probs_from_counts(clm.unigram_counts(
        inputs.load_corpus(cfg.data)))
    unigram = unigram_baseline(batches, log_probs, registry.OBJECTIVES[registry.CLM].baseline)
    metrics = {"step": step, "clm_loss": loss, "perplexity": ppl,
               "unigram_perplexity": math.exp(unigram),
               "tokens": int(sum(b["clm_weights"].sum() for b in batches))}
    name = os.path.basename(text) if text else "heldout"
    output = output or os.path.join(run_dir, "eval", name)
    storage.makedirs(output)
    with storage.open_file(os.path.join(output, "results.json"), "w") as f:
        json.dump({"workdir": run_dir, "text": text or None, **metrics}, f, indent=2)
    reporting.say(f"{text or 'held-out documents'}: perplexity {ppl:.1f} (loss {loss:.3f}; "
                  f"unigram perplexity {metrics['unigram_perplexity']:.1f}) on "
                  f"{metrics['tokens']} target tokens, checkpoint step {step}. Results: "
                  f"{os.path.join(output, 'results.json')}")
    return metrics
