"""Orbax checkpoints: the whole train state plus the input position, saved asynchronously."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping

import jax
import orbax.checkpoint as ocp
from absl import logging

from launch import stopping

# Orbax writes a step into ``<step>.orbax-checkpoint-tmp-<time>`` and renames it when complete.
_UNFINISHED = re.compile(r"^(\d+)\.orbax-checkpoint-tmp")


def make_manager(workdir: str, cfg_train) -> ocp.CheckpointManager:
    """A manager over `workdir/checkpoints`: async saves, keep the newest N.

    When to save is decided by `is_due` (Orbax's own policy would also save the first step).
    A save cut short (the process killed mid-write, a full disk) leaves a
    ``<step>.orbax-checkpoint-tmp*`` directory that no restore reads; it is removed here, before
    anything else happens. Old steps are deleted only after a new one is complete, so a crash
    never costs an earlier checkpoint.
    """
    directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    _remove_unfinished(directory)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=cfg_train.keep_checkpoints,
        enable_async_checkpointing=True,
        create=True,
    )
    return ocp.CheckpointManager(directory, options=options, item_names=("state", "data"))


def _remove_unfinished(directory: str) -> None:
    """Deletes the directories of saves that never completed (process 0; before any save).

    Orbax's own ``cleanup_tmp_directories`` does this in a background thread that only a later
    save waits for, so a run that stops before saving would leave them behind.
    """
    if jax.process_index() != 0 or not os.path.isdir(directory):
        return
    for name in sorted(os.listdir(directory)):
        if _UNFINISHED.match(name):
            logging.warning("removing %s: a checkpoint save that never completed",
                            os.path.join(directory, name))
            shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


def is_due(step: int, cfg_train) -> bool:
    """Every `checkpoint_every` steps and at the last step."""
    return step % cfg_train.checkpoint_every == 0 or step == cfg_train.steps


def save(manager: ocp.CheckpointManager, step: int, state, data_position: dict) -> None:
    """Starts an async save: returns once the arrays are copied off the devices.

    Raises:
      stopping.SaveFailed: this save, or the previous one still being written, failed (e.g. the
        disk is full); names the step, the reason and the newest complete checkpoint.
    """
    finish(manager)  # a failure of the previous save is reported as that step's
    try:
        manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), data=ocp.args.JsonSave(data_position)),
            force=True)
    except (OSError, ValueError, RuntimeError) as e:
        raise _save_failed(manager, step, e) from e


def finish(manager: ocp.CheckpointManager) -> None:
    """Waits for the save in flight to be complete on disk.

    Raises:
      stopping.SaveFailed: it failed; names its step, the reason and the newest complete one.
    """
    try:
        manager.wait_until_finished()
    except (OSError, ValueError, RuntimeError) as e:
        raise _save_failed(manager, None, e) from e


def complete_steps(directory) -> list[int]:
    """Steps with a complete checkpoint in ``directory`` (a workdir's ``checkpoints``), sorted;
    a save that was cut short does not count. Reads the directory, not a manager's memory."""
    directory = str(directory)
    if not os.path.isdir(directory):
        return []
    return sorted(int(d) for d in os.listdir(directory)
                  if d.isdigit() and os.path.isdir(os.path.join(directory, d)))


def _reason(error: BaseException) -> str:
    """The OS's words for the error behind ``error`` (e.g. "[Errno 28] No space left on device"):
    the first OSError in its chain, or the errno TensorStore quotes; else its first line."""
    seen = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno:
            return f"[Errno {seen.errno}] {os.strerror(seen.errno)}"
        if code := re.search(r"os_error_code='?(\d+)", str(seen)):
            return f"[Errno {code.group(1)}] {os.strerror(int(code.group(1)))}"
        seen = seen.__cause__ or seen.__context__
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _save_failed(manager, step: int | None, error: BaseException) -> stopping.SaveFailed:
    directory = str(manager.directory)
    if step is None:  # the failed save's own directory, left unfinished, names its step
        unfinished = [int(m.group(1)) for d in os.listdir(directory)
                      if (m := _UNFINISHED.match(d))] if os.path.isdir(directory) else []
        step = max(unfinished) if unfinished else None
    good = [s for s in complete_steps(directory) if s != step]
    return stopping.SaveFailed(step, _reason(error), good[-1] if good else None, directory)


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


def _read_only_manager(workdir: str) -> ocp.CheckpointManager:
    directory = os.path.join(os.path.abspath(workdir), "checkpoints")
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"no checkpoints in {workdir} (looked for {directory}); point init_from at a "
            "pretraining workdir (the --workdir of launch.pretrain)")
    level = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)  # Orbax warns that read-only means read-only
    try:
        return ocp.CheckpointManager(
            directory, options=ocp.CheckpointManagerOptions(read_only=True),
            item_handlers={"state": ocp.PyTreeCheckpointHandler(),
                           "data": ocp.JsonCheckpointHandler()})
    finally:
        logging.set_verbosity(level)


def latest_step(workdir: str) -> int | None:
    """The newest complete checkpoint step in ``workdir``, or None (no directory, or only
    unfinished saves)."""
    if not os.path.isdir(os.path.join(os.path.abspath(workdir), "checkpoints")):
        return None
    manager = _read_only_manager(workdir)
    step = manager.latest_step()
    manager.close()
    return step


def _shape_of(leaf) -> tuple:
    return tuple(getattr(leaf, "shape", ()) or ())


def _flat_shapes(tree, prefix: str = "") -> dict[str, tuple]:
    if isinstance(tree, Mapping):
        out = {}
        for k, v in tree.items():
            out.update(_flat_shapes(v, f"{prefix}{k}/"))
        return out
    return {prefix.rstrip("/"): _shape_of(tree)}


def restore_params_subtree(workdir: str, subtree: str, abstract, step: int = -1):
    """Parameters only: ``params/<subtree>`` (``""`` = all) of a checkpoint, resharded.

    Nothing else of the checkpoint (optimizer state, heads outside ``subtree``) is read.

    Args:
      workdir: the run that wrote the checkpoint.
      subtree: top-level parameter group to restore, e.g. ``"encoder"``.
      abstract: ShapeDtypeStructs with target shardings for this run's ``params[subtree]``; the
        checkpoint may hold more (e.g. a pooler this model does not use), never less.
      step: the checkpoint step; -1 = the latest.

    Returns:
      ``(params_subtree, step, saved_shapes)`` with ``saved_shapes`` the checkpoint's
      ``{"group/param": shape}`` for every parameter under ``params`` (for reporting).

    Raises:
      FileNotFoundError: no checkpoint (at that step).
      ValueError: the checkpoint's parameters do not fit ``abstract``; names every mismatch.
    """
    manager = _read_only_manager(workdir)
    steps = manager.all_steps()
    if not steps or (step != -1 and step not in steps):
        raise FileNotFoundError(f"no checkpoint at step {step} in {workdir}; it has steps "
                                f"{sorted(steps)}")
    step = max(steps) if step == -1 else step
    saved = manager.item_metadata(step)["state"]
    saved_params = _flat_shapes(dict(saved["params"]))
    prefix = f"{subtree}/" if subtree else ""
    wanted = {f"{prefix}{k}": shape for k, shape in _flat_shapes(abstract).items()}
    problems = [f"{k}: checkpoint {saved_params[k] if k in saved_params else 'missing'}, "
                f"this model {shape}" for k, shape in sorted(wanted.items())
                if saved_params.get(k) != shape]
    if problems:
        raise ValueError(
            f"the checkpoint at step {step} in {workdir} does not fit this model; mismatched "
            f"parameters:\n  " + "\n  ".join(problems[:12]) + (
                f"\n  … and {len(problems) - 12} more" if len(problems) > 12 else "") +
            "\nUse the architecture the checkpoint was pretrained with (its config.json has "
            "model.* and data.tokenizer), or train from scratch without init_from.")
    item = {"params": {subtree: abstract} if subtree else abstract}
    restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
        item=item, restore_args=ocp.checkpoint_utils.construct_restore_args(item),
        partial_restore=True)))
    manager.close()
    params = restored.state["params"]
    return (params[subtree] if subtree else params), step, saved_params
