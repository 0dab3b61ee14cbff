"""Loading one split of a prepared TFDS dataset, with the error that says how to prepare it
offline; shared by the classification/QA tasks (``data.task_tfds``) and the seq2seq ones
(``data.seq2seq_tfds``)."""

from __future__ import annotations


def load_tfds(name: str, tfds_split_name: str, data_dir: str):
    """``(numpy iterable, info)`` of one TFDS split (its TFDS name, e.g. ``validation``), with
    an offline-friendly error; every TFDS-backed task (``data.seq2seq_tfds`` too) loads here."""
    import tensorflow_datasets as tfds  # Heavy; only TFDS tasks pay for it.

    try:
        ds, info = tfds.load(name, split=tfds_split_name, data_dir=data_dir or None,
                             shuffle_files=False, with_info=True)
    except Exception as err:  # TFDS raises many types; all mean "not available here".
        raise RuntimeError(
            f"TFDS dataset {name!r} (split {tfds_split_name!r}) could not be loaded from "
            f"data_dir {data_dir or 'TFDS default'!r}. Offline, prepare it on a machine with "
            f"internet (`tfds build {name}`), copy the data_dir over and pass "
            f"--config.task.tfds_data_dir=<that directory>. TFDS said: {err}") from err
    return tfds.as_numpy(ds), info
