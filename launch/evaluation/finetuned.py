"""Scoring a fine-tuned workdir's best checkpoint on a task split or on a user's file."""

from __future__ import annotations

import json
import os

import jax
import ml_collections

from data import features, qa, tasks
from data import tokenizer as tokenizer_lib
from launch.evaluation import report, scoring
from launch.finetuning import setup as finetune_setup
from launch.train import mesh as mesh_lib
from launch.train import reporting, storage, train_state
from launch.train import workdir as workdir_lib
from launch.train.data_options import qa_options, task_options


def file_task(cfg_task, spec, path: str, *, text_column: str, text_b_column: str,
              label_column: str, fmt: str = ""):
    """A ``file`` task config that reads ``path`` as the test split with ``spec``'s labels."""
    out = ml_collections.ConfigDict(cfg_task.to_dict())
    out.name, out.kind, out.format = "file", spec.kind, fmt
    out.labels = ",".join(spec.label_names)
    out.train_path = out.dev_path = out.test_path = path
    out.text_column, out.text_b_column, out.label_column = text_column, text_b_column, label_column
    return out


def _split(cfg, spec, tokenizer, split: str, batch_sh) -> scoring.EvalSplit:
    kw = dict(batch_size=cfg.train.batch_size // jax.process_count(), seed=cfg.seed,
              process_index=jax.process_index(), process_count=jax.process_count())
    task = task_options(cfg.task)
    if spec.kind == "span_qa":
        examples = tasks.load_examples(task, split)
        feats = qa.encode(tokenizer, examples, qa_options(cfg.data), is_training=False)
        batches = list(qa.make_dataset(feats, split, **kw))
        out = scoring.EvalSplit(batches, len(feats.example_index), feats, examples)
    else:
        batches = list(tasks.make_dataset(task, split, tokenizer=tokenizer,
                                          max_seq_length=cfg.data.max_seq_length, **kw))
        out = scoring.EvalSplit(batches, tasks.num_examples(task, split))
    out.batches = [mesh_lib.global_batch(b, batch_sh) for b in out.batches]
    return out


def evaluate_workdir(run_dir: str, *, task: str = "", split: str = "test", data: str = "",
                     text_column: str = "text", text_b_column: str = "",
                     label_column: str = "label", fmt: str = "", output: str = "",
                     source_column: str = "source", target_column: str = "target") -> dict:
    """Scores the best checkpoint of a fine-tuning workdir (``best/``; when it cannot be read,
    the run's checkpoint of that step or its newest, with a warning); writes ``results.json``.

    Args:
      run_dir: a ``launch.finetune`` workdir.
      task: a task to score instead of the one it was trained on (same label set needed).
      split: ``dev`` or ``test`` of that task.
      data: a TSV/CSV/JSONL file to score instead (its labels must be the model's labels).
      text_column, text_b_column, label_column, fmt: how to read ``data``.
      output: where results.json goes (default ``run_dir/eval/<task or file name>``).
      source_column, target_column: a seq2seq workdir's ``data`` columns
        (``launch.evaluation.seq2seq_workdir``, which scores generated outputs).

    Returns:
      The metrics.
    """
    from launch.evaluation import seq2seq_workdir
    if seq2seq_workdir.is_seq2seq_workdir(run_dir):
        return seq2seq_workdir.evaluate_workdir(
            run_dir, split=split, data=data, source_column=source_column,
            target_column=target_column, fmt=fmt, output=output)
    cfg = ml_collections.ConfigDict(workdir_lib.read_config(run_dir))
    spec = tasks.task_spec(task_options(cfg.task))
    if data:
        cfg.task = file_task(cfg.task, spec, data, text_column=text_column,
                             text_b_column=text_b_column, label_column=label_column, fmt=fmt)
        split = "test"
    elif task:
        cfg.task.name = task
    name = os.path.basename(data) if data else cfg.task.name.replace("/", "_")
    tokenizer = tokenizer_lib.load(cfg.data.tokenizer)
    model, params, step, (mesh, rules, shardings) = _restore(cfg, spec, run_dir, tokenizer)
    predict_fn = scoring.make_predict_fn(model, shardings, mesh, rules)
    evaluated = _split(cfg, tasks.task_spec(task_options(cfg.task)), tokenizer, split,
                       mesh_lib.batch_sharding(mesh, rules))
    outputs, batch = scoring.gather(predict_fn, params, evaluated)
    metrics = scoring.score_gathered(outputs, batch, evaluated, spec)
    output = output or os.path.join(run_dir, "eval", name)
    details = {}
    if spec.kind in ("classification", "regression"):
        details = report.details(outputs, batch, spec, tasks.load_examples(
            task_options(cfg.task), split), output if jax.process_index() == 0 else "")
    if jax.process_index() == 0:
        storage.makedirs(output)
        with storage.open_file(os.path.join(output, "results.json"), "w") as f:
            json.dump({"workdir": run_dir, "data": data or None, "task": cfg.task.name,
                       "split": split, "step": step, **metrics, **details}, f, indent=2)
    shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "examples")
    reporting.say(f"{data or cfg.task.name + ' ' + split}: {shown} on "
                  f"{int(metrics.get('examples', evaluated.num_rows))} examples."
                  f"{report.describe(details)}\nResults: {os.path.join(output, 'results.json')}")
    return {**metrics, **details}


def _restore(cfg, spec, run_dir: str, tokenizer):
    """``(model, params, step, (mesh, rules, shardings))`` of a fine-tuning workdir: ``best/``,
    or the run's checkpoint that stands in for an unreadable one (with a warning)."""
    model, _ = finetune_setup.make_model(cfg, spec, tokenizer.vocab_size, tokenizer.special_ids)
    mesh = mesh_lib.make_mesh(cfg.mesh)
    rules = mesh_lib.rules_from_config(cfg.logical_axis_rules)
    dummy = {k: v[:1] for k, v in _dummy(spec, cfg).items()}
    abstract, shardings = finetune_setup.params_shardings(model, dummy, mesh, rules)
    params, step = finetune_setup.restore_best(run_dir, abstract)
    return model, params, step, (mesh, rules, shardings)


def restore_params(cfg, run_dir: str, tokenizer) -> tuple[dict, int]:
    """``(params, step)``: a fine-tuning workdir's best parameters (``cfg`` its config)."""
    _, params, step, _ = _restore(cfg, tasks.task_spec(task_options(cfg.task)), run_dir,
                                  tokenizer)
    return params, step


def _dummy(spec, cfg) -> dict:
    return train_state.dummy_batch(features.shapes(spec.kind, B=1, L=cfg.data.max_seq_length))
