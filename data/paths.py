"""Paths that may be local or remote (``gs://…``, any ``tf.io.gfile`` filesystem) alike.

Every file the stack reads or writes (corpora, prepared shards, tokenizers, task files,
workdirs) may live on a local disk or in a bucket: a pod's hosts share a bucket, not a disk.
Plain ``open``/``glob``/``os`` calls would look for a local directory named ``gs:``, so whoever
touches a user-given path goes through these functions. Local paths keep Python's own ``open``,
``gzip`` and ``glob`` (nothing slower, no TensorFlow import); remote ones go through
``tf.io.gfile`` (TensorFlow is imported on the first remote path). Tests use TensorFlow's
in-memory ``ram://`` filesystem as the bucket's stand-in (it lives in one process's memory).

The API (all take ``str`` or ``os.PathLike``):

* :func:`is_remote` — ``"://"`` in the path (``gs://``, ``ram://``, ``s3://``…);
* :func:`glob` — the files a pattern matches, sorted (``~`` expanded locally, directories
  dropped), ``[]`` when none;
* :func:`open` — like the builtin ``open`` (text is UTF-8 unless ``b`` in ``mode``); a missing
  file raises ``FileNotFoundError`` with the builtin's message, remote or local, and remote read
  errors are ``OSError``s, so callers catch one kind;
* :func:`open_decompressed` — a binary reader of a plain or gzipped file (gzip when its first
  bytes say so, or by its ``.gz`` name unless ``by_name=False``), for reading lines;
* :func:`read_bytes`, :func:`write_bytes`, :func:`exists`, :func:`isdir`, :func:`makedirs`,
  :func:`stat` (``(mtime_ns, size)``, e.g. for a cache key).

``launch/train/storage.py`` (workdirs) builds on these.
"""

from __future__ import annotations

import builtins
import errno
import glob as glob_lib
import gzip
import io
import os

_GZIP_MAGIC = b"\x1f\x8b"
_BUFFER = 1 << 20  # remote reads: one request a MiB, not one a line


def _gfile():
    import tensorflow as tf  # only remote paths pay for it
    return tf.io.gfile


def _errors():
    import tensorflow as tf
    return tf.errors


def is_remote(path) -> bool:
    """``gs://bucket/…`` and other URL-like paths, which ``os.path`` functions would mangle."""
    return "://" in os.fspath(path)


def _missing(path: str) -> FileNotFoundError:
    """The builtin ``open``'s error for a missing file, for a remote one too."""
    return FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)


def exists(path) -> bool:
    path = os.fspath(path)
    return _gfile().exists(path) if is_remote(path) else os.path.exists(path)


def isdir(path) -> bool:
    path = os.fspath(path)
    return _gfile().isdir(path) if is_remote(path) else os.path.isdir(path)


def makedirs(path) -> None:
    """Creates ``path`` and its parents; nothing if it exists."""
    path = os.fspath(path)
    if is_remote(path):
        _gfile().makedirs(path)
    elif not os.path.isdir(path):  # an existing directory is not written to (it may be read-only)
        os.makedirs(path, exist_ok=True)


def stat(path) -> tuple[int, int]:
    """``(mtime in ns, size in bytes)``; ``FileNotFoundError`` when missing."""
    path = os.fspath(path)
    if not is_remote(path):
        info = os.stat(path)
        return info.st_mtime_ns, info.st_size
    try:
        info = _gfile().stat(path)
    except _errors().NotFoundError:
        raise _missing(path) from None
    return int(info.mtime_nsec), int(info.length)


def glob(pattern) -> list[str]:
    """The files ``pattern`` matches, sorted; directories are left out, ``[]`` when none."""
    pattern = os.fspath(pattern)
    if not is_remote(pattern):
        return sorted(p for p in glob_lib.glob(os.path.expanduser(pattern)) if os.path.isfile(p))
    gfile = _gfile()
    try:
        matches = gfile.glob(pattern)
    except _errors().NotFoundError:  # some filesystems: the pattern's directory is missing
        return []
    return sorted(p for p in matches if not gfile.isdir(p))


class _RemoteReader(io.RawIOBase):
    """A ``tf.io.gfile.GFile`` read as a raw stream (so ``io.BufferedReader`` reads it in large
    requests), TensorFlow's errors turned into ``OSError``."""

    def __init__(self, path: str):
        super().__init__()
        self._path = path
        self._file = _gfile().GFile(path, "rb")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self._file.read(len(buffer))
        except _errors().NotFoundError:
            raise _missing(self._path) from None
        except _errors().OpError as err:
            raise OSError(f"{self._path}: {err.message}") from None
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._file.close()
        super().close()


def open(path, mode: str = "r"):  # noqa: A001 - the builtin's name, on purpose
    """A file object like the builtin ``open``'s: binary with ``b`` in ``mode``, else UTF-8 text.

    Remote reads are buffered (a MiB at a time); a remote write replaces the file.

    Raises:
      FileNotFoundError: reading a file that does not exist (the builtin's message).
    """
    path = os.fspath(path)
    if not is_remote(path):
        return builtins.open(path, mode, encoding=None if "b" in mode else "utf-8")
    if "r" in mode and "+" not in mode:
        if not _gfile().exists(path) or _gfile().isdir(path):
            raise _missing(path)
        binary = io.BufferedReader(_RemoteReader(path), _BUFFER)
        return binary if "b" in mode else io.TextIOWrapper(binary, encoding="utf-8")
    if "w" in mode and _gfile().exists(path):
        _gfile().remove(path)  # some filesystems (TF's ram://) append otherwise
    return _gfile().GFile(path, mode)


def read_bytes(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def write_bytes(path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


class _GzipOver(gzip.GzipFile):
    """A ``GzipFile`` that closes the file object it reads (the stdlib's leaves it open)."""

    def close(self) -> None:
        inner = self.fileobj
        try:
            super().close()
        finally:
            if inner is not None:
                inner.close()


def open_decompressed(path, by_name: bool = True):
    """A binary reader of ``path``, decompressed when it is gzip: its first two bytes are gzip's
    magic (or, with ``by_name``, its name ends in ``.gz``). Iterate it for lines.

    Raises:
      FileNotFoundError: the file does not exist.
    """
    path = os.fspath(path)
    if not is_remote(path):  # as before: the stdlib's own readers
        with builtins.open(path, "rb") as f:
            magic = f.read(2)
        if magic == _GZIP_MAGIC or (by_name and path.endswith(".gz")):
            return gzip.open(path, "rb")
        return builtins.open(path, "rb")
    f = open(path, "rb")
    if f.peek(2)[:2] == _GZIP_MAGIC or (by_name and path.endswith(".gz")):
        return _GzipOver(fileobj=f, mode="rb")
    return f


def is_gzip(path, by_name: bool = True) -> bool:
    """Whether :func:`open_decompressed` would decompress ``path``."""
    with open(path, "rb") as f:
        magic = f.read(2)
    return magic == _GZIP_MAGIC or (by_name and os.fspath(path).endswith(".gz"))
