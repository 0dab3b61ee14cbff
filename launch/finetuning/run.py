"""Fine-tuning: a pretraining checkpoint's encoder (or a fresh one) + a new head, trained on a task.

The best dev checkpoint is kept (``best/``) and scored on test; ``results.json`` records dev and
test metrics and the dev learning curve.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import sys
import time
from collections.abc import Callable

import jax
import ml_collections
import numpy as np
import optax
from jax.experimental import multihost_utils

from data import features, qa, seq2seq_tasks, tasks
from data import tokenizer as tokenizer_lib
from launch.evaluation import scoring
from launch.finetuning import setup as finetune_setup
from launch.train import (
    checkpoint,
    lock,
    loop,
    optimizer,
    reporting,
    step_fns,
    storage,
    train_state,
)
from launch.train import mesh as mesh_lib
from launch.train import workdir as workdir_lib
from launch.train.data_options import qa_options, task_options


def _task_streams(cfg, spec, tokenizer, per_process: int):
    """(train iterator, train example count, {"dev": EvalSplit, "test": EvalSplit}) on host."""
    kw = dict(batch_size=per_process, seed=cfg.seed, process_index=jax.process_index(),
              process_count=jax.process_count())
    if spec.kind == "span_qa":
        return _qa_streams(cfg, tokenizer, kw)
    task = task_options(cfg.task)
    common = dict(tokenizer=tokenizer, max_seq_length=cfg.data.max_seq_length,
                  layout=row_layout(cfg), **kw)
    train = tasks.make_dataset(task, "train", **common)
    n_train = tasks.num_examples(task, "train")
    if task.max_train_examples:
        n_train = min(n_train, task.max_train_examples)
    evals = {split: scoring.EvalSplit(list(tasks.make_dataset(task, split, **common)),
                                        _eval_count(task, split))
             for split in ("dev", "test")}
    return train, n_train, evals


def _eval_count(task, split: str) -> int:
    n = tasks.num_examples(task, split)
    return min(n, task.max_eval_examples) if task.max_eval_examples > 0 else n


def row_layout(cfg) -> str:
    """The task rows' layout (``data.tasks.encode``): ``data.layout``, where ``auto`` means the
    architecture's own (XLNet's a <sep> b <sep> <cls>; [CLS] a [SEP] b [SEP] for the others)."""
    layout = cfg.data.get("layout", "auto")
    if layout == "auto":
        return "xlnet" if cfg.model.arch == "xlnet" else "bert"
    if layout not in tasks.LAYOUTS:
        raise ValueError(f"data.layout={layout!r}: use auto, bert or xlnet")
    return layout


def _qa_streams(cfg, tokenizer, kw):
    task, enc = task_options(cfg.task), qa_options(cfg.data)
    examples = tasks.load_examples(task, "train")
    train_feats = qa.encode(tokenizer, examples, enc, is_training=True)
    train = qa.make_dataset(train_feats, "train", max_examples=task.max_train_examples, **kw)
    n_train = min(len(examples), task.max_train_examples or len(examples))
    evals = {}
    for split in ("dev", "test"):
        ex = tasks.eval_subset(tasks.load_examples(task, split), task.max_eval_examples)
        feats = qa.encode(tokenizer, ex, enc, is_training=False)
        evals[split] = scoring.EvalSplit(list(qa.make_dataset(feats, split, **kw)),
                                           len(feats.example_index), feats, ex)
    return train, n_train, evals


def total_steps(cfg, n_train: int) -> int:
    """``train.steps`` if set, else ``ceil(epochs × examples / global batch)`` but at least
    ``train.min_steps``."""
    return cfg.train.steps or max(1, cfg.train.min_steps, math.ceil(
        cfg.train.epochs * n_train / cfg.train.batch_size))


def layer_scales(params, num_layers: int, decay: float):
    """Per-parameter lr multipliers for layer-wise decay: embeddings decay^(N+1), layer i
    decay^(N-i), heads and pooler 1. A tree like ``params`` (scanned layers get a [N, 1, …]
    array)."""
    def scale(path, leaf):
        names = [str(getattr(p, "key", p)) for p in path]
        if names[0] == "shared":  # T5's token table
            return decay ** (num_layers + 1)
        if names[0] != "encoder" or names[1] == "pooler":
            return 1.0
        if names[1] == "embeddings":
            return decay ** (num_layers + 1)
        if names[1].startswith("layers_"):
            return decay ** (num_layers - int(names[1].split("_")[1]))
        if names[1] == "layers":  # scanned: one stacked array, layer index first
            per = decay ** (num_layers - np.arange(num_layers, dtype=np.float32))
            return per.reshape((num_layers,) + (1,) * (leaf.ndim - 1))
        return 1.0
    return jax.tree_util.tree_map_with_path(scale, params)


def make_optimizer(cfg, steps: int, params, num_layers: int) -> optax.GradientTransformation:
    """AdamW with warmup (a fraction of the steps) + linear decay, optional layer-wise decay."""
    t = ml_collections.ConfigDict(cfg.train.to_dict())
    t.steps = steps
    t.warmup_steps = int(cfg.train.warmup_fraction * steps)
    tx = optimizer.make_optimizer(t)
    if cfg.train.layer_decay == 1.0:
        return tx
    scales = layer_scales(params, num_layers, cfg.train.layer_decay)
    scale_tx = optax.stateless(lambda updates, _: jax.tree_util.tree_map(
        lambda u, s: u * s, updates, scales))
    return optax.chain(tx, scale_tx)


def _evaluate(predict_fn, params, split, spec) -> dict:
    if hasattr(split, "score"):  # seq2seq: generated outputs, scored on the host
        return split.score(params)
    return scoring.score(predict_fn, params, split, spec)


def _main_metric(metrics: dict, spec) -> float:
    if spec.main_metric not in metrics:
        raise KeyError(f"dev metrics {sorted(metrics)} lack the task's main metric "
                       f"{spec.main_metric!r}")
    return float(metrics[spec.main_metric])


@dataclasses.dataclass
class _Setup:
    """Everything a fine-tuning run builds before it trains."""
    spec: tasks.TaskSpec
    mesh: jax.sharding.Mesh
    rules: tuple
    train_iter: object
    n_train: int
    evals: dict
    steps: int
    model: object
    tx: optax.GradientTransformation
    state: train_state.TrainState
    shardings: train_state.TrainState


def _setup(cfg) -> _Setup:
    """The task's data streams, the model, its optimizer and a freshly initialised state."""
    spec = tasks.task_spec(task_options(cfg.task))
    mesh = mesh_lib.make_mesh(cfg.mesh)
    rules = mesh_lib.rules_from_config(cfg.logical_axis_rules)
    mesh_lib.check_batch_size(cfg.train.batch_size, mesh, rules)
    per_process = cfg.train.batch_size // jax.process_count()
    tokenizer = tokenizer_lib.load(cfg.data.tokenizer)
    train_iter, n_train, evals = _task_streams(cfg, spec, tokenizer, per_process)
    steps = total_steps(cfg, n_train)
    model, model_cfg = finetune_setup.make_model(cfg, spec, tokenizer.vocab_size,
                                                 tokenizer.special_ids)
    shapes = features.shapes(spec.kind, B=cfg.train.batch_size, L=cfg.data.max_seq_length)
    dummy = train_state.dummy_batch(shapes)
    abstract_params = finetune_setup.abstract_params(model, dummy)
    tx = make_optimizer(cfg, steps, abstract_params, model_cfg.num_layers)
    state, shardings = train_state.create_train_state(model, tx, dummy, cfg.seed, mesh, rules)
    return _Setup(spec, mesh, rules, train_iter, n_train, evals, steps, model, tx, state,
                  shardings)


def _start(cfg, run: _Setup, workdir: str, changes,
           load: Callable = finetune_setup.load_pretrained) -> tuple[int, dict, object]:
    """Restores this run's latest checkpoint, or loads ``init_from`` (``load(cfg, state,
    shardings)``: the encoder by default); writes config.json.

    Updates ``run.state``; returns (start step, progress so far, checkpoint manager).
    """
    # A complete checkpoint of this run wins; a save that was cut short does not count.
    resuming = checkpoint.latest_step(workdir) is not None
    if cfg.init_from and not resuming:
        # Before anything is written: an unfit checkpoint leaves both workdirs untouched.
        run.state = load(cfg, run.state, run.shardings)
    manager = checkpoint.make_manager(workdir, ml_collections.ConfigDict(
        dict(keep_checkpoints=cfg.train.keep_checkpoints)))
    restored = workdir_lib.restore(manager, run.state, run.shardings, workdir, changes)
    workdir_lib.write_config(workdir, cfg, changes)
    start_step, progress = 0, {"best": -math.inf, "best_step": 0, "curve": []}
    if restored is not None:
        run.state, progress, start_step = restored
        reporting.say(f"resumed from the fine-tuning checkpoint at step {start_step}")
    origin = f"from {cfg.init_from}" if cfg.init_from else "from scratch"
    reporting.say(f"{run.spec.name}: {run.n_train} training examples, {run.steps} steps of "
                  f"{cfg.train.batch_size}, {origin}")
    for _ in range(start_step):
        next(run.train_iter)  # the stream is deterministic: skipping replays it exactly
    return start_step, progress, manager


def finetune(cfg, workdir: str, *, allow_config_change: bool = False,
             force_unlock: bool = False) -> dict:
    """Fine-tunes per ``cfg`` (see launch/configs/finetune.py); returns and writes results.

    The workdir's lock (``lock.acquire``) is held throughout: a run already using it is refused
    (``force_unlock``: one on another host is removed instead). A workdir written by another
    config is refused unless ``allow_config_change``."""
    reporting.check_writers(cfg)
    with lock.acquire(workdir, force=force_unlock):
        if seq2seq_tasks.is_seq2seq(task_options(cfg.task)):
            from launch.finetuning import seq2seq
            return seq2seq.finetune(cfg, workdir, allow_config_change, sys.modules[__name__])
        return _finetune(cfg, workdir, allow_config_change)


def _finetune(cfg, workdir: str, allow_config_change: bool) -> dict:
    cfg = finetune_setup.resolve(cfg)
    changes = workdir_lib.check_config(workdir, cfg, allow_change=allow_config_change)
    run = _setup(cfg)
    start_step, progress, manager = _start(cfg, run, workdir, changes)
    train_fn, _ = step_fns.compile_steps(cfg, run.model, run.tx, run.shardings, run.mesh,
                                          run.rules, objective=run.spec.kind)
    predict_fn = scoring.make_predict_fn(run.model, run.shardings.params, run.mesh, run.rules)
    batch_sh = mesh_lib.batch_sharding(run.mesh, run.rules)
    for split in run.evals.values():
        split.batches = [mesh_lib.global_batch(b, batch_sh) for b in split.batches]
    best_manager = finetune_setup.best_manager(workdir)
    abstract = checkpoint.abstract_like(run.state.params, run.shardings.params)
    rng = jax.random.fold_in(jax.random.key(cfg.seed), 2)
    dev = _DevHooks(predict_fn, run.evals["dev"], run.spec, run.steps, progress, manager,
                    best_manager)
    _train(cfg, run, workdir, start_step,
           lambda s: train_fn(s, mesh_lib.global_batch(next(run.train_iter), batch_sh), rng), dev)
    return _finish(cfg, run.spec, workdir, progress, abstract, predict_fn, run.evals,
                   run.n_train, run.steps)


@dataclasses.dataclass
class _DevHooks:
    """Fine-tuning's evaluate, save and finish hooks: dev scores go into ``progress`` (the
    learning curve, the best so far), the best parameters into ``best/``, and ``progress`` is
    saved with each checkpoint as its data position."""
    predict_fn: Callable
    dev: scoring.EvalSplit
    spec: tasks.TaskSpec
    steps: int
    progress: dict
    manager: object
    best_manager: object
    t0: float = 0.0  # when training started, for the elapsed time on each dev line

    def evaluate(self, step: int, state) -> dict:
        """Scores dev, reports it and adds it to ``progress``; returns the ``dev/`` row."""
        dev_metrics = _evaluate(self.predict_fn, state.params, self.dev, self.spec)
        value = _main_metric(dev_metrics, self.spec)
        self.progress["curve"].append({"step": step, **dev_metrics})
        reporting.say(f"step {step}/{self.steps}: dev {self.spec.main_metric} {value:.4f} "
                      f"({time.perf_counter() - self.t0:.0f} s)")
        # During a NaN/Inf streak the loop saves nothing (loop.py), best/ included: no best then.
        if value > self.progress["best"] and not int(state.nonfinite_run):
            self.progress.update(best=value, best_step=step)
        return {f"dev/{k}": v for k, v in dev_metrics.items()}

    def save(self, step: int, state) -> None:
        """Keeps the parameters in ``best/`` if ``step`` scored best, then checkpoints."""
        if self.progress["best_step"] == step:
            finetune_setup.save_best(self.best_manager, step, state.params)
        checkpoint.save(self.manager, step, state, self.progress)

    def finish(self) -> None:
        checkpoint.finish(self.best_manager)


def _train(cfg, run: _Setup, workdir: str, start_step: int, train: Callable,
           dev: _DevHooks) -> None:
    """Trains ``run.state`` from ``start_step``, evaluating on dev and checkpointing
    ``train.evals`` times; records ``train_seconds`` in ``dev.progress``."""
    eval_every = max(1, math.ceil(run.steps / max(1, cfg.train.evals)))
    schedule = loop.Schedule(steps=run.steps, start_step=start_step,
                             log_every=cfg.train.log_every, eval_every=eval_every,
                             checkpoint_every=eval_every,
                             max_nonfinite_steps=cfg.train.max_nonfinite_steps)
    logger = reporting.MetricLogger.for_run(cfg, workdir, resume_step=start_step)
    meter = reporting.Throughput(start_step, run.steps,
                                 cfg.train.batch_size * cfg.data.max_seq_length)
    hooks = loop.Hooks(train=train, log=functools.partial(logger.write, echo=False),
                       evaluate=dev.evaluate, save=dev.save, finish=dev.finish)
    dev.t0 = time.perf_counter()
    try:
        loop.run(schedule, run.state, hooks, dev.manager, meter=meter)
    finally:
        logger.close()
    dev.progress["train_seconds"] = round(time.perf_counter() - dev.t0, 1)


def _finish(cfg, spec, workdir, progress, abstract, predict_fn, evals, n_train,
            steps) -> dict:
    params, scored_step = finetune_setup.restore_best(workdir, abstract, progress["best_step"])
    dev_metrics = _evaluate(predict_fn, params, evals["dev"], spec)
    test_metrics = _evaluate(predict_fn, params, evals["test"], spec)
    results = {"task": spec.name, "main_metric": spec.main_metric,
               "init_from": cfg.init_from or None, "seed": cfg.seed, "steps": steps,
               "train_examples": n_train, "best_step": progress["best_step"],
               "dev": dev_metrics, "test": test_metrics, "curve": progress["curve"],
               "train_seconds": progress.get("train_seconds")}
    if scored_step != progress["best_step"]:  # best/ was unreadable (restore_best warned)
        results["scored_step"] = scored_step
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("finetune results")
    if jax.process_index() == 0:
        with storage.open_file(os.path.join(workdir, "results.json"), "w") as f:
            json.dump(results, f, indent=2)
        reporting.say(f"Done: {spec.name} best dev {spec.main_metric} "
                      f"{dev_metrics[spec.main_metric]:.4f} at step {progress['best_step']}, "
                      f"test {spec.main_metric} {test_metrics[spec.main_metric]:.4f}. Results: "
                      f"{os.path.join(workdir, 'results.json')}")
    return results
