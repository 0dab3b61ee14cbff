"""Linear probes on frozen features of every layer of any workdir's encoder (BERT, ALBERT, GPT,
XLNet, T5's encoder; pretraining or fine-tuned), and the features' effective rank.

For each layer (``embeddings``, then the output of block 1 … N), every example of a task split is
mean-pooled over its real tokens (padding excluded) into one vector. A closed-form ridge probe
(``launch/evaluation/ridge.py``) is fitted on the training split's vectors, its λ picked on dev,
and scored on test: accuracy (classification: one-vs-rest least squares, argmax) or Pearson
(regression). Beside it: the majority class (the training split's, on test) and two ranks of the
test vectors: the effective rank (Roy & Vetterli, 2007: exp of the entropy of the normalised
singular values of the centred matrix) and the number of principal components holding 99% of the
variance. ``init="random"`` probes the same architecture freshly initialised: the random-init
twin a pretrained encoder must beat.

The blocks' outputs are read by intercepting their ``__call__`` (``flax.linen.intercept_methods``)
in an unscanned copy of the model, so nothing in ``lm/`` changes for probing.
"""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import ml_collections
import numpy as np

from data import tasks
from data import tokenizer as tokenizer_lib
from data.options import TaskOptions
from launch.evaluation import ridge
from launch.train import modeling
from launch.train import workdir as workdir_lib
from lm import decoder, encoder, heads, layers, models, t5, xlnet

_BLOCKS = (encoder.TransformerBlock, decoder.DecoderBlock, xlnet.XLNetLayer, t5.EncoderBlock)
_EMBEDDINGS = (layers.Embeddings, decoder.GptEmbeddings)
INITS = ("checkpoint", "random")


@dataclasses.dataclass
class Encoder:
    """A workdir's encoder, ready to read features from: ``model`` (a classification model of
    the architecture, unscanned), its ``params`` and where they came from."""
    model: nn.Module
    params: dict
    tokenizer: object
    max_seq_length: int
    step: int | None
    pooled_fn: object = None  # layer_features' jitted step, compiled once per encoder


def _first_array(out):
    while isinstance(out, (tuple, list)):
        out = out[0]
    return out


def _unstack(params: dict, num_layers: int) -> dict:
    from launch.conversion.huggingface import unstack_layers
    return unstack_layers(jax.tree_util.tree_map(np.asarray, params), num_layers)


def load_encoder(run_dir: str, *, init: str = "checkpoint", step: int = -1, seed: int = 0,
                 max_seq_length: int = 0) -> Encoder:
    """The encoder of a pretraining or fine-tuning workdir (its checkpoint ``step``, -1 = the
    latest; a fine-tuning workdir's best), or with ``init="random"`` the same architecture
    initialised from ``seed``.

    Raises:
      ValueError: an unknown ``init`` or a workdir without config.json (one line).
    """
    if init not in INITS:
        raise ValueError(f"--init={init!r}: use one of {', '.join(INITS)}")
    cfg = ml_collections.ConfigDict(workdir_lib.read_config(run_dir))
    tokenizer = tokenizer_lib.load(cfg.data.tokenizer)
    model_cfg = modeling.model_config(cfg, tokenizer.vocab_size, tokenizer.special_ids)
    flat = model_cfg.replace(scan_layers=False, remat="none", attention_impl="xla",
                             dropout_rate=0.0, attention_dropout_rate=0.0)
    model = models.make_finetune_model(cfg.model.arch, flat, "classification", num_classes=2,
                                       pooling="mean")
    length = max_seq_length or cfg.data.max_seq_length
    dummy = {"token_ids": np.zeros((1, length), np.int32),
             "type_ids": np.zeros((1, length), np.int32)}
    params = nn.unbox(jax.jit(lambda k: model.init(k, dummy, deterministic=True))(
        jax.random.key(seed))["params"])
    if init == "random":
        return Encoder(model, params, tokenizer, length, None)
    if "objectives" in cfg:  # pretraining: the whole model's checkpoint, its encoder kept
        from launch.conversion.huggingface import load_workdir
        _, _, saved, step = load_workdir(run_dir, step)
    else:  # fine-tuning: its best dev parameters
        from launch.evaluation import finetuned
        saved, step = finetuned.restore_params(cfg, run_dir, tokenizer)
    saved = _unstack(saved, model_cfg.num_layers)
    params = {**params, **{g: saved[g] for g in models.body_groups(cfg.model.arch)}}
    return Encoder(model, params, tokenizer, length, step)


def _capture():
    """An interceptor recording the output of every embedding and block call."""
    captured = []

    def interceptor(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        module = context.module
        is_embedding = isinstance(module, _EMBEDDINGS) or (
            isinstance(module, layers.Embed) and module.name in ("word_embedding", "shared"))
        if context.method_name == "__call__" and (is_embedding or isinstance(module, _BLOCKS)):
            captured.append(_first_array(out))
        return out
    return captured, interceptor


def layer_features(enc: Encoder, token_ids: np.ndarray, type_ids: np.ndarray,
                   batch_size: int = 64) -> np.ndarray:
    """float32 [layers + 1, N, D]: each example mean-pooled over its real tokens, after the
    embeddings and after every block."""
    pad = enc.model.config.pad_id

    def pooled(params, batch):
        captured, interceptor = _capture()
        with nn.intercept_methods(interceptor):
            enc.model.apply({"params": params}, batch, deterministic=True)
        return jax.numpy.stack([heads.mean_pool(x.astype(np.float32), batch["token_ids"], pad)
                                for x in captured])

    enc.pooled_fn = enc.pooled_fn or jax.jit(pooled)
    out, n = [], len(token_ids)
    for start in range(0, n, batch_size):
        idx = np.arange(start, start + batch_size) % n  # the last batch padded with repeats
        batch = {"token_ids": token_ids[idx], "type_ids": type_ids[idx]}
        out.append(np.asarray(enc.pooled_fn(enc.params, batch))[:, :min(batch_size, n - start)])
    return np.concatenate(out, axis=1)


def _split_rows(enc: Encoder, task: TaskOptions, split: str, max_examples: int, seed: int):
    examples = tasks.load_examples(task, split)
    keep = tasks.budget_indices(len(examples["labels"]), max_examples, seed)
    examples = {"text_a": [examples["text_a"][i] for i in keep],
                "text_b": None if examples["text_b"] is None
                else [examples["text_b"][i] for i in keep],
                "labels": np.asarray(examples["labels"])[keep]}
    arrays = tasks.encode(enc.tokenizer, examples, enc.max_seq_length)
    return arrays["token_ids"], arrays["type_ids"], arrays["labels"]


def probe(enc: Encoder, task_name: str, *, max_train_examples: int = 4000,
          max_eval_examples: int = 0, seed: int = 0, batch_size: int = 64) -> dict:
    """Ridge probes of every layer on ``task_name`` (train → λ on dev → test).

    Returns:
      ``{"task", "kind", "metric", "train_examples", "test_examples", "majority", "layers":
      [{"layer", "test", "dev", "lambda", "effective_rank", "rank99"}]}``.

    Raises:
      ValueError: for a task that is not classification or regression.
    """
    task = TaskOptions(name=task_name)
    spec = tasks.task_spec(task)
    if spec.kind not in ("classification", "regression"):
        raise ValueError(f"--task={task_name} is {spec.kind}; probes need a classification or "
                         "regression task (e.g. topic_wordnet, sentiment_rt)")
    splits = {s: _split_rows(enc, task, s, max_train_examples if s == "train"
                             else max_eval_examples, seed) for s in ("train", "dev", "test")}
    feats = {s: layer_features(enc, ids, types, batch_size)
             for s, (ids, types, _) in splits.items()}
    labels = {s: v[2] for s, v in splits.items()}
    classes = len(spec.label_names) if spec.kind == "classification" else 0
    rows = []
    for i in range(feats["train"].shape[0]):
        fit = ridge.fit_and_select(feats["train"][i], labels["train"], feats["dev"][i],
                                   labels["dev"], classes)
        ranks = ridge.ranks(feats["test"][i])
        rows.append({"layer": "embeddings" if i == 0 else f"block {i}",
                     "test": ridge.score(fit, feats["test"][i], labels["test"], classes),
                     "dev": fit.dev_score, "lambda": fit.lam, **ranks})
    majority = (float(np.mean(labels["test"] == np.bincount(labels["train"]).argmax()))
                if classes else 0.0)
    return {"task": task_name, "kind": spec.kind,
            "metric": "accuracy" if classes else "pearson",
            "train_examples": len(labels["train"]), "test_examples": len(labels["test"]),
            "majority": majority, "layers": rows}


def describe(results: dict) -> str:
    """The per-layer table."""
    metric = results["metric"]
    lines = [f"{'layer':<11} {'test ' + metric:>14} {'dev':>7} {'lambda':>8} "
             f"{'eff. rank':>9} {'rank99':>6}"]
    for r in results["layers"]:
        lines.append(f"{r['layer']:<11} {r['test']:>14.3f} {r['dev']:>7.3f} {r['lambda']:>8.0e} "
                     f"{r['effective_rank']:>9.1f} {r['rank99']:>6d}")
    if metric == "accuracy":
        lines.append(f"majority class (the training split's) on test: {results['majority']:.3f}")
    return "\n".join(lines)


def run(enc: Encoder, run_dir: str, task_name: str, *, output: str = "",
        init: str = "checkpoint", **options) -> dict:
    """``probe`` of ``enc`` on ``task_name``, printed and written to ``results.json`` (default
    ``run_dir/probe/<task>[_random]``)."""
    import json
    import os

    from launch.train import reporting, storage
    results = {"workdir": run_dir, "init": init, "step": enc.step,
               "max_seq_length": enc.max_seq_length, **probe(enc, task_name, **options)}
    name = task_name.replace("/", "_") + ("_random" if init == "random" else "")
    output = output or os.path.join(run_dir, "probe", name)
    storage.makedirs(output)
    path = os.path.join(output, "results.json")
    with storage.open_file(path, "w") as f:
        json.dump(results, f, indent=2)
    source = "random init" if init == "random" else f"checkpoint step {enc.step}"
    reporting.say(f"{task_name}: ridge probes of {run_dir} ({source}), "
                  f"{results['train_examples']} train / {results['test_examples']} test examples"
                  f"\n{describe(results)}\nResults: {path}")
    return results
