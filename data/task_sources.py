"""The fine-tuning task registry and where each task's examples come from.

Three kinds of source share one example format (see ``data/tasks.py``):

* the embedded suite shipped in ``data/tasks/`` (no internet): read straight from the gzipped files
  by :func:`embedded_splits`, which is also what the TFDS builders of ``data/task_builders.py``
  call, so both give the same examples in the same order;
* TFDS datasets (GLUE, SQuAD 2.0, or the embedded builders) via ``data.task_tfds``;
* the user's own files (``data/task_files.py``).

None of the embedded files has an official split. :func:`split_of` puts each *group* (a sentence,
a definition, a Wikipedia page, a Bible chapter, a QA paragraph) into train/dev/test 80/10/10 by
an MD5 of its key, so near-duplicates never straddle two splits and the split never depends on
Python's per-process string hash or on the order of the file.

Neither TensorFlow nor TFDS is imported at module level: the embedded fast path stays light.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import hashlib
import importlib.resources
import json
import re
from collections.abc import Callable, Iterator

import numpy as np

_PACKAGE = __name__.rpartition(".")[0]
SPLITS = ("train", "dev", "test")
# TFDS calls the dev split "validation".
TFDS_SPLIT_NAMES = {"train": "train", "dev": "validation", "test": "test"}


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What a fine-tuning task is; its label order defines the class indices.

    Attributes:
      name: the key in ``TASKS``, or ``"file"``.
      kind: ``"classification"``, ``"regression"`` or ``"span_qa"``.
      label_names: class index ``i`` ↔ ``label_names[i]``; ``()`` for regression and span QA.
      pair: True when an example has two texts (``text_a``, ``text_b``).
      metrics: names known to ``objectives.task_metrics.compute``, or ``("squad",)``.
      main_metric: the dev metric (higher is better) that picks the best checkpoint.
    """

    name: str
    kind: str
    label_names: tuple[str, ...]
    pair: bool
    metrics: tuple[str, ...]
    main_metric: str


# WordNet's 25 noun supersenses ("lexicographer files"), sorted: the order is the class index.
TOPIC_LABELS = tuple(sorted(
    "noun." + s for s in (
        "act animal artifact attribute body cognition communication event feeling food group "
        "location motive object person phenomenon plant possession process quantity relation "
        "shape state substance time").split()))


def _classification(name, labels, pair, metrics=("accuracy",), main="accuracy"):
    return TaskSpec(name, "classification", tuple(labels), pair, tuple(metrics), main)


_SQUAD_METRICS = dict(kind="span_qa", label_names=(), pair=True, metrics=("squad",),
                      main_metric="f1")  # "f1" = SQuAD token F1 from the QA evaluator.
_ALL_SPECS = (
    _classification("sentiment_rt", ("negative", "positive"), False),
    _classification("topic_wordnet", TOPIC_LABELS, False, ("accuracy", "macro_f1"), "macro_f1"),
    _classification("nli_vitaminc", ("SUPPORTS", "REFUTES", "NOT ENOUGH INFO"), True),
    # Balanced 50/50, so accuracy leads: always answering "paraphrase" scores F1 0.667 (accuracy
    # 0.5), and with F1 leading, dev selection kept such degenerate checkpoints.
    _classification("paraphrase_bible", ("not_paraphrase", "paraphrase"), True,
                    ("accuracy", "f1"), "accuracy"),
    TaskSpec(name="qa_disflqa", **_SQUAD_METRICS),
    # GLUE label orders are TFDS's (checked against the builder's info when loading).
    _classification("glue/sst2", ("negative", "positive"), False),
    _classification("glue/mnli", ("entailment", "neutral", "contradiction"), True),
    _classification("glue/qqp", ("not_duplicate", "duplicate"), True, ("accuracy", "f1"), "f1"),
    _classification("glue/mrpc", ("not_equivalent", "equivalent"), True, ("accuracy", "f1"), "f1"),
    _classification("glue/cola", ("unacceptable", "acceptable"), False, ("matthews",), "matthews"),
    TaskSpec("glue/stsb", "regression", (), True, ("pearson", "spearman"), "spearman"),
    TaskSpec(name="squad/v2.0", **_SQUAD_METRICS),
)
TASKS: dict[str, TaskSpec] = {s.name: s for s in _ALL_SPECS}


def split_of(key: str) -> str:
    """``"train"``, ``"dev"`` or ``"test"`` (80/10/10) for a group key, by an MD5 of its UTF-8.

    MD5 rather than ``hash()``: Python salts string hashes per process, and a split must be the
    same on every host and in every run.
    """
    bucket = int.from_bytes(hashlib.md5(key.encode("utf-8")).digest()[:8], "big") % 10
    return "train" if bucket < 8 else ("dev" if bucket == 8 else "test")


def normalise(text: str) -> str:
    """Lower-cased word characters joined by single spaces: the group key of a sentence, so
    copies that differ only in case, spacing or punctuation land in the same split."""
    return " ".join(re.findall(r"\w+", text.lower()))


@dataclasses.dataclass(frozen=True)
class _Embedded:
    """How to read one embedded classification file.

    Attributes:
      file: the file name in ``data/tasks/``.
      columns: the TSV columns, in order.
      header: whether the first line repeats ``columns``.
      text_a, text_b: the columns of the first and (None for single-text tasks) second text.
      raw_labels: the label column's values, in class-index order.
      skip_labels: label values whose rows are dropped.
      group: row → group key for :func:`split_of`.
    """

    file: str
    columns: tuple[str, ...]
    header: bool
    text_a: str
    text_b: str | None
    raw_labels: tuple[str, ...]
    skip_labels: tuple[str, ...]
    group: Callable[[dict[str, str]], str]


_EMBEDDED_CLASSIFICATION = {
    "sentiment_rt": _Embedded(
        "sentiment_rt.tsv.gz", ("domain", "id", "mean_rating", "label", "text"), True, "text",
        None, ("negative", "positive"), ("neutral",), lambda r: normalise(r["text"])),
    "topic_wordnet": _Embedded(
        "topic_wordnet.tsv.gz", ("label", "definition"), False, "definition", None,
        TOPIC_LABELS, (), lambda r: normalise(r["definition"])),
    # Evidence first, claim second: BERT's NLI convention is premise then hypothesis, and the
    # evidence plays the premise (the claim is judged against it).
    "nli_vitaminc": _Embedded(
        "nli_vitaminc.tsv.gz", ("label", "page", "evidence", "claim"), True, "evidence", "claim",
        ("SUPPORTS", "REFUTES", "NOT ENOUGH INFO"), (), lambda r: r["page"]),
    # "Gen 1:18" → "Gen 1": negatives pair verses of one chapter, so whole chapters must stay
    # together.
    "paraphrase_bible": _Embedded(
        "paraphrase_bible.tsv.gz", ("label", "ref_a", "kjv", "ref_b", "web"), True, "kjv", "web",
        ("0", "1"), (), lambda r: r["ref_a"].rsplit(":", 1)[0]),
}
_QA_FILE = {"qa_disflqa": "qa_disflqa.jsonl.gz"}
EMBEDDED = tuple(_EMBEDDED_CLASSIFICATION) + tuple(_QA_FILE)
# The embedded files ship with pretrax and are checked by its tests: a bad row means a damaged copy.
_DAMAGED = "the shipped file is damaged: reinstall pretrax (or restore data/tasks/ from git)"


def embedded_task_file(name: str) -> str:
    """Path of an embedded task's shipped file, found through ``importlib.resources``."""
    file = (_EMBEDDED_CLASSIFICATION[name].file if name in _EMBEDDED_CLASSIFICATION
            else _QA_FILE[name])
    path = importlib.resources.files(_PACKAGE).joinpath("tasks").joinpath(file)
    if not path.is_file():
        raise FileNotFoundError(f"embedded task file {path} is missing; reinstall pretrax with "
                                "its package data")
    return str(path)


def _tsv_rows(path: str, how: _Embedded) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line_number, {column: value})`` for each data line of an embedded TSV file."""
    # newline="\n": a stray "\r" inside a field must not end the line.
    with gzip.open(path, "rt", encoding="utf-8", newline="\n") as f:
        for number, line in enumerate(f, start=1):
            fields = line.rstrip("\n").split("\t")
            if number == 1 and how.header:
                if tuple(fields) != how.columns:
                    raise ValueError(f"{path}: header {fields} differs from "
                                     f"{list(how.columns)}; {_DAMAGED}")
                continue
            if len(fields) != len(how.columns):
                raise ValueError(f"{path}, line {number}: {len(fields)} fields, expected "
                                 f"{len(how.columns)} ({list(how.columns)}); {_DAMAGED}")
            yield number, dict(zip(how.columns, fields, strict=True))


def _read_classification(name: str) -> dict[str, list[tuple[str, str | None, int]]]:
    how = _EMBEDDED_CLASSIFICATION[name]
    path = embedded_task_file(name)
    index = {raw: i for i, raw in enumerate(how.raw_labels)}
    out = {s: [] for s in SPLITS}
    for number, row in _tsv_rows(path, how):
        raw = row["label"]
        if raw in how.skip_labels:
            continue
        if raw not in index:  # Also what catches a header line in a header-less file.
            raise ValueError(f"{path}, line {number}: label {raw!r} is not one of "
                             f"{list(how.raw_labels)}; {_DAMAGED}")
        text_b = row[how.text_b] if how.text_b else None
        out[split_of(how.group(row))].append((row[how.text_a], text_b, index[raw]))
    return out


def _read_qa(name: str) -> dict[str, list[dict]]:
    path = embedded_task_file(name)
    out = {s: [] for s in SPLITS}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            out[split_of(row["context"])].append({
                "id": str(row["id"]),
                "question": row["question"],
                "context": row["context"],
                "answers": [{"text": a["text"], "answer_start": int(a["answer_start"])}
                            for a in row["answers"]],
                "is_impossible": bool(row["is_impossible"]),
            })
    return out


@functools.cache
def embedded_splits(name: str) -> dict[str, list]:
    """All three splits of an embedded task, each in file order (cached; treat as read-only).

    Returns:
      ``{split: records}``; a classification record is ``(text_a, text_b or None, label_index)``,
      a span-QA record the dict of ``data.tasks.load_examples``.
    """
    if name in _EMBEDDED_CLASSIFICATION:
        return _read_classification(name)
    if name in _QA_FILE:
        return _read_qa(name)
    raise ValueError(f"{name!r} is not an embedded task; embedded: {list(EMBEDDED)}")


def records_to_examples(records: list[tuple[str, str | None, float]], kind: str,
                        pair: bool) -> dict:
    """Classification/regression records → the ``{"text_a", "text_b", "labels"}`` dict."""
    dtype = np.float32 if kind == "regression" else np.int32
    return {"text_a": [r[0] for r in records],
            "text_b": [r[1] for r in records] if pair else None,
            "labels": np.asarray([r[2] for r in records], dtype=dtype)}


def embedded_examples(name: str, split: str):
    """One split of an embedded task in the format of ``data.tasks.load_examples`` (a copy)."""
    records = embedded_splits(name)[split]
    if TASKS[name].kind == "span_qa":
        return [dict(r, answers=[dict(a) for a in r["answers"]]) for r in records]
    return records_to_examples(records, TASKS[name].kind, TASKS[name].pair)


# GLUE and SQuAD hide their test labels, so the public validation split is our test split and
# dev is carved from the end of train.
_HELD_OUT = {"train": "train[:95%]", "dev": "train[95%:]", "test": "validation"}
_EMBEDDED_TFDS = {"train": "train", "dev": "validation", "test": "test"}
# TFDS name → (text features, or None for span QA; our split → TFDS split string).
_TFDS = {
    "glue/sst2": (("sentence",), _HELD_OUT),
    "glue/mnli": (("premise", "hypothesis"), dict(_HELD_OUT, test="validation_matched")),
    "glue/qqp": (("question1", "question2"), _HELD_OUT),
    "glue/mrpc": (("sentence1", "sentence2"), _HELD_OUT),
    "glue/cola": (("sentence",), _HELD_OUT),
    "glue/stsb": (("sentence1", "sentence2"), _HELD_OUT),
    "squad/v2.0": (None, _HELD_OUT),
}


def tfds_text_features(name: str) -> tuple[str, ...] | None:
    """The text features of a task's TFDS dataset; None for span QA.

    The embedded builders name theirs ``text`` (single) or ``text_a``/``text_b`` (pairs).
    """
    if name in _TFDS:
        return _TFDS[name][0]
    if TASKS[name].kind == "span_qa":
        return None
    return ("text_a", "text_b") if TASKS[name].pair else ("text",)


def tfds_split(name: str, split: str) -> str:
    """The TFDS split string that holds our ``split`` of task ``name``."""
    return _TFDS[name][1][split] if name in _TFDS else _EMBEDDED_TFDS[split]
