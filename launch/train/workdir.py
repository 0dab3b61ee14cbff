"""A run's workdir: its recorded config (read as data, never run), checked against this run's
before anything is written, and its latest readable checkpoint restored."""

from __future__ import annotations

import json
import os

import jax
from absl import logging

from launch.train import checkpoint, storage

# Keys that may differ from the workdir's config.json when a run resumes: none of them changes
# the model, the data or the order the data comes in, so the run stays one run.
SAFE_ON_RESUME = (
    # How long to train: resuming to train longer is what resuming is for. The learning rate
    # follows the new length's schedule from the restored step on (the warning says so).
    "train.steps",
    # What is logged, evaluated and saved, and how often: reporting only.
    "train.log_every", "train.eval_every", "train.eval_batches", "train.evals",
    "train.profile_steps", "train.peak_flops_per_device", "train.writers",
    "train.checkpoint_every", "train.keep_checkpoints",
    # Where the devices are and how the arrays lie on them: checkpoints restore onto any mesh,
    # and the math is the same (a job resumed on another slice).
    "mesh.data", "mesh.fsdp", "mesh.tensor", "logical_axis_rules",
    # Memory for compute: the same update (remat recomputes activations; microbatches
    # accumulate the same gradient in pieces).
    "model.remat", "train.microbatches",
    # How attention is computed: the same function of the same parameters (a fused kernel
    # rounds differently; none of them takes attention dropout); absent before it existed.
    "model.attention_impl",
    # Where the same TFDS data lives on this machine.
    "data.tfds_data_dir", "task.tfds_data_dir",
)


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


# Model-section keys of the configs before every run config stated its model field by field: a
# named shape (``preset``) and a converted checkpoint's shapes as a JSON string (``fields``).
PREDATING_MODEL_KEYS = ("preset", "fields")


def read_config(workdir: str) -> dict:
    """The config a workdir was last run with (``config.json``), as plain data (never code).

    Raises:
      FileNotFoundError: naming the file, when the workdir has none.
      ValueError: naming the file, when it is not a JSON object, or in one line when it predates
        the explicit model sections (``PREDATING_MODEL_KEYS``) and says what to do instead.
    """
    path = os.path.join(workdir, "config.json")
    if not storage.exists(path):
        raise FileNotFoundError(f"{path} not found: {workdir} is not a pretrax workdir (or its "
                                "run never started)")
    try:
        with storage.open_file(path) as f:
            config = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        config = e
    if not isinstance(config, dict):
        reason = f"{config}" if isinstance(config, Exception) else "not a JSON object"
        raise ValueError(f"{path} is not a pretrax config ({reason}); restore it (e.g. from "
                         f"config.previous.json beside it) or use a new --workdir")
    model = config.get("model")
    old = [f"model.{k}" for k in PREDATING_MODEL_KEYS if isinstance(model, dict) and k in model]
    if old:
        raise ValueError(
            f"{workdir} predates pretrax's explicit model configs (its config.json has "
            f"{' and '.join(old)}, which pretrax no longer reads): re-run pretraining (or "
            "fine-tuning) into a new --workdir, or re-convert a converted checkpoint with "
            "python -m launch.convert --from_hf=DIR --workdir=NEW")
    return config


def config_changes(workdir: str, cfg) -> list[str]:
    """``"key: old -> new"`` for every key that differs from the workdir's ``config.json``."""
    if not storage.exists(os.path.join(workdir, "config.json")):
        return []
    old = _flat(read_config(workdir))
    new = _flat(json.loads(cfg.to_json_best_effort()))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k)]


# Keys added later that change the data only when set: absent from an older workdir's config
# (which could not have used them), their default is safe on resume.
SAFE_WHEN_ADDED = ("data.stream_chunk_documents", "data.order_mid_sentence",
                   "task.max_eval_examples", "task.source_column", "task.target_column",
                   "decode.max_dev_examples")


def _is_safe(change: str) -> bool:
    key, _, values = change.partition(": ")
    return key in SAFE_ON_RESUME or (key in SAFE_WHEN_ADDED and values.startswith("None -> "))


def check_config(workdir: str, cfg, *, allow_change: bool = False) -> list[str]:
    """The config changes since the workdir's last run; refuses unsafe ones unless allowed.

    Call before anything is written. Changes of ``SAFE_ON_RESUME`` keys are allowed with a
    warning.

    Returns:
      Every change (``"key: old -> new"``), for ``write_config`` and ``restore``.

    Raises:
      ValueError: naming the changed keys and the fixes, when any other key changed and
        ``allow_change`` is false.
    """
    changes = config_changes(workdir, cfg)
    unsafe = [c for c in changes if not _is_safe(c)]
    if unsafe and not allow_change:
        raise ValueError(
            f"{workdir} was written by another config (changed: {'; '.join(unsafe)}); nothing "
            f"was written. Rerun with the config in {os.path.join(workdir, 'config.json')}, use "
            "a new --workdir, or pass --allow_config_change to resume with the new values")
    if changes and jax.process_index() == 0:
        schedule = any(c.startswith("train.steps:") for c in changes)
        logging.warning("resuming %s with config changes%s: %s%s", workdir,
                        "" if unsafe else " that are safe on resume", "; ".join(changes),
                        " (the learning rate now follows the schedule of the new train.steps)"
                        if schedule else "")
    return changes


def _set_aside(path: str) -> None:
    """Renames ``config.previous.json`` to the first free ``config.previous.N.json``."""
    if not storage.exists(path):
        return
    n = 1
    while storage.exists(path.replace(".json", f".{n}.json")):
        n += 1
    storage.replace(path, path.replace(".json", f".{n}.json"))


def write_config(workdir: str, cfg, changes: list[str]) -> None:
    """Writes ``config.json`` (process 0); a changed config keeps the old one beside it as
    ``config.previous.json`` (and any earlier one as ``config.previous.N.json``)."""
    if jax.process_index() != 0:
        return
    storage.makedirs(workdir)
    path = os.path.join(workdir, "config.json")
    if changes and storage.exists(path):
        previous = os.path.join(workdir, "config.previous.json")
        _set_aside(previous)
        storage.replace(path, previous)
    with storage.open_file(path + ".tmp", "w") as f:
        f.write(cfg.to_json_best_effort(indent=2, sort_keys=True))
    storage.replace(path + ".tmp", path)  # never a half-written config.json (on a disk)


def restore(manager, state, shardings, workdir: str, changes: list[str]):
    """The latest readable checkpoint (``checkpoint.restore_latest``), or None.

    Raises:
      ValueError: when the checkpoint does not fit this run's model (naming the parameters and
        the config changes since it was written), or no checkpoint can be read.
    """
    try:
        return checkpoint.restore_latest(manager, checkpoint.abstract_like(state, shardings))
    except checkpoint.UnfitCheckpointError as e:
        raise ValueError(
            f"{e}\nConfig changes since it was written: {'; '.join(changes) or 'none recorded'}. "
            f"Resume with the old values, or start a new --workdir. Nothing in {workdir} was "
            "changed.") from e
