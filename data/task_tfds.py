"""Fine-tuning tasks read through TFDS: GLUE, SQuAD 2.0 and the embedded tasks' own builders
(``data.task_builders``), in the example format of ``data.tasks.load_examples``."""

from __future__ import annotations

from data import tfds_load
from data.task_sources import EMBEDDED, TASKS, records_to_examples, tfds_split, tfds_text_features


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _qa_example(ex: dict) -> dict:
    """A TFDS SQuAD-like example (numpy) → the span-QA dict; answers zipped text/start."""
    answers = ex["answers"]
    # Not strict: TFDS's mock data draws the two lists' lengths independently.
    pairs = zip(answers["text"], answers["answer_start"], strict=False)
    answers = [{"text": _text(t), "answer_start": int(s)} for t, s in pairs]
    impossible = ex["is_impossible"] if "is_impossible" in ex else not answers
    return {"id": _text(ex["id"]), "question": _text(ex["question"]),
            "context": _text(ex["context"]), "answers": answers,
            "is_impossible": bool(impossible)}


def _load_tfds(name: str, split: str, data_dir: str):
    """``(numpy iterable, info)`` of one split of a TFDS-backed task."""
    if name in EMBEDDED:
        from data import task_builders  # noqa: F401  Registers the embedded builders.
    return tfds_load.load_tfds(name, tfds_split(name, split), data_dir)


def tfds_examples(name: str, split: str, data_dir: str = ""):
    """One split of a TFDS-backed task in the format of ``data.tasks.load_examples``.

    Raises:
      RuntimeError: when the dataset is neither prepared under ``data_dir`` nor downloadable.
      ValueError: when the builder's label names differ from ``TASKS[name].label_names``.
    """
    spec = TASKS[name]
    rows, info = _load_tfds(name, split, data_dir)
    if spec.kind == "span_qa":
        return [_qa_example(ex) for ex in rows]
    if spec.kind == "classification":
        names = tuple(info.features["label"].names)
        if names != spec.label_names:
            raise ValueError(f"TFDS {name!r} has labels {list(names)} but pretrax expects "
                             f"{list(spec.label_names)} (class indices would shift)")
    features = tfds_text_features(name)
    records = [(_text(ex[features[0]]), _text(ex[features[1]]) if spec.pair else None,
                ex["label"]) for ex in rows]
    return records_to_examples(records, spec.kind, spec.pair)
