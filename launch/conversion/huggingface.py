"""Hugging Face checkpoints in and out: files on one side, a pretrax workdir on the other.

``import_hf(DIR, OUT)`` reads ``DIR/config.json`` + ``DIR/model.safetensors`` (as transformers'
``save_pretrained`` writes them; sharded ``model.safetensors.index.json`` too) or Google's original
TF BERT checkpoint (``bert_config.json`` + ``bert_model.ckpt.*``) and writes ``OUT/config.json`` (a
pretrax run config whose model section states every field of the checkpoint's architecture) and an
Orbax checkpoint at step 0 whose encoder ``launch.finetune --config.init_from=OUT`` restores
(fine-tuning takes that model section). Any of a family's head layouts is read (``BertModel``,
``BertForMaskedLM``, ``BertForSequenceClassification``, …): the parts it holds are loaded, the
pretraining heads it lacks initialised as pretrax initialises them, and both are printed.
``export_hf(OUT, DIR)`` writes a pretrax workdir's checkpoint back as ``config.json`` +
``model.safetensors`` for ``AutoModelForPreTraining.from_pretrained(DIR)``, with its tokenizer
(``tokenizer.json`` + ``tokenizer_config.json`` + ``special_tokens_map.json``, for
``AutoTokenizer`` and transformers' pipelines), a model card (``README.md``) and the run config
(``pretrax_config.json``): ``export_files``.

Only safetensors (and TF checkpoints, which hold plain tensors) are read: pickled PyTorch files can
run code when loaded, so they are refused with the command that converts them. The name and shape
maps are ``lm.interop``'s.
"""

from __future__ import annotations

import dataclasses
import json
import os

import flax.linen as nn
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from data import hf_tokenizers
from launch.conversion import export_files, tf_bert
from launch.conversion.files import (
    TF_CHECKPOINT,
    WEIGHTS,
    read_json,
    read_safetensors,
)
from launch.train import checkpoint, lock, modeling, storage
from launch.train import workdir as workdir_lib
from lm import interop, models
from lm.config import SEQ2SEQ_FIELDS, TransformerConfig

# Our architecture → the launch config a converted workdir's run config starts from.
RUN_CONFIGS = {"bert": ("bert", "base"), "gpt": ("gpt", "small"), "albert": ("albert", "base"),
               "xlnet": ("xlnet", "base"), "t5": ("t5", "base")}


def read_hf(directory: str):
    """``(family module, TransformerConfig, lm.interop.maps.Loaded)`` of a transformers or TF
    BERT directory: the parts of the pretraining model it holds, and those it lacks.

    Raises:
      FileNotFoundError, ValueError: naming the file and what to do.
    """
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"--from_hf={directory} is not a directory")
    if os.path.exists(os.path.join(directory, f"{TF_CHECKPOINT}.index")):
        return tf_bert.read(directory)
    source = os.path.join(directory, "config.json")
    hf = read_json(source)
    family = interop.family_for_hf(hf, source)
    config = family.config_from_hf(hf, source)  # every setting checked before it is used
    state = read_safetensors(directory)
    return family, config, family.load(state, config, os.path.join(directory, WEIGHTS))


def run_config(arch: str, config: TransformerConfig, source: str) -> ml_collections.ConfigDict:
    """The pretrax run config of a converted checkpoint: the family's launch config (BERT-base size)
    whose model section is ``config``, every field stated (the source's shapes, dropout,
    activation, norm, epsilon, initializer range, padding id), but ``sep_id``: [SEP] is the
    tokenizer's, set when it is loaded (``launch.train.modeling.model_config``)."""
    import importlib
    module, variant = RUN_CONFIGS[arch]
    cfg = importlib.import_module(f"launch.configs.{module}").get_config(variant)
    fields = {k: v for k, v in dataclasses.asdict(config).items()
              if k != "sep_id" and (arch == "t5" or k not in SEQ2SEQ_FIELDS)}
    with cfg.unlocked():
        cfg.model = ml_collections.ConfigDict({"arch": arch, **fields})
        cfg.converted_from = os.path.abspath(source)
    cfg.data.max_seq_length = config.max_length
    # The checkpoint's own tokenizer files (data.tokenizer.load → data/hf_tokenizers.py), with
    # its own special ids, for launch.finetune and launch.generate.
    cfg.data.tokenizer = f"hf:{os.path.abspath(source)}"
    return cfg


def write_workdir(workdir: str, cfg, params) -> None:
    """``workdir/config.json`` and an Orbax checkpoint (step 0) holding ``params`` only.

    Raises:
      ValueError: when ``workdir`` already holds a run (never overwritten).
    """
    if checkpoint.latest_step(workdir) is not None or os.path.exists(
            os.path.join(workdir, "config.json")):
        raise ValueError(f"{workdir} already holds a run (config.json or a checkpoint); nothing "
                         "was written. Choose a new --workdir")
    workdir_lib.write_config(workdir, cfg, [])
    manager = ocp.CheckpointManager(
        os.path.join(storage.absolute(workdir), "checkpoints"),
        options=ocp.CheckpointManagerOptions(create=True), item_names=("state", "data"))
    manager.save(0, args=ocp.args.Composite(
        state=ocp.args.StandardSave({"params": params}), data=ocp.args.JsonSave({})))
    manager.wait_until_finished()
    manager.close()


def complete(loaded: interop.maps.Loaded, model, source: str) -> dict:
    """The pretraining model's parameters: ``loaded``'s, checked against the model's shapes, and
    the parts it lacks as pretrax initialises them (``model.init``, seed 0).

    Raises:
      ValueError: naming every loaded parameter whose shape the model contradicts (e.g. a
        vocab_size in config.json that the embedding's rows contradict).
    """
    expected = interop.maps.flatten(abstract_params(model))
    have = interop.maps.flatten(loaded.params)
    try:
        interop.maps.check_shapes(loaded.params, {k: v for k, v in expected.items() if k in have})
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None
    lacking = sorted(set(expected) - set(have))
    if lacking:
        fresh = interop.maps.flatten(jax.jit(lambda key: nn.unbox(
            model.init(key, dummy_batch())["params"]))(jax.random.key(0)))
        have.update({k: np.asarray(fresh[k]) for k in lacking})
    return interop.maps.unflatten(have)


def saved_as(directory: str, family) -> str:
    """The class a checkpoint was saved as (its config.json's ``architectures``), else what it
    is (Google's TF BERT release has no config.json)."""
    path = os.path.join(directory, "config.json")
    if not os.path.exists(path):
        return f"TF {family.NAME}"
    named = read_json(path).get("architectures")
    return ", ".join(map(str, named)) if isinstance(named, list) and named else family.NAME


def describe(loaded: interop.maps.Loaded) -> list[str]:
    """One line each: what was loaded, what was initialised, and (if any) what was not used."""
    lines = ["loaded: " + ", ".join(f"{part} ({n} tensors)" for part, n in loaded.loaded.items()),
             "initialised: " + (", ".join(loaded.missing) + " (pretrax's initialisers, seed 0)"
                                if loaded.missing else "none")]
    if loaded.unused:
        lines.append("not used: " + ", ".join(f"{group} ({n} tensors)"
                                              for group, n in loaded.unused.items()))
    return lines


def import_hf(source: str, workdir: str, *, force_unlock: bool = False) -> TransformerConfig:
    """Converts a transformers (or TF BERT) checkpoint directory into a pretrax workdir, holding
    its lock (``lock.acquire``; ``force_unlock``: one held on another host is removed)."""
    family, config, loaded = read_hf(source)
    cfg = run_config(family.ARCH, config, source)
    model = models.make_model(family.ARCH, config, **modeling.model_options(cfg))
    params = complete(loaded, model, source)
    with lock.acquire(workdir, force=force_unlock):
        write_workdir(workdir, cfg, params)
    print(f"{source} ({saved_as(source, family)}) → {workdir}: model.arch={family.ARCH}, "
          f"{sum(x.size for x in jax.tree_util.tree_leaves(params)):,} parameters", flush=True)
    print("\n".join(describe(loaded)), flush=True)
    try:  # launch.finetune and launch.generate will tokenise with it (data.tokenizer = hf:DIR)
        hf_tokenizers.load(source)
    except (FileNotFoundError, ValueError) as e:
        print(f"note: launch.finetune and launch.generate on {workdir} need its tokenizer: {e}",
              flush=True)
    return config


def dummy_batch() -> dict:
    """A batch of one short row with every input any pretraining model reads."""
    return {"token_ids": np.ones((1, 8), np.int32), "type_ids": np.zeros((1, 8), np.int32),
            "mlm_positions": np.zeros((1, 2), np.int32),
            "plm_target_mapping": np.zeros((1, 2, 8), np.float32),
            "encoder_input_ids": np.ones((1, 8), np.int32),
            "decoder_input_ids": np.ones((1, 4), np.int32)}


def abstract_params(model) -> dict:
    """A pretraining model's parameter tree as ShapeDtypeStructs (nothing computed)."""
    return jax.eval_shape(lambda: nn.unbox(model.init(jax.random.key(0), dummy_batch())["params"]))


def load_workdir(workdir: str, step: int = -1):
    """``(arch, TransformerConfig, params, step)`` of a pretrax workdir's checkpoint (its config's
    model section as it stands: no tokenizer is loaded)."""
    cfg = ml_collections.ConfigDict(workdir_lib.read_config(workdir))
    # Traced here for its parameter shapes only: the einsum path, whatever platform trained it.
    config = modeling.model_config(cfg, cfg.model.vocab_size).replace(attention_impl="xla")
    model = models.make_model(cfg.model.arch, config, **modeling.model_options(cfg))
    params, step, _ = checkpoint.restore_params_subtree(workdir, "", abstract_params(model), step,
                                                     step_flag="--step")
    params = unstack_layers(jax.tree_util.tree_map(np.asarray, params), config.num_layers,
                            config.decoder_layers)
    return cfg.model.arch, config.replace(scan_layers=False, remat="none"), params, step


def unstack_layers(params: dict, num_layers: int, decoder_layers: int | None = None) -> dict:
    """A ``scan_layers`` run's ``encoder/layers`` (and T5's ``decoder/layers``, of
    ``decoder_layers``), stacked on a leading N axis, as ``layers_0 … layers_{N-1}``: the tree
    of the unscanned model; others unchanged."""
    out = dict(params)
    for group, n_layers in (("encoder", num_layers), ("decoder", decoder_layers)):
        if "layers" not in out.get(group, {}):
            continue
        stack = dict(out[group])
        stacked = stack.pop("layers")
        for n in range(n_layers):
            stack[f"layers_{n}"] = jax.tree_util.tree_map(lambda x, n=n: x[n], stacked)
        out[group] = stack
    return out


EXPORTED = (WEIGHTS, "config.json", hf_tokenizers.TOKENIZER_JSON, "README.md")


def export_hf(workdir: str, target: str, step: int = -1) -> str:
    """Writes ``target/config.json`` + ``target/model.safetensors`` from a workdir's checkpoint,
    its tokenizer's files, ``README.md`` (the model card) and ``pretrax_config.json``; a tokenizer
    that cannot be exported is said in a ``note:`` line, the rest written.

    Raises:
      ValueError: when ``target`` already holds an export's file (never overwritten), or the
        architecture has no transformers counterpart.
    """
    from safetensors.numpy import save_file
    for name in EXPORTED:
        if os.path.exists(os.path.join(target, name)):
            raise ValueError(f"{os.path.join(target, name)} exists; nothing was written. Choose "
                             "a new --to_hf directory")
    command = (f"python -m launch.convert --workdir={workdir} --to_hf={target}"
               + (f" --step={step}" if step >= 0 else ""))
    arch, config, params, step = load_workdir(workdir, step)
    family = interop.family_for_arch(arch)
    state = family.params_to_hf(params, config)
    cfg = workdir_lib.read_config(workdir)
    hf_config, tokenizer = family.config_to_hf(config), {}
    try:
        tokenizer = export_files.tokenizer_files(cfg["data"]["tokenizer"], arch, config.max_length)
        hf_config.update(export_files.token_ids(cfg["data"]["tokenizer"]))
    except (FileNotFoundError, ValueError) as e:
        print(f"note: the export has no tokenizer files: {e}", flush=True)
    files = {"config.json": json.dumps(hf_config, indent=2, sort_keys=True).encode(), **tokenizer,
             "README.md": export_files.model_card(
                 cfg, hf_config, workdir=workdir, step=step, command=command,
                 parameters=sum(x.size for x in state.values()), tokenizer=bool(tokenizer)
             ).encode(), "pretrax_config.json": json.dumps(cfg, indent=2, sort_keys=True).encode()}
    os.makedirs(target, exist_ok=True)
    for name, content in files.items():
        with open(os.path.join(target, name), "wb") as f:
            f.write(content)
    save_file(state, os.path.join(target, WEIGHTS), metadata={"format": "pt"})
    print(f"{workdir} (step {step}) → {target}: {family.HF_ARCHITECTURE}, {len(state)} tensors; "
          f"{', '.join(sorted(files))}", flush=True)
    return target
