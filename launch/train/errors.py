"""What a binary says when it fails: one line for any exception (what failed, where, what to
do) and its exit status, the traceback kept in ``WORKDIR/error.log``, and Orbax's background
error logging moved there too. ``launch.binary.explain_errors`` applies it; see
docs/troubleshooting.md for the messages."""

from __future__ import annotations

import datetime
import errno
import logging
import os
import re
import sys
import traceback
import warnings

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a program that Ctrl-C ended
ERROR_LOG = "error.log"
_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_PACKAGES = ("launch", "data", "lm", "objectives")  # pretrax's own code, for where errors arise


def explain(error: BaseException, workdir: str | None, *,
            verbose: bool = False) -> tuple[str, int]:
    """The one line and the exit status that end a binary on ``error``:

    - a run that stopped early (``launch.train.stopping``: preempted, diverged, a failed save):
      its message, and its exit status (75, 65, 74);
    - a ValueError or FileNotFoundError that pretrax raised (bad input, a config or checkpoint
      that does not fit): ``error: MESSAGE``, 1;
    - KeyboardInterrupt (Ctrl-C outside a training loop, or a second one inside): 130;
    - anything else: ``error:`` what failed, where, and what to do (``describe``), 1; its
      traceback is appended to ``WORKDIR/error.log`` when ``workdir`` is a local directory this
      process can write to, and the line says where.
    """
    if isinstance(error, KeyboardInterrupt):
        return ("interrupted (Ctrl-C): stopped without saving; run the same command again to "
                "start over (a training run resumes from its latest checkpoint)",
                EXIT_INTERRUPTED)
    stopping = sys.modules.get("launch.train.stopping")  # a Stopped was raised through it
    if stopping is not None and isinstance(error, stopping.Stopped):
        prefix = "" if isinstance(error, stopping.Preempted) else "error: "
        return f"{prefix}{error}", error.exit_status
    if isinstance(error, (ValueError, FileNotFoundError)) and _raised_by_pretrax(error):
        return f"error: {error}", 1  # pretrax's own words: what is wrong and the fix
    log = write_error_log(workdir, "the run ended with:\n" + traceback_text(error))
    return "error: " + describe(error, log, verbose=verbose), 1


def traceback_text(error: BaseException) -> str:
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))


def describe(error: BaseException, log: str | None, *, verbose: bool = False) -> str:
    """One line for an exception no library turned into a message: what failed (for an OSError
    its path), the innermost pretrax line it came from, what to do, and where its traceback is
    (``log``; else above, when ``verbose`` printed it; else how to see it)."""
    if isinstance(error, OSError) and error.strerror:
        paths = [repr(p) for p in (error.filename, error.filename2) if p is not None]
        what = f"{error.strerror}: {' -> '.join(paths)}" if paths else error.strerror
    else:
        text = (str(error).strip().splitlines() or [""])[0]
        what = text[:300] + ("…" if len(text) > 300 else "") or "(no message)"
    where = _origin(error)
    where = f"{type(error).__name__} at {where}" if where else type(error).__name__
    trace = (f"the traceback is in {log}" if log else "its traceback is above" if verbose else
             "run the same command with --verbose for the traceback")
    return f"{what} ({where}); {_advice(error)}; {trace}"


def _errno(error: BaseException) -> int | None:
    """The OS error code of ``error``, or the one TensorStore quotes in its message."""
    if getattr(error, "errno", None):
        return error.errno
    quoted = re.search(r"os_error_code='?(\d+)", str(error))
    return int(quoted.group(1)) if quoted else None


def _advice(error: BaseException) -> str:
    code = _errno(error)
    if isinstance(error, NotADirectoryError):
        return ("part of that path is a file, not a directory: give --workdir a directory, or "
                "a path that does not exist yet")
    if isinstance(error, IsADirectoryError):
        return "a file was expected there, not a directory: move it aside or give another path"
    if isinstance(error, PermissionError) or code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return ("this process may not write there: give a --workdir it can write to, or fix "
                "the permissions (or the read-only mount)")
    if code in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return "free disk space (or raise the quota), then run the same command again"
    if isinstance(error, OSError) or code is not None:
        return "check that path and the disk or bucket it is on, then run the same command again"
    if isinstance(error, MemoryError) or "RESOURCE_EXHAUSTED" in str(error):
        return ("out of memory: lower train.batch_size, raise train.microbatches, or set "
                "model.remat")
    return ("not something your input can fix as far as pretrax knows: please report it, "
            "with the traceback")


def _ours(frame: traceback.FrameSummary) -> bool:
    path = os.path.abspath(frame.filename)
    return (path.startswith(_REPO + os.sep) and
            os.path.relpath(path, _REPO).split(os.sep)[0] in _PACKAGES)


def _raised_by_pretrax(error: BaseException) -> bool:
    """Whether pretrax's own code raised ``error`` (its message was written for users), not a
    library beneath it."""
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and _ours(frames[-1])


def _origin(error: BaseException) -> str | None:
    """``file:line in function`` of the innermost frame in pretrax's own code, or None."""
    ours = [f for f in traceback.extract_tb(error.__traceback__) if _ours(f)]
    if not ours:
        return None
    frame = ours[-1]
    return f"{os.path.relpath(frame.filename, _REPO)}:{frame.lineno} in {frame.name}"


def write_error_log(workdir: str | None, text: str) -> str | None:
    """Appends ``text`` to ``WORKDIR/error.log`` (after a line with the time, the process id and
    the command line, once per process); returns its path, or None where ``workdir`` is not a
    local directory this process can write to (a file, missing, read-only, ``gs://``, full)."""
    if not workdir or "://" in workdir or not os.path.isdir(workdir):
        return None
    path = os.path.join(os.path.abspath(workdir), ERROR_LOG)
    if path not in _LOGGED:
        when = datetime.datetime.now().isoformat(timespec="seconds")
        text = f"=== {when} process {os.getpid()}: {' '.join(sys.argv)}\n{text}"
    try:
        with open(path, "a", encoding="utf-8", errors="backslashreplace") as f:
            f.write(text.rstrip() + "\n")
    except OSError:
        return None
    _LOGGED.add(path)
    return path


_LOGGED: set[str] = set()  # the error logs this process has written its header line to


class _BackgroundErrors(logging.Filter):
    """Moves the error records of Orbax's and asyncio's background work from stderr to
    ``WORKDIR/error.log``: when an async save fails, each of Orbax's threads logs the failure
    with its traceback (hundreds of lines) before the run's own one-line message. A record that
    cannot be written there stays on stderr."""

    def __init__(self, workdir: str | None):
        super().__init__()
        self.workdir = workdir
        self.previous_hook = sys.unraisablehook
        self.previous_showwarning = warnings.showwarning
        self._format = logging.Formatter(
            "%(levelname)s %(threadName)s %(pathname)s:%(lineno)d %(message)s")

    def filter(self, record: logging.LogRecord) -> bool:
        background = (record.name == "asyncio" or
                      f"{os.sep}orbax{os.sep}" in (record.pathname or ""))
        if record.levelno < logging.ERROR or not background:
            return True
        return write_error_log(self.workdir, self._format.format(record)) is None

    def unraisable(self, hook_args) -> None:
        """``sys.unraisablehook``: exceptions Python could raise nowhere, e.g. asyncio's "Event
        loop is closed" from Orbax's writer threads after a failed save."""
        frames = traceback.extract_tb(hook_args.exc_traceback)
        background = any(f"{os.sep}asyncio{os.sep}" in f.filename or
                         f"{os.sep}orbax{os.sep}" in f.filename for f in frames)
        text = "".join(traceback.format_exception(hook_args.exc_type, hook_args.exc_value,
                                                  hook_args.exc_traceback))
        text = f"unraisable exception (Python could raise it nowhere):\n{text}"
        if not background or write_error_log(self.workdir, text) is None:
            self.previous_hook(hook_args)

    def showwarning(self, message, category, filename, lineno, file=None, line=None) -> None:
        """``warnings.showwarning``: a coroutine that a failed async save left unawaited is
        reported when it is collected, often at exit after the run's one-line message."""
        if (issubclass(category, RuntimeWarning) and "was never awaited" in str(message)
                and write_error_log(self.workdir, f"{filename}:{lineno}: {category.__name__}: "
                                                  f"{message}") is not None):
            return
        self.previous_showwarning(message, category, filename, lineno, file, line)


_ROUTED: list[_BackgroundErrors] = []


def route_background_errors(workdir: str | None, *, verbose: bool = False) -> None:
    """Sends Orbax's and asyncio's background error records and unraisable exceptions to
    ``WORKDIR/error.log`` (``_BackgroundErrors``); ``verbose`` (or no ``workdir``) leaves them
    on stderr. Replaces an earlier call's routing."""
    for old in _ROUTED:
        for name in ("absl", "asyncio"):
            logging.getLogger(name).removeFilter(old)
        if sys.unraisablehook == old.unraisable:
            sys.unraisablehook = old.previous_hook
        if warnings.showwarning == old.showwarning:
            warnings.showwarning = old.previous_showwarning
    _ROUTED.clear()
    if verbose or not workdir:
        return
    route = _BackgroundErrors(workdir)
    for name in ("absl", "asyncio"):
        logging.getLogger(name).addFilter(route)
    sys.unraisablehook = route.unraisable
    warnings.showwarning = route.showwarning
    _ROUTED.append(route)
