"""Where metric rows go (``--config.train.writers``): ``metrics.jsonl``, TensorBoard, and
Weights & Biases when asked for, each behind one small interface (``Writer``).

``metrics.jsonl`` on a local disk is one file, appended line by line. A bucket object cannot be
appended to, and rewriting the whole file at every log step costs time quadratic in the run's
length; so on a remote workdir (``gs://…``) the rows go to numbered parts, ``metrics.jsonl-00001``,
``metrics.jsonl-00002``, …, of at most ``PART_LINES`` rows each: a log step rewrites only the
current part (bounded), nothing buffered is lost when a run is killed, and a whole run is a few
objects. ``read_jsonl`` reads either layout (``gsutil cat WORKDIR/metrics.jsonl-*`` too).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from typing import Protocol

from launch.train import storage

NAMES = ("jsonl", "tensorboard", "wandb")
DEFAULT = "jsonl,tensorboard"
JSONL = "metrics.jsonl"
PART_LINES = 100
_PART = re.compile(re.escape(JSONL) + r"-(\d+)")


class Writer(Protocol):
    """One destination of metric rows (process 0 only)."""

    def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
        """Records ``scalars`` at ``step`` (kept until ``flush`` at the latest)."""

    def flush(self) -> None:
        """Makes what was written so far durable where the destination allows it."""

    def close(self) -> None:
        """Flushes and releases the destination."""


def parse(spec: str) -> list[str]:
    """The writer names of ``train.writers`` (comma-separated; "" = none: progress lines only).

    Raises:
      ValueError: an unknown or repeated name.
    """
    names = [n.strip() for n in spec.split(",") if n.strip()]
    bad = [n for n in names if n not in NAMES] or (names if len(set(names)) < len(names) else [])
    if bad:
        raise ValueError(f"train.writers={spec!r}: {bad[0]!r} is unknown or repeated; use a "
                         f"comma-separated list of {', '.join(NAMES)}, e.g. "
                         f"--config.train.writers={DEFAULT},wandb")
    return names


def check(spec: str) -> None:
    """Refuses, before a run starts, writers it could not make (``parse``; wandb not installed).

    Raises:
      ValueError: in one line, with the fix.
    """
    if "wandb" in parse(spec):
        _import_wandb()


def make(spec: str, workdir: str, *, resume_step: int = 0,
         config: dict | None = None) -> list[Writer]:
    """The writers ``spec`` names, for ``workdir`` (rows past ``resume_step`` are dropped from
    ``metrics.jsonl``, so a resumed run reads as one; ``config`` goes to W&B)."""
    made = []
    for name in parse(spec):
        if name == "jsonl":
            made.append(JsonlWriter(workdir, resume_step=resume_step))
        elif name == "tensorboard":
            made.append(TensorBoardWriter(workdir))
        else:
            made.append(WandbWriter(workdir, config=config))
    return made


def _step_of(line: str) -> float:
    """A metrics.jsonl line's step; inf (dropped on resume) for a blank or torn line, which a
    write cut short by a crash or a full disk can leave at the end."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return math.inf


def jsonl_files(workdir: str) -> list[str]:
    """``metrics.jsonl`` (when there) and its parts in order: the rows of a run."""
    if not storage.isdir(workdir):
        return []
    names = storage.listdir(workdir)
    parts = sorted((int(m.group(1)), n) for n in names if (m := _PART.fullmatch(n)))
    return [os.path.join(workdir, n) for n in [JSONL] * (JSONL in names) + [n for _, n in parts]]


def read_jsonl(workdir: str) -> list[dict]:
    """Every complete row of the workdir's ``metrics.jsonl``, either layout."""
    rows = []
    for path in jsonl_files(workdir):
        with storage.open_file(path) as f:
            lines = f.read().splitlines()
        rows += [json.loads(line) for line in lines if _step_of(line) < math.inf]
    return rows


class JsonlWriter:
    """One JSON object per row: appended to ``metrics.jsonl``, or (remote) to numbered parts."""

    def __init__(self, workdir: str, *, resume_step: int = 0):
        self.workdir, self.path = workdir, os.path.join(workdir, JSONL)
        self._remote = storage.is_remote(workdir)
        storage.makedirs(workdir)
        last = self._truncate_after(resume_step)
        self._part, self._part_lines, self._pending = last + 1, [], []

    def _truncate_after(self, step: int) -> int:
        """Drops the rows past ``step`` from every file (a part left empty goes); returns the
        number of the last part kept (0: none)."""
        last = 0
        for path in jsonl_files(self.workdir):
            with storage.open_file(path) as f:
                lines = f.read().splitlines(keepends=True)
            kept = [line for line in lines if _step_of(line) <= step]
            part = _PART.fullmatch(os.path.basename(path))
            if part and not kept:
                storage.remove(path)
                continue
            if kept != lines:
                with storage.open_file(path + ".tmp", "w") as f:
                    f.write("".join(kept))
                storage.replace(path + ".tmp", path)
            last = int(part.group(1)) if part else last
        return last

    def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
        self._pending.append(json.dumps({"step": int(step), **scalars}) + "\n")

    def flush(self) -> None:
        if not self._pending:
            return
        if not self._remote:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write("".join(self._pending))
            self._pending = []
            return
        while self._pending:  # fill the current part, then start the next
            room = PART_LINES - len(self._part_lines)
            self._part_lines += self._pending[:room]
            self._pending = self._pending[room:]
            with storage.open_file(f"{self.path}-{self._part:05d}", "w") as f:
                f.write("".join(self._part_lines))
            if len(self._part_lines) == PART_LINES:
                self._part, self._part_lines = self._part + 1, []

    def close(self) -> None:
        self.flush()


class TensorBoardWriter:
    """Scalars as TensorBoard summaries in ``WORKDIR/tensorboard``."""

    def __init__(self, workdir: str):
        import tensorflow as tf  # only the writer; binaries hide accelerators from TF first
        self._summary = tf.summary
        self._tb = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))

    def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
        with self._tb.as_default(step=int(step)):
            for k, v in scalars.items():
                self._summary.scalar(k, v)

    def flush(self) -> None:
        self._tb.flush()

    def close(self) -> None:
        self._tb.close()


def _import_wandb():
    try:
        import wandb
    except ImportError as e:
        raise ValueError("train.writers names wandb, but the wandb package is not installed: "
                         "pip install 'pretrax[wandb]' (and wandb login), or leave wandb out of "
                         f"--config.train.writers (default {DEFAULT})") from e
    return wandb


class WandbWriter:
    """Weights & Biases: one W&B run per workdir (a resumed run continues it).

    The project is ``$WANDB_PROJECT`` (default "pretrax"); the run id is derived from the
    workdir unless ``$WANDB_RUN_ID`` is set. W&B keeps its files in ``WORKDIR/wandb`` for a
    local workdir (else in ``$WANDB_DIR`` or ./wandb). Rows a resumed run logs again for steps
    W&B already has are ignored by W&B.
    """

    def __init__(self, workdir: str, *, config: dict | None = None):
        wandb = _import_wandb()
        path = storage.absolute(workdir)
        run_id = os.environ.get("WANDB_RUN_ID") or (
            "pretrax-" + hashlib.sha256(path.encode()).hexdigest()[:16])
        self._run = wandb.init(project=os.environ.get("WANDB_PROJECT", "pretrax"),
                               name=os.path.basename(path.rstrip("/")), id=run_id,
                               resume="allow", config=config,
                               dir=None if storage.is_remote(path) else path)

    def write_scalars(self, step: int, scalars: dict[str, float]) -> None:
        self._run.log(dict(scalars), step=int(step))

    def flush(self) -> None:
        pass  # W&B sends in the background; finish() waits for it

    def close(self) -> None:
        self._run.finish()
