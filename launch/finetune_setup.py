"""Fine-tuning set-up: the resolved config, the model, and parameters from a pretraining run."""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp

from launch import checkpoint, reporting, storage, train_lib, workdir
from lm import models

# Fields a fine-tuning config may leave empty ("" / 0) to take the pretraining run's value, and
# the values used for a from-scratch run.
INHERITED = {("model", "arch"): "bert", ("model", "preset"): "tiny",
             ("model", "norm_position"): "post", ("model", "activation"): "gelu",
             ("model", "max_length"): 0, ("data", "tokenizer"): "embedded",
             ("model", "fields"): ""}


def pretrained_value(source: dict, group: str, field: str):
    """A field of a pretraining run's config.json; ``max_length`` 0 there means its seq length,
    no ``fields`` means none (a run trained here rather than converted)."""
    value = source.get(group, {}).get(field)
    if (group, field) == ("model", "max_length") and not value:
        value = source.get("data", {}).get("max_seq_length", 0)
    if (group, field) == ("model", "fields") and value is None:
        value = ""  # trained here, not converted (launch.convert): the preset's shapes
    return value


def resolve(cfg):
    """A copy of ``cfg`` with the empty architecture fields filled in.

    From the pretraining run's ``config.json`` when ``init_from`` is set, else from the scratch
    defaults (``INHERITED``). Explicit values are kept: a mismatch with the checkpoint is caught
    (and named) when the parameters are restored.

    Raises:
      ValueError: when ``data.max_seq_length`` exceeds the model's position table.
    """
    cfg = cfg.copy_and_resolve_references()
    source = workdir.read_config(cfg.init_from) if cfg.init_from else None
    for (group, field), default in INHERITED.items():
        if cfg[group][field] in ("", 0):
            value = pretrained_value(source, group, field) if source else default
            cfg[group][field] = type(default)(value) if value is not None else default
    if cfg.data.tokenizer.startswith("hf:"):  # set by launch.convert
        raise ValueError(
            f"{cfg.init_from} was converted from the Hugging Face checkpoint "
            f"{cfg.data.tokenizer[3:]}, whose tokenizer the input pipeline cannot use yet (its "
            "special ids are pretrax's; data/hf_tokenizers.py is not wired in). An explicit "
            "--config.data.tokenizer skips this check, but the restored token embeddings expect "
            "the checkpoint's own ids")
    if not cfg.model.max_length:
        cfg.model.max_length = cfg.data.max_seq_length
    if cfg.data.max_seq_length > cfg.model.max_length:
        raise ValueError(
            f"data.max_seq_length={cfg.data.max_seq_length} exceeds the model's position table "
            f"(model.max_length={cfg.model.max_length}"
            f"{', from ' + cfg.init_from if cfg.init_from else ''}); use "
            f"--config.data.max_seq_length={cfg.model.max_length} or less")
    return cfg


def make_model(cfg, spec, vocab_size: int):
    """(fine-tuning model, its TransformerConfig) for the task ``spec``."""
    model_cfg = train_lib.model_config(cfg, vocab_size)
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
    """``state`` with its encoder replaced by the pretraining checkpoint's, resharded onto this
    run's mesh; logs which parameter groups were loaded, which are new, which were left out."""
    abstract = checkpoint.abstract_like(state.params["encoder"], shardings.params["encoder"])
    encoder, step, saved = checkpoint.restore_params_subtree(cfg.init_from, "encoder", abstract,
                                                             cfg.init_step)
    ours = ["/".join(str(getattr(k, "key", k)) for k in path)
            for path, _ in jax.tree_util.tree_leaves_with_path(state.params)]
    loaded = _groups(n for n in ours if n.startswith("encoder/"))
    new = _groups(n for n in ours if not n.startswith("encoder/"))
    unused = sorted(set(_groups(saved)) - set(loaded))
    reporting.say(f"loaded from {cfg.init_from} (step {step}): {', '.join(loaded)}\n"
                  f"new (randomly initialised): {', '.join(new)}\n"
                  f"in the checkpoint but not used: {', '.join(unused) or 'nothing'}")
    params = dict(state.params)
    params["encoder"] = encoder
    return state.replace(params=params)


def best_manager(run_dir: str) -> ocp.CheckpointManager:
    """Keeps the parameters of the best dev evaluation (``best/``), one step's worth."""
    options = ocp.CheckpointManagerOptions(max_to_keep=1, enable_async_checkpointing=True,
                                           create=True, cleanup_tmp_directories=True)
    return ocp.CheckpointManager(os.path.join(storage.absolute(run_dir), "best"),
                                 options=options, item_names=("params",))


def save_best(manager: ocp.CheckpointManager, step: int, params) -> None:
    manager.save(step, args=ocp.args.Composite(params=ocp.args.StandardSave(params)), force=True)


def restore_best(manager: ocp.CheckpointManager, abstract):
    """The best parameters, onto ``abstract``'s shardings."""
    step = manager.latest_step()
    if step is None:
        raise FileNotFoundError(f"no best checkpoint in {manager.directory}")
    return manager.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(abstract))).params


def params_shardings(model, batch: dict, mesh, rules):
    """(abstract params with shardings) for ``model`` on ``mesh``, without materialising any."""
    import flax.linen as nn

    from launch import mesh as mesh_lib

    def init():
        keys = {"params": jax.random.key(0), "dropout": jax.random.key(1)}
        return model.init(keys, batch, deterministic=True)["params"]

    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        boxed = jax.eval_shape(init)
        shardings = mesh_lib.logical_shardings(boxed, mesh, rules)
    return checkpoint.abstract_like(nn.unbox(boxed), shardings), shardings
