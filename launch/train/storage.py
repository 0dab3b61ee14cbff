"""A workdir's files on a local disk or a bucket (``gs://…``) alike, through ``tf.io.gfile``.

Pod jobs write their workdir to GCS: every host must see it, and a VM's disk goes with the VM.
Plain ``open``/``os`` calls would write a local directory named ``gs:`` instead, so everything in
``launch/`` that touches a workdir goes through these few functions.
"""

from __future__ import annotations

import os


def _gfile():
    import tensorflow as tf  # already loaded by every binary (tf.data), after hiding accelerators
    return tf.io.gfile


def is_remote(path: str) -> bool:
    """``gs://bucket/…`` and other URL-like paths, which ``os.path.abspath`` would mangle."""
    return "://" in str(path)


def absolute(path: str) -> str:
    """An absolute local path, or a remote one unchanged."""
    path = os.fspath(path)
    return path if is_remote(path) else os.path.abspath(path)


def exists(path: str) -> bool:
    return _gfile().exists(os.fspath(path))


def isdir(path: str) -> bool:
    return _gfile().isdir(os.fspath(path))


def listdir(path: str) -> list[str]:
    """Entry names (a bucket's "directories" without their trailing slash)."""
    return [name.rstrip("/") for name in _gfile().listdir(os.fspath(path))]


def makedirs(path: str) -> None:
    _gfile().makedirs(os.fspath(path))


def rmtree(path: str) -> None:
    if exists(path):
        _gfile().rmtree(os.fspath(path))


def remove(path: str) -> None:
    """Deletes the file ``path``."""
    if is_remote(path):
        _gfile().remove(os.fspath(path))
    else:
        os.remove(path)


def replace(src: str, dst: str) -> None:
    """Renames ``src`` to ``dst``, replacing it (atomic on a local disk)."""
    if is_remote(src) or is_remote(dst):
        _gfile().rename(os.fspath(src), os.fspath(dst), overwrite=True)
    else:
        os.replace(src, dst)


def open_file(path: str, mode: str = "r"):
    """A file object (text unless ``mode`` has ``b``), local or remote."""
    if is_remote(path):
        if "w" in mode and exists(path):
            _gfile().remove(os.fspath(path))  # some filesystems (TF's ram://) append otherwise
        return _gfile().GFile(os.fspath(path), mode)
    return open(path, mode, encoding=None if "b" in mode else "utf-8")
