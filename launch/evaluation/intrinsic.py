"""Intrinsic evaluation of a pretraining workdir of any family, each figure beside its
context-free baseline.

* every objective of the run on its held-out batches (the same batches the run evaluated, so a
  finished run's figures come back): MLM / PLM loss and accuracy beside the unigram baseline
  (the loss of the training-token distribution on the same targets), a sentence objective's
  accuracy (NSP, SOP, order) beside the majority class of those held-out labels;
* encoders with MLM: pseudo-perplexity (Salazar et al., 2020): every real token of a held-out
  sequence masked in turn, its log-probability summed; one masked position per row, many rows
  (of different sequences) per forward pass. It costs one row per token, so only the first
  ``pppl_sequences`` held-out sequences are scored; the unigram pseudo-perplexity of the same
  tokens stands beside it;
* GPT (causal LM alone): perplexity on the whole held-out split (``launch/evaluation/
  perplexity.py``);
* T5: the geometry of the encoder's outputs on the held-out sources (effective rank, mean
  cosine: ``launch/evaluation/geometry.py``), where a collapsed encoder shows.

One process (the held-out batches of process 0's shards, i.e. all of them on one host).
"""

from __future__ import annotations

import itertools
import json
import math
import os

import jax
import ml_collections
import numpy as np

from data import features
from launch.evaluation import geometry
from launch.finetuning import setup as finetune_setup
from launch.pretraining import inputs as inputs_lib
from launch.pretraining.inputs import objective_data
from launch.pretraining.run import unigram_baseline
from launch.train import checkpoint, modeling, reporting, step_fns, storage, train_state
from launch.train import mesh as mesh_lib
from launch.train import workdir as workdir_lib
from lm import models
from objectives import registry


def is_pretraining_workdir(run_dir: str) -> bool:
    """Whether ``run_dir``'s config.json is a pretraining run's (it names ``objectives``)."""
    path = os.path.join(run_dir, "config.json")
    return storage.exists(path) and "objectives" in workdir_lib.read_config(run_dir)


def load(run_dir: str, step: int = -1):
    """``(cfg, model, params, step, corpus)`` of a pretraining workdir's checkpoint (``step``
    -1 = the latest)."""
    cfg = ml_collections.ConfigDict(workdir_lib.read_config(run_dir))
    names = tuple(modeling.objective_weights(cfg))
    corpus = inputs_lib.load_corpus(cfg.data)
    model_cfg = modeling.model_config(cfg, corpus.vocab_size, corpus.tokenizer.special_ids)
    model = models.make_model(cfg.model.arch, model_cfg, **modeling.model_options(cfg))
    shapes = features.shapes(names, B=1, L=cfg.data.max_seq_length,
                             P=max(1, cfg.data.get("max_predictions_per_seq", 1)),
                             **objective_data(names).dims(cfg.data))
    mesh = mesh_lib.make_mesh(cfg.mesh)
    rules = mesh_lib.rules_from_config(cfg.logical_axis_rules)
    abstract, _ = finetune_setup.params_shardings(model, train_state.dummy_batch(shapes), mesh,
                                                  rules)
    params, step, _ = checkpoint.restore_params_subtree(run_dir, "", abstract, step,
                                                     step_flag="--step")
    return cfg, model, params, step, corpus


def _majority(batches: list[dict], key: str) -> float:
    labels = np.concatenate([np.asarray(b[key]).reshape(-1) for b in batches])
    return float(np.bincount(labels).max() / len(labels)) if len(labels) else float("nan")


def originals(batch: dict) -> np.ndarray:
    """The unmasked token ids of an MLM batch: ``mlm_targets`` put back at ``mlm_positions``."""
    tokens = np.array(batch["token_ids"])
    rows, cols = np.nonzero(np.asarray(batch["mlm_weights"]) > 0)
    tokens[rows, np.asarray(batch["mlm_positions"])[rows, cols]] = (
        np.asarray(batch["mlm_targets"])[rows, cols])
    return tokens


def pseudo_log_likelihoods(model, params, tokens: np.ndarray, type_ids: np.ndarray, special,
                           rows_per_pass: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """``(log p(token | the rest), token id)`` of every real token of ``tokens`` [S, L] (not
    padding, [CLS] or [SEP]), each masked alone; ``rows_per_pass`` masked copies per forward pass
    (the last pass padded with repeats, so every pass has one shape)."""
    skip = [i for i in (special.pad, special.cls, special.sep) if i is not None]
    seq, pos = np.nonzero(~np.isin(tokens, skip))
    if not len(seq):
        return np.zeros(0), np.zeros(0, np.int64)

    @jax.jit
    def score(p, batch, target):
        logits = model.apply({"params": p}, batch, deterministic=True)["mlm_logits"][:, 0]
        return jax.nn.log_softmax(logits.astype(np.float32))[np.arange(len(target)), target]

    out = []
    for start in range(0, len(seq), rows_per_pass):
        idx = np.arange(start, start + rows_per_pass) % len(seq)  # wraps: padding rows
        s, q = seq[idx], pos[idx]
        masked = tokens[s].copy()
        masked[np.arange(len(idx)), q] = special.mask
        batch = {"token_ids": masked, "type_ids": type_ids[s],
                 "mlm_positions": q[:, None].astype(np.int32)}
        n = min(rows_per_pass, len(seq) - start)
        out.append(np.asarray(score(params, batch, tokens[s, q]))[:n])
    return np.concatenate(out), tokens[seq, pos]


def evaluate_pretraining_workdir(run_dir: str, *, output: str = "", step: int = -1,
                                 eval_batches: int = 0, pppl_sequences: int = 32,
                                 rows_per_pass: int = 64) -> dict:
    """Scores a pretraining checkpoint on its held-out split and writes ``results.json``.

    Args:
      run_dir: a ``launch.pretrain`` workdir (BERT, ALBERT or XLNet; GPT: ``perplexity``).
      output: where results.json goes (default ``run_dir/eval/heldout``).
      step: the checkpoint (-1 = the latest).
      eval_batches: held-out batches to score (0 = the run's ``train.eval_batches``).
      pppl_sequences: held-out sequences scored by pseudo-perplexity (0 = none).
      rows_per_pass: masked copies per forward pass of the pseudo-perplexity.

    Returns:
      ``{"step", "<objective>_loss"/"_accuracy", "unigram_entropy", "<sentence
      objective>_majority", "pseudo_perplexity", "unigram_pseudo_perplexity", ...}``.
    """
    if pppl_sequences < 0 or rows_per_pass < 1:
        raise ValueError(f"--pppl_sequences={pppl_sequences}, rows per pass {rows_per_pass}: "
                         "give 0 or more sequences and at least 1 row")
    cfg, model, params, step, corpus = load(run_dir, step)
    names = tuple(modeling.objective_weights(cfg))
    inputs = objective_data(names)
    limit = eval_batches or cfg.train.eval_batches
    batches = list(itertools.islice(inputs.make_dataset(
        cfg.data, "eval", batch_size=cfg.train.batch_size, seed=cfg.seed), limit))
    if not batches:
        raise ValueError(f"{run_dir}: its corpus gives no held-out batch (data.eval_fraction "
                         f"{cfg.data.eval_fraction}); nothing to evaluate")
    objective = modeling.run_objective(cfg, sep_id=model.config.sep_id)
    eval_fn = jax.jit(lambda p, b: step_fns.eval_step(
        p, b, model=model, objective=objective,
        objective_kw={"label_smoothing": 0.0, "z_loss": 0.0}))
    metrics = {"step": step, "eval_batches": len(batches),
               **step_fns.reduce_metrics([eval_fn(params, b) for b in batches])}
    log_probs = inputs.log_probs(inputs.unigram_counts(corpus, cfg))
    if inputs.baseline is not None:
        metrics["unigram_entropy"] = unigram_baseline(batches, log_probs, inputs.baseline)
    for name in names:
        if registry.OBJECTIVES[name].head_classes is not None:
            metrics[f"{name}_majority"] = _majority(batches, f"{name}_labels")
    if registry.MLM in names and pppl_sequences:
        tokens = np.concatenate([originals(b) for b in batches])[:pppl_sequences]
        types = np.concatenate([b["type_ids"] for b in batches])[:pppl_sequences]
        scores, targets = pseudo_log_likelihoods(model, params, tokens, types,
                                                 corpus.tokenizer.special_ids, rows_per_pass)
        metrics.update(pppl_sequences=len(tokens), pppl_tokens=len(scores),
                       pseudo_perplexity=math.exp(-float(np.mean(scores))),
                       unigram_pseudo_perplexity=math.exp(-float(np.mean(log_probs[targets]))))
    if cfg.model.arch == "t5":
        metrics.update(geometry.t5_encoder_geometry(model, params, batches))
    output = output or os.path.join(run_dir, "eval", "heldout")
    storage.makedirs(output)
    with storage.open_file(os.path.join(output, "results.json"), "w") as f:
        json.dump({"workdir": run_dir, "objectives": list(names), **metrics}, f, indent=2)
    reporting.say(f"{run_dir} (step {step}, {len(batches)} held-out batches): "
                  f"{describe(metrics, names)}. Results: {os.path.join(output, 'results.json')}")
    return metrics


def describe(metrics: dict, names) -> str:
    """One line: each objective's figures beside its baseline."""
    parts = []
    for name in names:
        label = name.upper()
        if registry.OBJECTIVES[name].baseline is not None:
            parts.append(f"{label} loss {metrics[f'{name}_loss']:.3f} (unigram baseline "
                         f"{metrics['unigram_entropy']:.3f}), {label} accuracy "
                         f"{metrics[f'{name}_accuracy']:.3f}")
        else:
            parts.append(f"{label} accuracy {metrics[f'{name}_accuracy']:.3f} (majority class "
                         f"{metrics[f'{name}_majority']:.3f})")
    if "pseudo_perplexity" in metrics:
        parts.append(f"pseudo-perplexity {metrics['pseudo_perplexity']:.1f} (unigram "
                     f"{metrics['unigram_pseudo_perplexity']:.1f}) on the {metrics['pppl_tokens']}"
                     f" tokens of the first {metrics['pppl_sequences']} held-out sequences")
    if "encoder_effective_rank" in metrics:
        parts.append(f"encoder outputs: effective rank {metrics['encoder_effective_rank']:.1f} of "
                     f"{metrics['hidden_size']} (rank99 {metrics['encoder_rank99']}), mean cosine "
                     f"{metrics['encoder_mean_cosine']:.3f}"
                     f" ({metrics['encoder_tokens']} held-out source tokens)")
    return ", ".join(parts)
