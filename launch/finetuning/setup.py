"""Fine-tuning set-up: the resolved config, the model, and parameters from a pretraining run."""

from __future__ import annotations

import os

import jax
import ml_collections
import orbax.checkpoint as ocp
from absl import logging

from launch.train import checkpoint, modeling, reporting, storage, workdir
from lm import models

# The model fields fine-tuning decides for itself; every other one (the architecture) is the
# pretraining run's when fine-tuning starts from it.
FINETUNE_FIELDS = modeling.COMPUTE_FIELDS + ("pooling",)


def inherit(cfg, source: dict) -> None:
    """Gives ``cfg`` (in place) the model and tokenizer of the pretraining run whose config.json
    is ``source``: its model section whole, but for ``FINETUNE_FIELDS``, which stay ``cfg``'s."""
    model = {k: v for k, v in source["model"].items() if k not in FINETUNE_FIELDS}
    own = {k: cfg.model[k] for k in FINETUNE_FIELDS}
    with cfg.unlocked():
        cfg.model = ml_collections.ConfigDict({**model, **own})
    cfg.data.tokenizer = source["data"]["tokenizer"]


def resolve(cfg):
    """A copy of ``cfg`` with the model it fine-tunes: with ``init_from`` the pretraining run's
    (``inherit``, from its ``config.json``), else the config's own (from scratch).

    Raises:
      ValueError: when ``data.max_seq_length`` exceeds the model's position table, or a
        converted (``hf:``) tokenizer cannot give the architecture's fine-tuning rows.
    """
    if cfg.task.get("kind") == "seq2seq":  # T5 / GPT prompt → continuation: its own rules
        return resolve_seq2seq(cfg)
    cfg = cfg.copy_and_resolve_references()
    if cfg.init_from:
        inherit(cfg, workdir.read_config(cfg.init_from))
    check_hf_tokenizer(cfg)
    length, rows = cfg.data.max_seq_length, cfg.model.max_length
    if length > rows:
        # A pretrained position table cannot grow; a model trained from scratch can.
        grow = "" if cfg.init_from else f" (or --config.model.max_length={length})"
        raise ValueError(
            f"data.max_seq_length={length} exceeds the model's position table (model.max_length="
            f"{rows}{', from ' + cfg.init_from if cfg.init_from else ''}); use "
            f"--config.data.max_seq_length={rows} or less{grow}")
    return cfg


# Architectures that fine-tune on seq2seq tasks: an encoder–decoder, a causal LM.
SEQ2SEQ_ARCHS = ("t5", "gpt")


def resolve_seq2seq(cfg):
    """A copy of ``cfg`` with the model it fine-tunes: the pretraining run's with ``init_from``
    (``inherit``), else its own. T5's positions are relative: ``model.max_length``
    is lifted to the source length (no table to outgrow).

    Raises:
      ValueError: an architecture without a seq2seq form, or a GPT whose position table cannot
        hold prompt + target.
    """
    cfg = cfg.copy_and_resolve_references()
    if cfg.init_from:
        inherit(cfg, workdir.read_config(cfg.init_from))
    arch = cfg.model.arch
    if arch not in SEQ2SEQ_ARCHS:
        raise ValueError(f"model.arch={arch}: seq2seq tasks fine-tune "
                         f"{' or '.join(SEQ2SEQ_ARCHS)} (an encoder–decoder, or a causal LM as "
                         "prompt → continuation); pretrain one with launch/configs/t5.py or gpt.py")
    if arch == "t5":
        cfg.model.max_length = max(cfg.model.max_length, cfg.data.max_seq_length)
    else:
        from launch.finetuning import prompted
        prompted.check_lengths(cfg)
    return cfg


# Architectures whose fine-tuning rows a converted (``hf:``) tokenizer cannot give, and why.
HF_UNSUPPORTED = {
    "xlnet": "XLNet's tokenizer puts <sep> <cls> at the end of each row and pads on the left, "
             "and its ids have not been checked against the rows pretrax's XLNet fine-tuning "
             "builds (a <sep> b <sep> <cls>, padded on the right)",
    "gpt": "GPT-2's byte-level BPE has no [CLS], [SEP] or padding token for the fine-tuning "
           "rows [CLS] a [SEP] b [SEP] (a converted GPT-2 works with launch.generate)",
}


def check_hf_tokenizer(cfg) -> None:
    """Refuses a Hugging Face tokenizer (``data.tokenizer=hf:DIR``, set by launch.convert) for an
    architecture whose fine-tuning rows it cannot build.

    Raises:
      ValueError: naming the architecture, the reason and what works instead.
    """
    if cfg.data.tokenizer.startswith("hf:") and cfg.model.arch in HF_UNSUPPORTED:
        raise ValueError(
            f"data.tokenizer={cfg.data.tokenizer}: fine-tuning a converted "
            f"model.arch={cfg.model.arch} is not supported: {HF_UNSUPPORTED[cfg.model.arch]}. "
            "Fine-tune a converted BERT or ALBERT, or a model pretrained with pretrax")


def make_model(cfg, spec, vocab_size: int, special_ids=None):
    """(fine-tuning model, its TransformerConfig) for the task ``spec``; ``special_ids`` (the
    tokenizer's) set the padding and [SEP] ids the model masks and reads.

    Raises:
      ValueError: when the tokenizer has more ids than the model's embedding has rows.
    """
    if cfg.init_from and vocab_size > cfg.model.vocab_size:
        raise ValueError(
            f"the tokenizer {cfg.data.tokenizer} has {vocab_size} ids but the model's embedding "
            f"has {cfg.model.vocab_size} rows (model.vocab_size of {cfg.init_from}); use the "
            "tokenizer saved with the checkpoint")
    model_cfg = modeling.model_config(cfg, vocab_size, special_ids)
    model = models.make_finetune_model(cfg.model.arch, model_cfg, spec.kind,
                                       num_classes=len(spec.label_names),
                                       pooling=cfg.model.pooling)
    return model, model_cfg


def abstract_params(model, batch: dict):
    """The model's parameter tree as ShapeDtypeStructs (no computation, no memory)."""
    def init():
        import flax.linen as nn
        keys = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
        return nn.unbox(model.init(keys, batch, deterministic=True)["params"])
    return jax.eval_shape(init)


def _groups(flat_names) -> list[str]:
    """``encoder/layers_0/attention/query/kernel`` → ``encoder/layers_0`` (sorted, unique)."""
    return sorted({"/".join(n.split("/")[:2]) for n in flat_names})


def load_pretrained(cfg, state, shardings):
    """``state`` with its pretrained body (``models.body_groups``: the encoder; T5's shared
    token table too) replaced by the pretraining checkpoint's, resharded onto this run's mesh;
    logs which parameter groups were loaded, which are new, which were left out."""
    params = dict(state.params)
    body = models.body_groups(cfg.model.arch)
    for group in body:
        abstract = checkpoint.abstract_like(state.params[group], shardings.params[group])
        params[group], step, saved = checkpoint.restore_params_subtree(
            cfg.init_from, group, abstract, cfg.init_step)
    ours = ["/".join(str(getattr(k, "key", k)) for k in path)
            for path, _ in jax.tree_util.tree_leaves_with_path(state.params)]
    loaded = _groups(n for n in ours if n.split("/")[0] in body)
    new = _groups(n for n in ours if n.split("/")[0] not in body)
    unused = sorted(set(_groups(saved)) - set(loaded))
    reporting.say(f"loaded from {cfg.init_from} (step {step}): {', '.join(loaded)}\n"
                  f"new (randomly initialised): {', '.join(new)}\n"
                  f"in the checkpoint but not used: {', '.join(unused) or 'nothing'}")
    return state.replace(params=params)


def best_manager(run_dir: str) -> ocp.CheckpointManager:
    """Keeps the parameters of the best dev evaluation (``best/``), one step's worth. A save
    there that never completed (the process killed, a full disk) is removed first, as in
    ``checkpoints/``."""
    directory = os.path.join(storage.absolute(run_dir), "best")
    checkpoint.remove_unfinished(directory)
    options = ocp.CheckpointManagerOptions(max_to_keep=1, enable_async_checkpointing=True,
                                           create=True)
    return ocp.CheckpointManager(directory, options=options, item_names=("params",))


def save_best(manager: ocp.CheckpointManager, step: int, params) -> None:
    """Starts saving ``params`` as the best at ``step``; raises stopping.SaveFailed as
    ``checkpoint.save`` does (e.g. the disk is full)."""
    checkpoint.save_items(manager, step, params=ocp.args.StandardSave(params))


def restore_best(run_dir: str, abstract, best_step: int | None = None) -> tuple[dict, int]:
    """``(params, step)``: the best dev parameters of a fine-tuning run (``best/``), onto
    ``abstract``'s shardings.

    When ``best/`` holds nothing readable, the run's own checkpoint of the same step (``best/``'s,
    else ``best_step``) stands in (the same parameters), else its newest readable one (not the
    best dev step), with a warning saying which; nothing is moved or deleted.

    Raises:
      checkpoint.UnfitCheckpointError: the parameters do not fit this model.
      ValueError: neither ``best/`` nor any checkpoint of the run can be read; says what to do.
    """
    directory = os.path.join(storage.absolute(run_dir), "best")
    steps = checkpoint.complete_steps(directory)
    if not steps:
        return _stand_in(run_dir, abstract, best_step, "it holds no complete checkpoint")
    params = checkpoint.try_restore_params(directory, steps[-1], abstract)
    if not isinstance(params, str):
        return params, steps[-1]
    return _stand_in(run_dir, abstract, steps[-1], f"step {steps[-1]}: {params}")


def _stand_in(run_dir: str, abstract, best_step: int | None, why: str) -> tuple[dict, int]:
    """The parameters of the run's checkpoint at ``best_step``, else of its newest readable one."""
    best = os.path.join(run_dir, "best")
    steps = checkpoint.complete_steps(os.path.join(storage.absolute(run_dir), "checkpoints"))
    for step in sorted(steps, key=lambda s: (s != best_step, -s)):
        try:
            params, _, _ = checkpoint.restore_params_subtree(run_dir, "", abstract, step)
        except checkpoint.UnreadableCheckpointError:
            continue
        which = ("the same step: the same parameters" if step == best_step else
                 "its newest readable one, not the best dev step: the scores are step "
                 f"{step}'s")
        logging.warning("%s cannot be read (%s); using the parameters of the run's checkpoint "
                        "at step %d instead (%s)", best, why, step, which)
        return params, step
    raise ValueError(
        f"{best} cannot be read ({why}), and no checkpoint of the run can stand in ("
        f"{'steps ' + str(steps) + ' are unreadable too' if steps else 'it has none'}); nothing "
        "was changed. Fine-tune again with a new --workdir")


def params_shardings(model, batch: dict, mesh, rules):
    """(abstract params with shardings) for ``model`` on ``mesh``, without materialising any."""
    import flax.linen as nn

    from launch.train import mesh as mesh_lib

    def init():
        keys = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
        return model.init(keys, batch, deterministic=True)["params"]

    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        boxed = jax.eval_shape(init)
        shardings = mesh_lib.logical_shardings(boxed, mesh, rules)
    return checkpoint.abstract_like(nn.unbox(boxed), shardings), shardings
