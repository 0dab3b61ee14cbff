"""Loading one split of a prepared TFDS dataset, with the error that says how to prepare it
offline; shared by the classification/QA tasks (``data.task_tfds``), the seq2seq ones
(``data.seq2seq_tfds``) and ``tfds:`` corpora (``data.sources``, ``data.prepared``)."""

from __future__ import annotations

TASK_FLAG = "--config.task.tfds_data_dir"


def load_tfds(name: str, tfds_split_name: str, data_dir: str | None, *, flag: str = TASK_FLAG,
              feature: str | None = None):
    """``(numpy iterable, info)`` of one TFDS split (its TFDS name, e.g. ``validation``): whole
    examples, or only ``feature``'s values when it is given.

    Raises:
      RuntimeError: the dataset is not available here; the message says how to prepare it
        offline and pass its directory with ``flag``.
      ValueError: the dataset has no ``feature``.
    """
    import tensorflow_datasets as tfds  # Heavy; only TFDS data pays for it.

    try:
        ds, info = tfds.load(name, split=tfds_split_name, data_dir=data_dir or None,
                             shuffle_files=False, with_info=True)
    except Exception as err:  # TFDS raises many types; all mean "not available here".
        raise RuntimeError(
            f"TFDS dataset {name!r} (split {tfds_split_name!r}) could not be loaded from "
            f"data_dir {data_dir or 'TFDS default'!r}. Offline, prepare it on a machine with "
            f"internet (`tfds build {name}`), copy the data_dir over and pass "
            f"{flag}=<that directory>. TFDS said: {err}") from err
    if feature is not None:
        if feature not in ds.element_spec:
            raise ValueError(f"TFDS dataset {name!r} has no feature {feature!r}; it has "
                             f"{sorted(ds.element_spec)}; use 'tfds:{name}:<feature>'")
        ds = ds.map(lambda ex: ex[feature])
    return tfds.as_numpy(ds), info
