"""Pretraining: corpus → sharded state → the train loop with eval, logging and checkpoints."""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Callable

import jax
import numpy as np
from jax.experimental import multihost_utils

from data import features, pipeline
from launch.pretraining import inputs as inputs_lib
from launch.pretraining.inputs import objective_data
from launch.train import (
    checkpoint,
    flops,
    lock,
    loop,
    modeling,
    optimizer,
    reporting,
    step_fns,
    storage,
    train_state,
)
from launch.train import mesh as mesh_lib
from launch.train import workdir as workdir_lib
from lm import models
from objectives import registry


def unigram_baseline(eval_batches: list[dict], log_probs: np.ndarray,
                     baseline: registry.Baseline) -> float:
    """Cross-entropy of the eval targets (masked, permuted or next tokens: ``baseline.targets``
    weighted by ``baseline.weights``) under the training unigram distribution.

    This is the loss of the best context-free guess: a model loss below it means the model uses
    context. Summed over all processes' eval shards, like the model's eval loss.
    """
    if not eval_batches:
        return float("nan")
    targets, weights = baseline.targets, baseline.weights
    sums = np.zeros(2, np.float64)
    for b in eval_batches:
        sums += (np.sum(-log_probs[b[targets]] * b[weights]), np.sum(b[weights]))
    if jax.process_count() > 1:
        sums = np.sum(multihost_utils.process_allgather(sums), axis=0)
    return float(sums[0] / sums[1])


def _unigram_log_probs(counts: np.ndarray,
                       to_log_probs=pipeline.unigram_log_probs_from_counts) -> np.ndarray:
    """Log-probs of the whole corpus from each process's counts of its own shards' tokens.

    Counts travel as two 30-bit halves: without jax_enable_x64 an int64 would be cut to int32.
    """
    if jax.process_count() > 1:
        halves = np.stack([counts >> 30, counts & ((1 << 30) - 1)]).astype(np.int32)
        gathered = np.asarray(multihost_utils.process_allgather(halves), np.int64).sum(axis=0)
        counts = (gathered[0] << 30) + gathered[1]
    return to_log_probs(counts)


def _eval_batches(cfg, make_dataset: Callable, data_kw: dict) -> list[dict]:
    """Up to ``eval_batches`` host eval batches, as many on every process.

    Each process builds eval pairs from its own shards only, so their counts can differ; every
    process must run every (collective) eval step, so all keep the smallest count.
    """
    batches = list(itertools.islice(make_dataset(cfg.data, "eval", **data_kw),
                                    cfg.train.eval_batches))
    if jax.process_count() > 1:
        batches = batches[:int(np.min(multihost_utils.process_allgather(np.int32(len(batches)))))]
    return batches


def _continue_from(cfg, state, shardings):
    """``state`` with every parameter from ``cfg.init_from``'s checkpoint (continued
    pretraining, e.g. task-adaptive); the optimizer and the schedule start afresh."""
    abstract = checkpoint.abstract_like(state.params, shardings.params)
    params, step, _ = checkpoint.restore_params_subtree(cfg.init_from, "", abstract,
                                                        cfg.init_step)
    reporting.say(f"continuing from the parameters of {cfg.init_from} (step {step})")
    return state.replace(params=params)


def _evaluate(eval_fn, params, eval_batches: list[dict], baseline: float,
              extras: Callable[[dict], dict] = lambda out: {}) -> dict:
    """Eval metrics over the (already global, on-device) eval batches."""
    per_batch = [eval_fn(params, b) for b in eval_batches]
    out = {f"eval/{k}": v for k, v in step_fns.reduce_metrics(per_batch).items()}
    if not np.isnan(baseline):
        out["eval/unigram_entropy"] = baseline
        out.update(extras(out))
    return out


def _summary(workdir: str, step: int, final: dict, seconds: float, start_step: int,
             figures: Callable[[dict], str]) -> dict:
    results = {"step": step, "train_seconds": round(seconds, 1), "resumed_from": start_step,
               **final}
    if jax.process_index() == 0:
        with storage.open_file(os.path.join(workdir, "results.json"), "w") as f:
            json.dump(results, f, indent=2)
        print(f"\nDone: {step} steps ({start_step} restored) in {seconds / 60:.1f} min. "
              f"{figures(final)}. Results: {os.path.join(workdir, 'results.json')}", flush=True)
    return results


def _data_position(cfg, step: int, train_iter=None) -> dict:
    """The input position saved with a checkpoint: what the streams consumed so far; for a
    streamed corpus also every data shard's stream state (``data.stream_pipeline``), gathered
    from all processes (process 0 writes the file)."""
    position = {"instances": step * cfg.train.batch_size // jax.process_count(), "steps": step,
                "batch_size": cfg.train.batch_size, "seed": cfg.seed}
    if hasattr(train_iter, "state"):
        position["stream"] = _gathered(train_iter.state())
    return position


def _gathered(states: dict) -> dict:
    """The union of every process's ``{shard: state}`` (JSON through a padded byte array)."""
    if jax.process_count() == 1:
        return states
    data = np.frombuffer(json.dumps(states).encode(), np.uint8)
    longest = int(np.max(multihost_utils.process_allgather(np.int32(len(data)))))
    padded = np.zeros(longest, np.uint8)
    padded[:len(data)] = data
    union = {}
    for row in np.asarray(multihost_utils.process_allgather(padded)):
        union.update(json.loads(bytes(row).rstrip(b"\0").decode()))
    return union


def _shares(train_iter, metrics: dict) -> dict:
    """A streamed mixture's ``data/share/NAME`` (this process's shards) on train log lines."""
    if "loss" not in metrics or not hasattr(train_iter, "shares"):
        return {}
    shares = train_iter.shares()
    return shares if len(shares) > 1 else {}


def _schedule(cfg, start_step: int) -> loop.Schedule:
    """When the loop logs, evaluates, saves and halts: ``train.*``."""
    t = cfg.train
    return loop.Schedule(steps=t.steps, start_step=start_step, log_every=t.log_every,
                         eval_every=t.eval_every, checkpoint_every=t.checkpoint_every,
                         max_nonfinite_steps=t.max_nonfinite_steps)


def train_and_evaluate(cfg, workdir: str, *, allow_config_change: bool = False,
                       force_unlock: bool = False) -> dict:
    """Pretrains per `cfg`, resuming from `workdir`'s latest checkpoint. Returns final results.

    The workdir's lock (`lock.acquire`) is held throughout: a run already using it is refused
    (`force_unlock`: one on another host is removed instead). A workdir written by another config
    is refused (`workdir.check_config`) unless `allow_config_change`."""
    reporting.check_writers(cfg)
    with lock.acquire(workdir, force=force_unlock):
        return _train_and_evaluate(cfg, workdir, allow_config_change)


def _train_and_evaluate(cfg, workdir: str, allow_config_change: bool) -> dict:
    changes = workdir_lib.check_config(workdir, cfg, allow_change=allow_config_change)
    objectives = tuple(modeling.objective_weights(cfg))
    inputs = objective_data(objectives)
    mesh = mesh_lib.make_mesh(cfg.mesh)
    rules = mesh_lib.rules_from_config(cfg.logical_axis_rules)
    mesh_lib.check_batch_size(cfg.train.batch_size, mesh, rules)
    peak = flops.peak_flops_per_device(cfg.train.get("peak_flops_per_device", 0.0),
                                       jax.devices()[0].device_kind)
    per_process = cfg.train.batch_size // jax.process_count()
    corpus = inputs_lib.load_corpus(cfg.data, process_index=jax.process_index(),
                                    process_count=jax.process_count())
    model_cfg = modeling.model_config(cfg, corpus.vocab_size, corpus.tokenizer.special_ids)
    model = models.make_model(cfg.model.arch, model_cfg, **modeling.model_options(cfg))
    shapes = features.shapes(objectives, B=cfg.train.batch_size, L=cfg.data.max_seq_length,
                             P=cfg.data.get("max_predictions_per_seq", 0),
                             **inputs.dims(cfg.data))
    tx = optimizer.make_optimizer(cfg.train)
    state, shardings = train_state.create_train_state(
        model, tx, train_state.dummy_batch(shapes), cfg.seed, mesh, rules)
    n_params = sum(x.size for x in jax.tree_util.tree_leaves(state.params))
    utilisation = flops.utilisation_terms(cfg, model_cfg, objectives, peak)
    reporting.say(f"{cfg.model.arch}: {n_params / 1e6:.2f}M parameters, mesh {dict(mesh.shape)}, "
                  + ("streamed corpus, " if inputs_lib.is_streamed(cfg.data) else
                     f"{len(corpus.train_docs)} train / ")
                  + f"{len(corpus.eval_docs)} eval documents in this process's data shards")

    manager = checkpoint.make_manager(workdir, cfg.train)
    restored = workdir_lib.restore(manager, state, shardings, workdir, changes)
    if restored is None and cfg.init_from:
        state = _continue_from(cfg, state, shardings)
    workdir_lib.write_config(workdir, cfg, changes)
    start_step, saved_position = 0, {}
    if restored is not None:
        state, saved_position, start_step = restored
    # Every stream is a pure function of (seed, shard, instance index): after `start_step` steps
    # of `per_process` rows this process resumes at exactly the next one (whatever the process
    # count, with a fixed data.num_shards), and the dropout keys fold in the restored step.
    position = start_step * per_process
    if restored is not None:
        reporting.say(f"resumed from the checkpoint at step {start_step} "
                      f"(input position {position})")

    data_kw = dict(batch_size=per_process, seed=cfg.seed, process_index=jax.process_index(),
                   process_count=jax.process_count())
    train_iter = inputs.make_dataset(cfg.data, "train", start_position=position,
                                     stream_state=saved_position.get("stream"), **data_kw)
    eval_batches = _eval_batches(cfg, inputs.make_dataset, data_kw)
    # No token-level objective (e.g. SOP or order alone): no baseline.
    baseline = float("nan") if inputs.baseline is None else unigram_baseline(
        eval_batches, _unigram_log_probs(inputs.unigram_counts(corpus, cfg), inputs.log_probs),
        inputs.baseline)
    train_fn, eval_fn = step_fns.compile_steps(cfg, model, tx, shardings, mesh, rules)
    batch_sh = mesh_lib.batch_sharding(mesh, rules)
    # On the devices once, not at every evaluation.
    eval_batches = [mesh_lib.global_batch(b, batch_sh) for b in eval_batches]
    rng = jax.random.fold_in(jax.random.key(cfg.seed), 1)
    logger = reporting.MetricLogger.for_run(cfg, workdir, resume_step=start_step)
    meter = reporting.Throughput(start_step, cfg.train.steps,
                                 cfg.train.batch_size * cfg.data.max_seq_length, **utilisation)
    profiler = reporting.Profiler(workdir, cfg.train.get("profile_steps", ""),
                                  first_step=start_step + 1, last_step=cfg.train.steps)
    hooks = loop.Hooks(
        train=lambda s: train_fn(s, mesh_lib.global_batch(next(train_iter), batch_sh), rng),
        log=lambda step, m: logger.write(step, {**m, **_shares(train_iter, m)}),
        evaluate=lambda step, s: _evaluate(eval_fn, s.params, eval_batches, baseline,
                                           inputs.eval_extras),
        save=lambda step, s: checkpoint.save(manager, step, s,
                                             _data_position(cfg, step, train_iter)),
        learning_rate=optimizer.learning_rate_schedule(cfg.train))
    t0 = time.perf_counter()
    try:
        state, step, final = loop.run(_schedule(cfg, start_step), state, hooks, manager,
                                      meter=meter, profiler=profiler)
        if not final:  # a run restored at its last step
            final = _evaluate(eval_fn, state.params, eval_batches, baseline, inputs.eval_extras)
    finally:
        logger.close()
    return _summary(workdir, step, final, time.perf_counter() - t0, start_step, inputs.summary)
