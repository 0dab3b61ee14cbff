"""Seq2seq fine-tuning (translation, summarisation, generative QA): the whole pretrained model
(T5 encoder–decoder, or GPT as prompt → continuation, ``launch/finetuning/prompted.py``) trained
on the teacher-forced loss of the targets; dev and test are scored on *generated* outputs
(greedy by default, ``decode.method=beam`` for beam search) with the task's metrics.

The loop, checkpoints, resume and the best dev checkpoint (``best/``) are classification's
(``launch/finetuning/run.py``, passed in as ``ft``); what differs is the model (every parameter
comes from ``init_from``, not just an encoder), the batches (``data.seq2seq_batches``)
and the scoring
(``launch/evaluation/seq2seq.py``). ``results.json`` also holds the baselines that learn nothing
(copy the source, the lead sentence) and sacrebleu's signatures; ``predictions_{dev,test}.jsonl``
hold the outputs.
"""

from __future__ import annotations

import functools
import json
import os

import jax

from data import features, seq2seq_batches, seq2seq_tasks, tasks
from data import tokenizer as tokenizer_lib
from launch.evaluation import seq2seq as scoring
from launch.finetuning import setup as finetune_setup
from launch.generation import seq2seq as decoding
from launch.train import checkpoint, modeling, reporting, step_fns, storage, train_state
from launch.train import mesh as mesh_lib
from launch.train import workdir as workdir_lib
from launch.train.data_options import task_options
from lm import models


def load_all(cfg, state, shardings):
    """``state`` with every parameter of ``cfg.init_from``'s checkpoint (encoder, decoder and
    head: a seq2seq model is fine-tuned whole)."""
    abstract = checkpoint.abstract_like(state.params, shardings.params)
    params, step, _ = checkpoint.restore_params_subtree(cfg.init_from, "", abstract,
                                                        cfg.init_step)
    reporting.say(f"loaded every parameter from {cfg.init_from} (step {step})")
    return state.replace(params=params)


def decoding_options(cfg) -> decoding.Decoding:
    """``cfg.decode`` (with ``max_new_tokens`` = ``data.max_target_length``) as a record."""
    d = cfg.decode
    return decoding.Decoding(method=d.method, max_new_tokens=cfg.data.max_target_length,
                             beam_width=d.beam_width, length_penalty=d.length_penalty,
                             batch_size=d.batch_size, seed=cfg.seed)


def eval_split(cfg, spec, task, tokenizer, split: str, decode) -> scoring.Seq2seqSplit:
    """A dev/test split ready to score: ``decode.max_eval_examples`` of it (dev:
    ``decode.max_dev_examples`` if set; 0 = all), the same for every run and spread over the
    split (``tasks.budget_indices`` with seed 0, in file order)."""
    examples = seq2seq_tasks.load_seq2seq_examples(task, split)
    dev_only = (cfg.decode.get("max_dev_examples") or 0) if split == "dev" else 0
    n = len(examples["source"])
    keep = min(n, dev_only or cfg.decode.max_eval_examples or n)
    if keep < n:
        rows = tasks.budget_indices(n, keep, 0)
        examples = {k: [v[i] for i in rows] for k, v in examples.items()}
    pairs = seq2seq_batches.encode_pairs(tokenizer, examples["source"], examples["target"],
                                         max_source_length=cfg.data.max_seq_length,
                                         max_target_length=cfg.data.max_target_length)
    return scoring.Seq2seqSplit(split, spec, examples["id"], examples["source"],
                                examples["target"], [p[0] for p in pairs], decode)


def _setup(cfg, ft):
    task = task_options(cfg.task)
    spec = seq2seq_tasks.seq2seq_spec(task)
    mesh = mesh_lib.make_mesh(cfg.mesh)
    rules = mesh_lib.rules_from_config(cfg.logical_axis_rules)
    mesh_lib.check_batch_size(cfg.train.batch_size, mesh, rules)
    per_process = cfg.train.batch_size // jax.process_count()
    tokenizer = tokenizer_lib.load(cfg.data.tokenizer)
    model_cfg = modeling.model_config(cfg, tokenizer.vocab_size, tokenizer.special_ids)
    model = models.make_model(cfg.model.arch, model_cfg)
    n_train = len(seq2seq_tasks.load_seq2seq_examples(task, "train")["source"])
    n_train = min(n_train, task.max_train_examples or n_train)
    steps = ft.total_steps(cfg, n_train)
    kw = dict(batch_size=per_process, seed=cfg.seed, process_index=jax.process_index(),
              process_count=jax.process_count())
    if cfg.model.arch == "t5":
        train = seq2seq_batches.make_seq2seq_dataset(
            task, "train", tokenizer=tokenizer, max_source_length=cfg.data.max_seq_length,
            max_target_length=cfg.data.max_target_length, **kw)
        shapes = batch_shapes(cfg, cfg.train.batch_size)
    else:
        from launch.finetuning import prompted
        train = prompted.train_stream(cfg, task, tokenizer, kw)
        shapes = batch_shapes(cfg, cfg.train.batch_size)
    decode = decoder(cfg, model, tokenizer)
    dummy = train_state.dummy_batch(shapes)
    tx = ft.make_optimizer(cfg, steps, finetune_setup.abstract_params(model, dummy),
                           model_cfg.num_layers)
    state, shardings = train_state.create_train_state(model, tx, dummy, cfg.seed, mesh, rules)
    evals = {split: eval_split(cfg, spec, task, tokenizer, split, decode)
             for split in ("dev", "test")}
    return ft._Setup(spec, mesh, rules, train, n_train, evals, steps, model, tx, state,  # noqa: SLF001
                     shardings)


def batch_shapes(cfg, batch_size: int) -> dict:
    """The training batch's ``{key: (shape, dtype)}``: T5's seq2seq rows or GPT's prompt +
    target rows."""
    if cfg.model.arch == "t5":
        return features.shapes("seq2seq_task", B=batch_size, S=cfg.data.max_seq_length,
                               T=cfg.data.max_target_length)
    return features.shapes("clm", B=batch_size,
                           L=cfg.data.max_seq_length + cfg.data.max_target_length)


def decoder(cfg, model, tokenizer):
    """``decode(params, source ids) -> texts``: T5's ``cfg.decode``, or GPT's greedy
    continuations of ``source [SEP]``."""
    if cfg.model.arch == "t5":
        return functools.partial(_decode_t5, model, tokenizer, decoding_options(cfg))
    from launch.finetuning import prompted
    return functools.partial(prompted.continuations, model, tokenizer=tokenizer,
                             max_new_tokens=cfg.data.max_target_length,
                             batch_size=cfg.decode.batch_size)


def _decode_t5(model, tokenizer, options, params, source_ids):
    return decoding.decode_texts(model, params, tokenizer, source_ids, options)


def finetune(cfg, workdir: str, allow_config_change: bool, ft) -> dict:
    """Fine-tunes per ``cfg`` on a seq2seq task (the lock is held by ``run.finetune``).

    ``ft`` is ``launch.finetuning.run``, which passes itself: its state set-up, loop and dev
    hooks serve here too, and importing it from here would close an import cycle."""
    cfg = finetune_setup.resolve(cfg)
    changes = workdir_lib.check_config(workdir, cfg, allow_change=allow_config_change)
    run = _setup(cfg, ft)
    objective = "seq2seq" if cfg.model.arch == "t5" else "clm"
    start_step, progress, manager = ft._start(cfg, run, workdir, changes, load=load_all)  # noqa: SLF001
    train_fn, _ = step_fns.compile_steps(cfg, run.model, run.tx, run.shardings, run.mesh,
                                          run.rules, objective=objective)
    batch_sh = mesh_lib.batch_sharding(run.mesh, run.rules)
    rng = jax.random.fold_in(jax.random.key(cfg.seed), 2)
    dev = ft._DevHooks(None, run.evals["dev"], run.spec, run.steps, progress, manager,  # noqa: SLF001
                       finetune_setup.best_manager(workdir))
    ft._train(cfg, run, workdir, start_step,  # noqa: SLF001
              lambda s: train_fn(s, mesh_lib.global_batch(next(run.train_iter), batch_sh), rng),
              dev)
    abstract = checkpoint.abstract_like(run.state.params, run.shardings.params)
    return _finish(cfg, run, workdir, progress, abstract)


def _finish(cfg, run, workdir: str, progress: dict, abstract) -> dict:
    """Scores the best dev parameters on dev and test, writes predictions and results."""
    spec = run.spec
    params, scored_step = finetune_setup.restore_best(workdir, abstract, progress["best_step"])
    metrics = {name: split.score(params) for name, split in run.evals.items()}
    test = run.evals["test"]
    results = {"task": spec.name, "kind": "seq2seq", "main_metric": spec.main_metric,
               "arch": cfg.model.arch, "init_from": cfg.init_from or None, "seed": cfg.seed,
               "steps": run.steps, "train_examples": run.n_train,
               "best_step": progress["best_step"], "decode": cfg.decode.to_dict(),
               "dev": metrics["dev"], "test": metrics["test"],
               "test_baseline": scoring.baselines(spec, test.sources, test.references,
                                                   test.ids, "test"),
               "signatures": scoring.signatures(spec), "curve": progress["curve"],
               "train_seconds": progress.get("train_seconds")}
    if scored_step != progress["best_step"]:
        results["scored_step"] = scored_step
    if jax.process_index() == 0:
        for name, split in run.evals.items():
            scoring.write_predictions(os.path.join(workdir, f"predictions_{name}.jsonl"),
                                      split.ids, split.sources, split.references,
                                      split.hypotheses)
        with storage.open_file(os.path.join(workdir, "results.json"), "w") as f:
            json.dump(results, f, indent=2)
        baseline = scoring.figures(spec, {k.split("_", 2)[-1]: v for k, v in
                                          results["test_baseline"].items()})
        reporting.say(
            f"Done: {spec.name} best dev {spec.main_metric} "
            f"{metrics['dev'][spec.main_metric]:.2f} at step {progress['best_step']}; test "
            f"{scoring.figures(spec, metrics['test'])}"
            + (f" (baseline that learns nothing: {baseline})" if baseline else "")
            + "".join(f"\n  {k}: {v}" for k, v in results["signatures"].items())
            + f"\nResults: {os.path.join(workdir, 'results.json')}")
    return results

