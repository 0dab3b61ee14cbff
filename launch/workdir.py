"""A run's workdir: its recorded config, and restoring its own latest checkpoint safely."""

from __future__ import annotations

import json
import os

import jax
from absl import logging

from launch import checkpoint


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def read_config(workdir: str) -> dict:
    """The config a workdir was last run with (``config.json``), as plain data (never code).

    Raises:
      FileNotFoundError: naming the file, when the workdir has none.
    """
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: {workdir} is not a pretrax workdir (or its "
                                "run never started)")
    with open(path) as f:
        return json.load(f)


def config_changes(workdir: str, cfg) -> list[str]:
    """Keys whose values differ from the config the workdir was last run with."""
    if not os.path.exists(os.path.join(workdir, "config.json")):
        return []
    old = _flat(read_config(workdir))
    new = _flat(json.loads(cfg.to_json_best_effort()))
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k)]


def write_config(workdir: str, cfg, changes: list[str]) -> None:
    """Writes ``config.json`` (process 0); a changed config keeps the old one beside it."""
    if jax.process_index() != 0:
        return
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, "config.json")
    if changes:
        logging.warning("config differs from the one in %s (%s); continuing with the new one, "
                        "the old one is kept as config.previous.json", path, "; ".join(changes))
        os.replace(path, os.path.join(workdir, "config.previous.json"))
    with open(path, "w") as f:
        f.write(cfg.to_json_best_effort(indent=2, sort_keys=True))


def restore(manager, state, shardings, workdir: str, changes: list[str]):
    """The latest checkpoint, or a ValueError that says which config change makes it unfit."""
    try:
        return checkpoint.restore_latest(manager, checkpoint.abstract_like(state, shardings))
    except (ValueError, KeyError, TypeError) as e:
        reason = str(e).split(". ")[0]  # Orbax's own advice (its API flags) is not for our users
        raise ValueError(
            f"the checkpoint in {workdir} does not fit this run's model: {reason}.\nConfig changes "
            f"since it was written: {changes or 'none recorded'}. Resume with the old values, "
            f"or start a new --workdir. Nothing in {workdir} was changed.") from e
