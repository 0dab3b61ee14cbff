"""Orbax checkpoints: the whole train state plus the input position, saved asynchronously."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from jax.experimental import multihost_utils

from launch.train import stopping, storage

# Orbax writes a step into ``<step>.orbax-checkpoint-tmp-<time>`` and renames it when complete.
_UNFINISHED = re.compile(r"^(\d+)\.orbax-checkpoint-tmp")


def make_manager(workdir: str, cfg_train) -> ocp.CheckpointManager:
    """A manager over `workdir/checkpoints`: async saves, keep the newest N.

    When to save is decided by `loop.Schedule` (Orbax's own policy would also save the first step).
    A save cut short (the process killed mid-write, a full disk) leaves a
    ``<step>.orbax-checkpoint-tmp*`` directory that no restore reads; it is removed here, before
    anything else happens. Old steps are deleted only after a new one is complete, so a crash
    never costs an earlier checkpoint.
    """
    directory = os.path.join(storage.absolute(workdir), "checkpoints")
    remove_unfinished(directory)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=cfg_train.keep_checkpoints,
        enable_async_checkpointing=True,
        create=True,
    )
    return ocp.CheckpointManager(directory, options=options, item_names=("state", "data"))


def remove_unfinished(directory: str) -> None:
    """Deletes the directories of saves that never completed (process 0; before any save), in
    ``checkpoints/`` and in fine-tuning's ``best/`` alike.

    Orbax's own ``cleanup_tmp_directories`` does this in a background thread that only a later
    save waits for, so a run that stops before saving would leave them behind.
    """
    if jax.process_index() != 0 or not storage.isdir(directory):
        return
    for name in sorted(storage.listdir(directory)):
        if _UNFINISHED.match(name):
            logging.warning("removing %s: a checkpoint save that never completed",
                            os.path.join(directory, name))
            storage.rmtree(os.path.join(directory, name))


def save(manager: ocp.CheckpointManager, step: int, state, data_position: dict) -> None:
    """Starts an async save: returns once the arrays are copied off the devices.

    Raises:
      stopping.SaveFailed: this save, or the previous one still being written, failed (e.g. the
        disk is full); names the step, the reason and the newest complete checkpoint.
    """
    save_items(manager, step, state=ocp.args.StandardSave(state),
               data=ocp.args.JsonSave(data_position))


def save_items(manager: ocp.CheckpointManager, step: int, **items) -> None:
    """Starts an async save of ``items`` (Orbax save args by item name), as ``save`` does.

    Raises:
      stopping.SaveFailed: as ``save``.
    """
    finish(manager)  # a failure of the previous save is reported as that step's
    try:
        manager.save(step, args=ocp.args.Composite(**items), force=True)
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
    if not storage.isdir(directory):
        return []
    return sorted(int(d) for d in storage.listdir(directory)
                  if d.isdigit() and storage.isdir(os.path.join(directory, d)))


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
        unfinished = [int(m.group(1)) for d in storage.listdir(directory)
                      if (m := _UNFINISHED.match(d))] if storage.isdir(directory) else []
        step = max(unfinished) if unfinished else None
    good = [s for s in complete_steps(directory) if s != step]
    return stopping.SaveFailed(step, _reason(error), good[-1] if good else None, directory)


def abstract_like(state, shardings):
    """ShapeDtypeStructs carrying the target shardings: restore lands directly on the mesh."""
    return jax.tree_util.tree_map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings)


class UnfitCheckpointError(ValueError):
    """A checkpoint whose parameters do not fit the model it would be restored into."""


class UnreadableCheckpointError(ValueError):
    """A checkpoint whose files cannot be read (truncated, missing, garbage metadata)."""


# What reading a damaged checkpoint raises: TensorStore and Orbax report a truncated or missing
# array file as a ValueError (or OSError), garbage metadata as a JSON (ValueError), KeyError or
# TypeError. Never the shapes of a healthy checkpoint: `_check_fits` reads those first.
_UNREADABLE = (ValueError, OSError, KeyError, TypeError)


def _why(e: BaseException) -> str:
    """The first line of an error, short enough for a one-line message."""
    text = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return f"{type(e).__name__}: {text[:300]}{'…' if len(text) > 300 else ''}"


def _agreed(ok: bool) -> bool:
    """True when every process has ``ok`` (so all fall back, or none does)."""
    if jax.process_count() == 1:
        return ok
    return bool(np.min(multihost_utils.process_allgather(np.int32(ok))))


def _restore_step(manager: ocp.CheckpointManager, step: int, abstract_state):
    restored = manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()))
    return restored.state, dict(restored.data), step


def restore_latest(manager: ocp.CheckpointManager, abstract_state):
    """(state, data_position, step) of the newest checkpoint that can be read, or None when
    there is none.

    A checkpoint that cannot be read (a truncated or missing array file, garbage metadata) is
    skipped for the one before it; once one is restored, the skipped ones are moved to
    ``checkpoints/corrupt/STEP`` (kept, not deleted, and out of Orbax's way so that step can be
    saved again), with a warning naming each step and why.

    Raises:
      UnfitCheckpointError: the newest readable checkpoint's parameters do not fit
        ``abstract_state.params``; names every mismatched parameter with both shapes.
      ValueError: there are checkpoints, but none can be read (nothing is moved then).
    """
    steps = sorted(manager.all_steps(), reverse=True)
    if not steps:
        return None
    unreadable, reader = [], _reader(manager.directory)  # knows the item types: reads shapes
    try:
        for step in steps:
            restored = _try_step(reader, manager, step, abstract_state)
            if not isinstance(restored, str):
                _move_aside(manager, unreadable, step)
                return restored
            unreadable.append((step, restored))
    finally:
        reader.close()
    raise ValueError(
        f"no checkpoint in {manager.directory} can be read: " + "; ".join(
            f"step {step}: {why}" for step, why in unreadable) + ". Nothing was moved or "
        "deleted. Start a new --workdir, or move the checkpoints directory aside to train this "
        "one from scratch")


def _try_step(reader, manager: ocp.CheckpointManager, step: int, abstract_state):
    """(state, data_position, step), or why the step cannot be read (on any process)."""
    return _attempt(lambda: _saved_param_shapes(reader, step),
                    _flat_shapes(abstract_state.params),
                    lambda: _restore_step(manager, step, abstract_state), step, manager.directory)


def _attempt(read_shapes, wanted: dict, restore, step: int, where):
    """``restore()``, or why the step cannot be read (on any process); raises
    UnfitCheckpointError first when its shapes (``read_shapes()``) differ from ``wanted``."""
    try:
        saved = read_shapes()
    except _UNREADABLE as e:
        saved = e
    if not _agreed(not isinstance(saved, Exception)):
        return _why(saved) if isinstance(saved, Exception) else "unreadable on another process"
    _check_fits(saved, wanted, step, where, partial=False)
    try:
        restored = restore()
    except _UNREADABLE as e:
        restored = e
    if not _agreed(not isinstance(restored, Exception)):
        return (_why(restored) if isinstance(restored, Exception) else
                "unreadable on another process")
    return restored


def try_restore_params(directory, step: int, abstract):
    """The item ``params`` of the checkpoint at ``step`` in ``directory`` (fine-tuning's
    ``best/``) onto ``abstract``'s shardings, or why it cannot be read; raises
    UnfitCheckpointError when its parameters do not fit ``abstract``."""
    reader = _reader(directory, "params")
    item = ocp.args.PyTreeRestore(
        item=abstract, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract))
    try:
        return _attempt(lambda: _flat_shapes(dict(reader.item_metadata(step)["params"])),
                        _flat_shapes(abstract),
                        lambda: reader.restore(step, args=ocp.args.Composite(params=item)).params,
                        step, directory)
    finally:
        reader.close()


def _move_aside(manager: ocp.CheckpointManager, unreadable: list, restored_step: int) -> None:
    """Moves each unreadable step to ``checkpoints/corrupt/STEP`` (``STEP.N`` if taken)."""
    if not unreadable:
        return
    directory = os.fspath(manager.directory)
    if jax.process_index() == 0:
        for step, why in unreadable:
            target = os.path.join(directory, "corrupt", str(step))
            n = 1
            while storage.exists(target):
                target, n = os.path.join(directory, "corrupt", f"{step}.{n}"), n + 1
            storage.makedirs(os.path.dirname(target))
            storage.replace(os.path.join(directory, str(step)), target)
            logging.warning("the checkpoint at step %d cannot be read (%s); restored step %d "
                            "instead and moved step %d to %s", step, why, restored_step, step,
                            target)
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices("unreadable checkpoints moved aside")
    manager.reload()


def _read_only_manager(workdir: str) -> ocp.CheckpointManager:
    directory = os.path.join(storage.absolute(workdir), "checkpoints")
    if not storage.isdir(directory):
        raise FileNotFoundError(
            f"no checkpoints in {workdir} (looked for {directory}); point init_from at a "
            "pretraining workdir (the --workdir of launch.pretrain)")
    return _reader(directory)


def _reader(directory, tree_item: str = "state") -> ocp.CheckpointManager:
    """A read-only manager that knows the items' types, so it can read their metadata: the
    pytree ``tree_item`` and (for ``state``) the input position ``data``."""
    handlers = {tree_item: ocp.PyTreeCheckpointHandler()}
    if tree_item == "state":
        handlers["data"] = ocp.JsonCheckpointHandler()
    level = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)  # Orbax warns that read-only means read-only
    try:
        return ocp.CheckpointManager(
            directory, options=ocp.CheckpointManagerOptions(read_only=True),
            item_handlers=handlers)
    finally:
        logging.set_verbosity(level)


def latest_step(workdir: str) -> int | None:
    """The newest complete checkpoint step in ``workdir``, or None (no directory, or only
    unfinished saves)."""
    if not storage.isdir(os.path.join(storage.absolute(workdir), "checkpoints")):
        return None
    manager = _read_only_manager(workdir)
    step = manager.latest_step()
    manager.close()
    return step


def _flat_shapes(tree, prefix: str = "") -> dict[str, tuple]:
    if not isinstance(tree, Mapping):
        return {prefix.rstrip("/"): tuple(getattr(tree, "shape", ()) or ())}
    return {name: shape for k, v in tree.items()
            for name, shape in _flat_shapes(v, f"{prefix}{k}/").items()}


def _saved_param_shapes(manager: ocp.CheckpointManager, step: int) -> dict[str, tuple]:
    """``{"group/param": shape}`` of a checkpoint's parameters, from its metadata alone."""
    return _flat_shapes(dict(manager.item_metadata(step)["state"]["params"]))


def _check_fits(saved: dict, wanted: dict, step: int, where, *, partial: bool) -> None:
    """Raises UnfitCheckpointError naming every parameter whose shape differs (or that only
    one side has; with ``partial``, the checkpoint may hold more)."""
    names = sorted(wanted) if partial else sorted(set(wanted) | set(saved))
    problems = [f"{k}: checkpoint {saved.get(k, 'missing')}, this model "
                f"{wanted.get(k, 'missing')}" for k in names if saved.get(k) != wanted.get(k)]
    if problems:
        raise UnfitCheckpointError(
            f"the checkpoint at step {step} in {where} does not fit this model; mismatched "
            f"parameters:\n  " + "\n  ".join(problems[:12]) + (
                f"\n  … and {len(problems) - 12} more" if len(problems) > 12 else ""))


def restore_params_subtree(workdir: str, subtree: str, abstract, step: int | None = None, *,
                           step_flag: str = "--config.init_step"):
    """Parameters only: ``params/<subtree>`` (``""`` = all) of a checkpoint, resharded.

    Nothing else of the checkpoint (optimizer state, heads outside ``subtree``) is read.

    Args:
      workdir: the run that wrote the checkpoint.
      subtree: top-level parameter group to restore, e.g. ``"encoder"``.
      abstract: ShapeDtypeStructs with target shardings for this run's ``params[subtree]``; the
        checkpoint may hold more (e.g. a pooler this model does not use), never less.
      step: the checkpoint step; None (a config's unset ``init_step``) or -1 (the ``--step``
        flags' default) = the latest.
      step_flag: the caller's flag that picks a step, named in the message of an unreadable one.

    Returns:
      ``(params_subtree, step, saved_shapes)`` with ``saved_shapes`` the checkpoint's
      ``{"group/param": shape}`` for every parameter under ``params`` (for reporting).

    Raises:
      FileNotFoundError: no checkpoint (at that step).
      UnfitCheckpointError: the checkpoint's parameters do not fit ``abstract``; names every
        mismatch.
      UnreadableCheckpointError: its files cannot be read; names another step to try.
    """
    manager = _read_only_manager(workdir)
    try:
        return _restore_subtree(manager, workdir, subtree, abstract, step, step_flag)
    finally:
        manager.close()


def _restore_subtree(manager, workdir: str, subtree: str, abstract, step: int | None,
                     step_flag: str):
    steps = sorted(manager.all_steps())
    latest = step is None or step == -1
    if not steps or (not latest and step not in steps):
        raise FileNotFoundError(f"no checkpoint{'' if latest else f' at step {step}'} in "
                                f"{workdir}; it has steps {steps}")
    step = max(steps) if latest else step
    try:
        saved_params = _saved_param_shapes(manager, step)
    except _UNREADABLE as e:
        raise _unreadable_init(workdir, step, steps, e, step_flag) from e
    prefix = f"{subtree}/" if subtree else ""
    wanted = {f"{prefix}{k}": shape for k, shape in _flat_shapes(abstract).items()}
    try:
        _check_fits(saved_params, wanted, step, workdir, partial=True)
    except UnfitCheckpointError as e:
        raise UnfitCheckpointError(
            f"{e}\nUse the architecture the checkpoint was pretrained with (its config.json "
            "has model.* and data.tokenizer), or train from scratch without init_from.") from None
    item = {"params": {subtree: abstract} if subtree else abstract}
    try:
        restored = manager.restore(step, args=ocp.args.Composite(state=ocp.args.PyTreeRestore(
            item=item, restore_args=ocp.checkpoint_utils.construct_restore_args(item),
            partial_restore=True)))
    except _UNREADABLE as e:
        raise _unreadable_init(workdir, step, steps, e, step_flag) from e
    params = restored.state["params"]
    return (params[subtree] if subtree else params), step, saved_params


def _unreadable_init(workdir: str, step: int, steps: list[int], e: Exception,
                     step_flag: str) -> UnreadableCheckpointError:
    others = [s for s in steps if s != step]
    scratch = ", or train from scratch without init_from" if "init_step" in step_flag else ""
    return UnreadableCheckpointError(
        f"the checkpoint at step {step} in {workdir} cannot be read ({_why(e)}); it was not "
        "changed. " + (f"Use another of its steps, e.g. {step_flag}={others[-1]} (it has "
                       f"{others})" if others else "It has no other step; use another run") +
        scratch)
