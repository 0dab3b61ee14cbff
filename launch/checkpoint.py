"""Orbax checkpoints: the whole train state plus the input position, saved asynchronously."""

from __future__ import annotations

import os

import jax
import orbax.checkpoint as ocp


def make_manager(workdir: str, cfg_train) -> ocp.CheckpointManager:
    """A manager over `workdir/checkpoints`: async saves, keep the newest N.

    When to save is decided by `is_due` (Orbax's own policy would also save the first step).
    """
    options = ocp.CheckpointManagerOptions(
        max_to_keep=cfg_train.keep_checkpoints,
        enable_async_checkpointing=True,
        create=True,
    )
    return ocp.CheckpointManager(os.path.join(os.path.abspath(workdir), "checkpoints"),
                                 options=options, item_names=("state", "data"))


def is_due(step: int, cfg_train) -> bool:
    """Every `checkpoint_every` steps and at the last step."""
    return step % cfg_train.checkpoint_every == 0 or step == cfg_train.steps


def save(manager: ocp.CheckpointManager, step: int, state, data_position: dict) -> None:
    """Starts an async save: returns once the arrays are copied off the devices."""
    manager.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_position)), force=True)


def abstract_like(state, shardings):
    """ShapeDtypeStructs carrying the target shardings: restore lands directly on the mesh."""
    return jax.tree_util.tree_map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings)


def restore_latest(manager: ocp.CheckpointManager, abstract_state):
    """(state, data_position, step) of the newest checkpoint, or None when there is none."""
    step = manager.latest_step()
    if step is None:
        return None
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
    return restored.state, dict(restored.data), step
