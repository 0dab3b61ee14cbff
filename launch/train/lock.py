"""One run per workdir: ``WORKDIR/.lock``, taken before anything in the workdir is written.

Two runs on one workdir would each append every step to ``metrics.jsonl`` and each delete the
other's checkpoints (retention, and the start-up clean-up of unfinished saves). So every binary
that writes a workdir takes its lock first and holds it until it exits, whatever the exit (a
``with`` block); a second run is refused in one line naming the holder.

The lock is a JSON file naming its holder (host, pid, start time, command). A lock whose process
is gone on this same host (killed with SIGKILL, which nothing can clean up after) is reclaimed
with a note; one held on another host cannot be checked from here, so it is removed only when
asked (``--force_unlock``). On a local disk it is created atomically (``O_CREAT | O_EXCL``); a
bucket has no create-if-absent through ``tf.io.gfile`` (no preconditions; its rename is a copy),
so there each run writes its own token, waits ``REMOTE_SETTLE_S`` and reads it back, and the run
whose token is not there backs off: two runs whose check and write lie further apart than that
can both win. With several processes, process 0 takes the lock and tells the others.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import shlex
import socket
import sys
import time
import uuid

import jax
import numpy as np
from jax.experimental import multihost_utils

from launch.train import storage

LOCK_FILE = ".lock"
REMOTE_SETTLE_S = 2.0  # longer than a bucket write takes, so a concurrent writer shows by then
_ATTEMPTS = 5


class WorkdirLocked(ValueError):
    """Another run holds the workdir (a refused input: the binaries print it and exit 1)."""


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of ``pid`` from /proc, or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()  # after the command, which may hold ")"
    except (OSError, IndexError):
        return None
    return fields[0], fields[19]


def _owner(token: str) -> dict:
    pid = os.getpid()
    stat = _proc_stat(pid)
    return {"host": socket.gethostname(), "pid": pid, "process_start": stat and stat[1],
            "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": shlex.join(sys.argv), "token": token}


def _alive(holder: dict) -> bool | None:
    """Whether the holder's process still runs: None when it is on another host (or unknown).

    The start time tells a reused pid (a container restarted with the same pids) from the
    holder; a zombie is gone.
    """
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return None
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    stat = _proc_stat(holder["pid"])
    if stat is None:
        return not os.path.isdir("/proc/self")  # no /proc here: trust kill()
    state, start = stat
    recorded = holder.get("process_start")
    return state not in ("Z", "X") and recorded in (None, start)


def _describe(holder: dict) -> str:
    if "token" not in holder:
        return "an unknown run (the lock file is not pretrax's JSON)"
    command = holder.get("command", "?")
    command = command if len(command) <= 160 else command[:157] + "..."
    return (f"{command} (pid {holder.get('pid')} on {holder.get('host')}, since "
            f"{holder.get('since')})")


def _read(path: str) -> dict | None:
    """The holder recorded in ``path``; None when there is no lock; {} when it is unreadable
    (after a short wait: a lock being created is empty for a moment)."""
    for _ in range(3):
        try:
            with storage.open_file(path) as f:
                text = f.read()
        except FileNotFoundError:
            return None
        except Exception:  # noqa: BLE001 - gfile raises its own NotFoundError
            if not storage.exists(path):
                return None
            text = ""
        with contextlib.suppress(ValueError):
            holder = json.loads(text)
            if isinstance(holder, dict):
                return holder
        time.sleep(0.1)
    return {}


def _settle() -> None:
    time.sleep(REMOTE_SETTLE_S)


def _create(path: str, owner: dict) -> bool:
    """Writes ``owner`` to ``path`` unless a lock is there; True when it is ours.

    Raises:
      WorkdirLocked: on a bucket, another run wrote its own lock at the same moment and won.
    """
    text = json.dumps(owner, indent=1)
    if not storage.is_remote(path):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        return True
    if storage.exists(path):
        return False
    with storage.open_file(path, "w") as f:
        f.write(text)
    _settle()  # a run that checked at the same moment has overwritten it by now: it wins
    holder = _read(path) or {}
    if holder.get("token") != owner["token"]:
        raise WorkdirLocked(f"{os.path.dirname(path)} was taken at the same moment by another "
                            f"run: {_describe(holder)}; nothing was written. Use another "
                            "--workdir, or wait for that run to finish")
    return True


@contextlib.contextmanager
def _reclaim_guard(workdir: str):
    """Local disks: one process at a time decides a stale lock's fate (``flock`` on the workdir,
    released by the kernel even on SIGKILL); elsewhere nothing (``_create`` arbitrates)."""
    if storage.is_remote(workdir):
        yield
        return
    import fcntl
    fd = os.open(workdir, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):  # e.g. NFS, which refuses flock on a directory
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def _refusal(workdir: str, holder: dict, alive: bool | None) -> WorkdirLocked:
    who = _describe(holder)
    if alive:
        return WorkdirLocked(
            f"{workdir} is in use by another run: {who}; nothing was written. Wait for it to "
            f"finish, stop it (kill {holder['pid']}), or use another --workdir")
    return WorkdirLocked(
        f"{workdir} is in use by another run: {who}; nothing was written. Wait for it to finish "
        f"or use another --workdir; if that run is gone (e.g. its machine stopped), rerun with "
        f"--force_unlock to remove {os.path.join(workdir, LOCK_FILE)}")


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")  # one write: a background thread cannot split the line
    sys.stderr.flush()


def _remove_stale(workdir: str, path: str, holder: dict, force: bool) -> None:
    """Removes the lock of ``holder`` if it is still the one there; refuses a live holder, and
    one on another host unless ``force``."""
    alive = _alive(holder)
    if alive or (alive is None and not force):
        raise _refusal(workdir, holder, alive)
    with _reclaim_guard(workdir):
        if _read(path) != holder:
            return  # another run reclaimed it meanwhile: try again
        if alive is None:
            _say(f"warning: --force_unlock: removing {path}, held by {_describe(holder)}")
        else:
            _say(f"note: reclaiming {path} from {_describe(holder)}, which is no longer running")
        storage.remove(path)


class WorkdirLock:
    """A held workdir lock; ``release()`` (or leaving its ``with`` block) gives it up."""

    def __init__(self, workdir: str, owner: dict | None, created: list[str]):
        self.workdir, self.path = workdir, os.path.join(workdir, LOCK_FILE)
        self._owner, self._created = owner, created

    def __enter__(self) -> WorkdirLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def release(self) -> None:
        """Removes the lock file (process 0) unless another run took it over (``--force_unlock``),
        and the directories the lock created, if nothing else was written into them."""
        owner, self._owner = self._owner, None
        if owner is None:
            return
        holder = _read(self.path)
        if holder and holder.get("token") == owner["token"]:
            storage.remove(self.path)
        elif holder:
            _say(f"warning: {self.path} was taken over by {_describe(holder)}; left to it")
        for directory in self._created:
            try:
                os.rmdir(directory)
            except OSError:
                break


def _missing_dirs(workdir: str) -> list[str]:
    """The local directories that making ``workdir`` creates, deepest first."""
    if storage.is_remote(workdir):
        return []
    missing, path = [], os.path.abspath(workdir)
    while not os.path.exists(path):
        missing.append(path)
        path = os.path.dirname(path)
    return missing


def _acquire_here(workdir: str, force: bool) -> WorkdirLock:
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        # The OS's own error, named by the binaries in one line (gfile's would not say which).
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), workdir)
    created = _missing_dirs(workdir)
    storage.makedirs(workdir)
    path, owner = os.path.join(workdir, LOCK_FILE), _owner(uuid.uuid4().hex)
    try:
        for _ in range(_ATTEMPTS):
            if _create(path, owner):
                return WorkdirLock(workdir, owner, created)
            holder = _read(path)
            if holder is not None:
                _remove_stale(workdir, path, holder, force)
        raise WorkdirLocked(f"{workdir}: could not take {path} in {_ATTEMPTS} tries, other runs "
                            "keep taking it; nothing was written. Run one at a time")
    except BaseException:
        WorkdirLock(workdir, None, created).release()
        raise


def acquire(workdir: str, *, force: bool = False) -> WorkdirLock:
    """Takes ``workdir``'s lock (creating the workdir); use it as ``with acquire(workdir):``.

    Call before anything in the workdir is read for writing or written. On several processes
    every process calls it: process 0 takes the lock, the others learn whether it did.

    Args:
      workdir: a local path or a remote one (``gs://…``).
      force: remove a lock held on another host (``--force_unlock``) instead of refusing; a live
        process on this host is refused even so.

    Raises:
      WorkdirLocked: another run holds it; naming that run and what to do (nothing written).
    """
    if jax.process_count() == 1:
        return _acquire_here(workdir, force)
    held, error = WorkdirLock(workdir, None, []), None
    if jax.process_index() == 0:
        try:
            held = _acquire_here(workdir, force)
        except Exception as e:  # noqa: BLE001 - the others must hear of any failure, not hang
            error = e
    ok = multihost_utils.broadcast_one_to_all(np.int32(error is None))
    if error is not None:
        raise error
    if not int(ok):
        raise WorkdirLocked(f"{workdir}: process 0 could not take its lock (its message says "
                            "why); nothing was written")
    return held
