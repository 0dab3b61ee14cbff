"""The initialisations a comparison fine-tunes from: what each is, checked before anything runs.

An initialisation is a pretraining workdir of any family (BERT, ALBERT, GPT, XLNet, pretrained
here or elsewhere) or a converted Hugging Face checkpoint (``launch.convert``'s output: a workdir
without ``results.json``). For the report each gets a one-line context built from whatever its
``results.json`` holds (every ``eval/*`` figure, so no family's metric is assumed), its encoder's
parameter count and its pretraining compute (``launch/train/flops.py``; unknown for XLNet, whose
two-stream attention the formula does not count, and for converted checkpoints).

``check`` builds the fine-tuning config of every (initialisation, task) and resolves it, so an
unusable one (a converted GPT-2 tokenizer, a position table shorter than the task rows) stops the
comparison up front, before hours of fine-tuning, not at the report.

Intrinsic measures for the cheap-vs-expensive correlation (``intrinsic``): held-out loss from
``results.json``, named by its objective (``heldout_mlm_loss``, ``heldout_clm_loss``,
``heldout_plm_loss``: losses of different objectives are not on one scale, so each is correlated
only across the initialisations that share it), plus any ``probe/<task>/accuracy`` and
``zeroshot/<task>/accuracy`` keys in the workdir's ``results.json`` or ``intrinsic.json`` (a
user's own measures). The comparison adds its own ridge probes (``probes.py``) and GPT zero-shot
scores (``zeroshot.py``).
"""

from __future__ import annotations

import json
import math
import os

import jax
import ml_collections

from launch.train import flops, modeling, storage
from launch.train import workdir as workdir_lib
from objectives import registry

SCRATCH = "scratch"
INTRINSIC_FILE = "intrinsic.json"
# The token-level objective's held-out loss (nats per predicted token), whichever the run has.
TOKEN_LOSSES = ("eval/mlm_loss", "eval/clm_loss", "eval/plm_loss")


def parse(text: str) -> dict[str, str]:
    """``"name=DIR,name=DIR"`` → {name: DIR}, in order.

    Raises:
      ValueError: an entry without ``=``, an empty or repeated name, or the reserved "scratch".
    """
    out: dict[str, str] = {}
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        name, sep, path = (x.strip() for x in part.partition("="))
        if not sep or not name or not path:
            raise ValueError(f"inits={text!r}: write name=WORKDIR,name=WORKDIR (a pretraining "
                             "workdir or a launch.convert output directory)")
        if name in out or name.startswith(SCRATCH) or "/" in name:
            raise ValueError(f"inits={text!r}: the name {name!r} is repeated, has a '/', or "
                             f"starts with {SCRATCH!r} (reserved for the from-scratch twins)")
        out[name] = path
    return out


def read_results(run_dir: str) -> dict:
    """The workdir's ``results.json`` (pretraining's final figures); {} when it has none."""
    path = os.path.join(run_dir, "results.json")
    if not storage.exists(path):
        return {}
    with storage.open_file(path) as f:
        return json.load(f)


def read_config(run_dir: str) -> dict:
    """The workdir's ``config.json``.

    Raises:
      ValueError: the directory has none (not a pretraining workdir or convert output).
    """
    if not storage.exists(os.path.join(run_dir, "config.json")):
        raise ValueError(f"{run_dir} has no config.json: give a pretraining workdir or a "
                         "launch.convert output directory")
    return workdir_lib.read_config(run_dir)


def encoder_parameters(cfg: dict) -> int | None:
    """Parameters of the fine-tuned encoder (the part an initialisation supplies), counted from
    the shapes alone; None when the config cannot be built."""
    from lm import models  # noqa: PLC0415 (heavy; only when a report is written)
    c = ml_collections.ConfigDict(cfg)
    try:
        model_cfg = modeling.model_config(c, c.model.vocab_size)
        model = models.make_finetune_model(c.model.arch, model_cfg, "classification",
                                           num_classes=2)
    except (KeyError, ValueError):
        return None
    batch = {"token_ids": jax.ShapeDtypeStruct((1, 8), "int32"),
             "type_ids": jax.ShapeDtypeStruct((1, 8), "int32")}
    keys = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
    shapes = jax.eval_shape(lambda b: model.init(keys, b, deterministic=True), batch)["params"]
    leaves = jax.tree_util.tree_leaves(shapes.get("encoder", shapes))
    return int(sum(math.prod(getattr(x, "value", x).shape) for x in leaves))


def pretraining_flops(cfg: dict, steps: int) -> float | None:
    """Training FLOPs of ``steps`` pretraining steps (``flops.model_flops``: matmuls, 3 × the
    forward); None for XLNet and for runs whose config does not say (converted checkpoints)."""
    c = ml_collections.ConfigDict(cfg)
    if not steps or "objectives" not in c or "train" not in c:
        return None
    try:
        model_cfg = modeling.model_config(c, c.model.vocab_size)
    except (KeyError, ValueError):
        return None
    try:
        objectives = registry.active_weights(dict(c.objectives))
    except ValueError:
        return None
    shape = flops.pretraining_shape(c, model_cfg, objectives)
    return None if shape is None else flops.model_flops(shape, model_cfg.embed_dim) * steps


def tokens_seen(cfg: dict, steps: int) -> int | None:
    """Training tokens of ``steps`` steps: steps × batch × sequence length."""
    try:
        return int(steps * cfg["train"]["batch_size"] * cfg["data"]["max_seq_length"])
    except (KeyError, TypeError):
        return None


def _figure(name: str, value) -> str:
    return f"{name.removeprefix('eval/')} {value:.3f}" if isinstance(value, float) else ""


def describe(name: str, run_dir: str) -> dict:
    """What the report says of one initialisation: arch, objectives, steps, tokens, FLOPs,
    parameters, every ``eval/*`` figure and a one-line context."""
    cfg, res = read_config(run_dir), read_results(run_dir)
    steps = int(res.get("step") or 0)
    objectives = {k: v for k, v in (cfg.get("objectives") or {}).items() if v}
    info = {"name": name, "workdir": run_dir, "arch": cfg["model"]["arch"],
            "objectives": "+".join(objectives) or "converted", "steps": steps or None,
            "tokens": tokens_seen(cfg, steps), "flops": pretraining_flops(cfg, steps),
            "parameters": encoder_parameters(cfg),
            "eval": {k: v for k, v in res.items() if k.startswith("eval/")}}
    figures = ", ".join(f for f in (_figure(k, v) for k, v in info["eval"].items()) if f)
    if res:
        minutes = (res.get("train_seconds") or 0) / 60
        info["context"] = (f"{run_dir}: {info['arch']} {info['objectives']}, {steps} steps, "
                           f"{minutes:.1f} min; {figures or 'no eval figures'}")
    else:
        info["context"] = (f"{run_dir}: {info['arch']}, no results.json (a converted checkpoint "
                           "or an unfinished run): no pretraining figures")
    return info


def intrinsic(run_dir: str) -> dict[str, float]:
    """Cheap measures of one initialisation: ``heldout_<objective>_loss`` (its token-level
    objective's eval loss, ``TOKEN_LOSSES``; lower is better) and every ``probe/…/accuracy`` and
    ``zeroshot/…/accuracy`` in its ``results.json`` or ``intrinsic.json`` (higher is better)."""
    res = read_results(run_dir)
    path = os.path.join(run_dir, INTRINSIC_FILE)
    if storage.exists(path):
        with storage.open_file(path) as f:
            res = {**res, **json.load(f)}
    out = {k: float(v) for k, v in res.items() if isinstance(v, (int, float))
           and k.startswith(("probe/", "zeroshot/")) and k.endswith("accuracy")}
    key = next((k for k in TOKEN_LOSSES if isinstance(res.get(k), (int, float))), None)
    if key is not None:
        out[f"heldout_{key.removeprefix('eval/')}"] = float(res[key])
    return out
