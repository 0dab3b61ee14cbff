"""Seq2seq tasks read through TFDS (for users with the internet or a prepared ``tfds_data_dir``):
each dataset's features mapped onto ``source``/``target``.

| task | source feature | target feature | our dev split |
|---|---|---|---|
| ``wmt14_translate/de-en`` | ``de`` | ``en`` | ``validation`` (newstest2013) |
| ``cnn_dailymail`` | ``article`` | ``highlights`` | ``validation`` |
| ``xsum`` | ``document`` | ``summary`` | ``validation`` |

Nothing is downloaded at run time by pretrax itself: ``tfds.load`` reads a prepared dataset, and
the error says how to prepare one elsewhere (``data.tfds_load``).
"""

from __future__ import annotations

from data import tfds_load
from data.task_sources import SPLITS, TFDS_SPLIT_NAMES

# task → (source feature, target feature); all three have train/validation/test.
TFDS_SEQ2SEQ = {
    "wmt14_translate/de-en": ("de", "en"),
    "cnn_dailymail": ("article", "highlights"),
    "xsum": ("document", "summary"),
}


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def tfds_seq2seq_examples(name: str, split: str, data_dir: str = "") -> dict[str, list[str]]:
    """One split of a TFDS seq2seq task: ``{"source", "target", "id"}`` lists.

    Raises:
      ValueError: for a name that is not in ``TFDS_SEQ2SEQ`` or an unknown split.
      RuntimeError: when the dataset is neither prepared under ``data_dir`` nor downloadable.
    """
    if name not in TFDS_SEQ2SEQ:
        raise ValueError(f"{name!r} is not a TFDS seq2seq task; known: {sorted(TFDS_SEQ2SEQ)}")
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {list(SPLITS)}")
    tfds_split = TFDS_SPLIT_NAMES[split]
    rows, _ = tfds_load.load_tfds(name, tfds_split, data_dir)
    source, target = TFDS_SEQ2SEQ[name]
    out = {"source": [], "target": [], "id": []}
    for i, ex in enumerate(rows):
        out["source"].append(_text(ex[source]))
        out["target"].append(_text(ex[target]))
        out["id"].append(_text(ex["id"]) if "id" in ex else f"{name}:{tfds_split}:{i}")
    return out
