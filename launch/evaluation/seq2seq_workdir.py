"""Scoring a seq2seq fine-tuning workdir (T5, or GPT as prompt → continuation) on its task's
split or on the user's file of (source, target) rows: generate, score as the task's kind says
(BLEU/chrF with sacrebleu's signatures, ROUGE-1/2/L, SQuAD 2.0 EM/F1), write the outputs."""

from __future__ import annotations

import json
import os

import jax
import ml_collections

from data import features, seq2seq_tasks
from data import tokenizer as tokenizer_lib
from data.options import TaskOptions
from launch.evaluation import seq2seq as scoring
from launch.finetuning import seq2seq as finetuning
from launch.finetuning import setup as finetune_setup
from launch.train import mesh as mesh_lib
from launch.train import modeling, reporting, storage, train_state
from launch.train import workdir as workdir_lib
from launch.train.data_options import task_options
from lm import models


def is_seq2seq_workdir(run_dir: str) -> bool:
    """Whether ``run_dir`` is a fine-tuning workdir of a seq2seq task."""
    cfg = workdir_lib.read_config(run_dir)
    return "task" in cfg and seq2seq_tasks.is_seq2seq(task_options(cfg["task"]))


def load(run_dir: str, params_from=finetune_setup.restore_best):
    """``(cfg, model, params, tokenizer, step)`` of a seq2seq workdir (its best dev
    parameters by default; ``params_from(run_dir, abstract)`` picks others)."""
    cfg = ml_collections.ConfigDict(workdir_lib.read_config(run_dir))
    tokenizer = tokenizer_lib.load(cfg.data.tokenizer)
    model = models.make_model(cfg.model.arch, modeling.model_config(
        cfg, tokenizer.vocab_size, tokenizer.special_ids))
    mesh = mesh_lib.make_mesh(cfg.mesh)
    rules = mesh_lib.rules_from_config(cfg.logical_axis_rules)
    dummy = train_state.dummy_batch(
        features.shapes("seq2seq", B=1, S=8, T=4) if cfg.model.arch == "t5" else
        features.shapes("clm", B=1, L=8))
    abstract, _ = finetune_setup.params_shardings(model, dummy, mesh, rules)
    params, step = params_from(run_dir, abstract)
    return cfg, model, params, tokenizer, step


def evaluate_workdir(run_dir: str, *, split: str = "test", data: str = "",
                     source_column: str = "source", target_column: str = "target",
                     fmt: str = "", output: str = "") -> dict:
    """Generates and scores the best checkpoint's outputs on ``split`` of the workdir's task,
    or on ``data`` (TSV/CSV/JSONL with ``source_column``, ``target_column``), scored with the
    task's metrics (generative QA's file rows: BLEU/chrF, there are no SQuAD ids). Writes
    ``predictions.jsonl`` and ``results.json`` to ``output`` (default
    ``run_dir/eval/<task or file name>``)."""
    cfg, model, params, tokenizer, step = load(run_dir)
    spec = seq2seq_tasks.seq2seq_spec(task_options(cfg.task))
    task = task_options(cfg.task)
    if data:
        task = TaskOptions(name="file", kind="seq2seq", train_path=data, dev_path=data,
                           test_path=data, format=fmt, source_column=source_column,
                           target_column=target_column)
        split = "test"
        if "squad" in spec.metrics:
            spec = seq2seq_tasks.seq2seq_spec(task)
    cfg.decode.max_eval_examples = 0  # every row
    evaluated = finetuning.eval_split(cfg, spec, task, tokenizer, split,
                                      finetuning.decoder(cfg, model, tokenizer))
    metrics = evaluated.score(params)
    name = os.path.basename(data) if data else cfg.task.name.replace("/", "_")
    output = output or os.path.join(run_dir, "eval", name)
    signatures = scoring.signatures(spec)
    if jax.process_index() == 0:
        storage.makedirs(output)
        scoring.write_predictions(os.path.join(output, "predictions.jsonl"), evaluated.ids,
                                  evaluated.sources, evaluated.references, evaluated.hypotheses)
        with storage.open_file(os.path.join(output, "results.json"), "w") as f:
            json.dump({"workdir": run_dir, "data": data or None, "task": cfg.task.name,
                       "split": split, "step": step, **metrics, "signatures": signatures}, f,
                      indent=2)
    reporting.say(f"{data or cfg.task.name + ' ' + split}: {scoring.figures(spec, metrics)} on "
                  f"{int(metrics['examples'])} examples"
                  + "".join(f"\n  {k}: {v}" for k, v in signatures.items())
                  + f"\nOutputs: {os.path.join(output, 'predictions.jsonl')}")
    return metrics
