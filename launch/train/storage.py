"""A workdir's files on a local disk or a bucket (``gs://…``) alike (``data/paths.py``, whose
primitives it shares, and ``tf.io.gfile``).

Pod jobs write their workdir to GCS: every host must see it, and a VM's disk goes with the VM.
Plain ``open``/``os`` calls would write a local directory named ``gs:`` instead, so everything in
``launch/`` that touches a workdir goes through these few functions.
"""

from __future__ import annotations

import os

from data import paths

# The primitives shared with the data readers (data/paths.py): local paths through Python's own
# functions, remote ones through tf.io.gfile.
is_remote = paths.is_remote
exists = paths.exists
isdir = paths.isdir
makedirs = paths.makedirs
open_file = paths.open  # (path, mode="r"): text unless mode has "b"; a remote write replaces


def _gfile():
    import tensorflow as tf  # already loaded by every binary (tf.data), after hiding accelerators
    return tf.io.gfile


def absolute(path: str) -> str:
    """An absolute local path, or a remote one unchanged."""
    path = os.fspath(path)
    return path if is_remote(path) else os.path.abspath(path)


def listdir(path: str) -> list[str]:
    """Entry names (a bucket's "directories" without their trailing slash)."""
    return [name.rstrip("/") for name in _gfile().listdir(os.fspath(path))]


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
