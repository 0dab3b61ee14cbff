"""Sequence-to-sequence tasks: (source text, target text) examples per split.

A task of kind ``seq2seq`` yields ``{"source": list[str], "target": list[str], "id": list[str]}``
for ``"train"``, ``"dev"`` and ``"test"``. The names:

* ``translation_bible_es_en`` (Spanish RV1909 → English WEB verses) and ``translation_bible_en_es``
  (the same pairs the other way), read from ``data/tasks/seq2seq/translation_bible_es_en.tsv.gz``;
* ``summarization_debian_desc``: a Debian long description → its one-line synopsis, read from
  ``data/tasks/seq2seq/summarization_debian_desc.jsonl.gz``;
* ``qa_disflqa_generative``: a generative view of ``qa_disflqa`` (source ``"question: Q context:
  C"``, target the first answer's text or ``"unanswerable"``); same splits as the span-QA task;
* TFDS datasets (``wmt14_translate/de-en``, ``cnn_dailymail``, ``xsum``) through
  ``data.seq2seq_tfds``, for users with the internet or a prepared ``tfds_data_dir``;
* ``"file"`` with ``kind="seq2seq"``: the user's TSV/CSV/JSONL with the columns ``source_column``
  and ``target_column`` (``source``/``target`` by default).

Both embedded files carry their own split (grouped by Bible chapter and by Debian source package;
``data/tasks/seq2seq/PROVENANCE.md``), which is used as is. Within a split rows keep file order.
"""

from __future__ import annotations

import functools
import gzip
import importlib.resources
import json

from data import squad_metrics, task_files, task_sources
from data.options import TaskOptions
from data.task_sources import SPLITS, TaskSpec

_PACKAGE = __name__.rpartition(".")[0]
BIBLE_FILE = "translation_bible_es_en.tsv.gz"
DEBIAN_FILE = "summarization_debian_desc.jsonl.gz"
BIBLE_COLUMNS = ("book", "chapter", "verse", "split", "es", "en")
UNANSWERABLE = "unanswerable"  # the generative QA target of a question without an answer
_DAMAGED = task_sources._DAMAGED  # noqa: SLF001  One wording for a damaged shipped file.


def _seq2seq(name: str, metrics: tuple[str, ...], main: str) -> TaskSpec:
    return TaskSpec(name, "seq2seq", (), True, metrics, main)


# metrics: names known to objectives.seq2seq_metrics.compute.
SEQ2SEQ_TASKS: dict[str, TaskSpec] = {s.name: s for s in (
    _seq2seq("translation_bible_es_en", ("bleu", "chrf"), "bleu"),
    _seq2seq("translation_bible_en_es", ("bleu", "chrf"), "bleu"),
    _seq2seq("summarization_debian_desc", ("rouge1", "rouge2", "rougeL"), "rougeL"),
    _seq2seq("qa_disflqa_generative", ("squad",), "f1"),
    _seq2seq("wmt14_translate/de-en", ("bleu", "chrf"), "bleu"),
    _seq2seq("cnn_dailymail", ("rouge1", "rouge2", "rougeL"), "rougeL"),
    _seq2seq("xsum", ("rouge1", "rouge2", "rougeL"), "rougeL"),
)}
EMBEDDED_SEQ2SEQ = ("translation_bible_es_en", "translation_bible_en_es",
                    "summarization_debian_desc", "qa_disflqa_generative")
# Per-task lengths in tokens of the shipped es-en tokenizer (data/tokenizers/bible_es_en_8k):
# what the lead's fine-tuning config may take as defaults.
LENGTHS = {
    "translation_bible_es_en": dict(max_source_length=128, max_target_length=128),
    "translation_bible_en_es": dict(max_source_length=128, max_target_length=128),
    "summarization_debian_desc": dict(max_source_length=256, max_target_length=32),
    "qa_disflqa_generative": dict(max_source_length=384, max_target_length=32),
    "wmt14_translate/de-en": dict(max_source_length=128, max_target_length=128),
    "cnn_dailymail": dict(max_source_length=512, max_target_length=128),
    "xsum": dict(max_source_length=512, max_target_length=64),
    "file": dict(max_source_length=256, max_target_length=128),
}


def is_seq2seq(task: TaskOptions) -> bool:
    """Whether ``task`` names a sequence-to-sequence task (a registered name or a seq2seq file)."""
    return task.name in SEQ2SEQ_TASKS or (task.name == "file" and task.kind == "seq2seq")


def seq2seq_spec(task: TaskOptions) -> TaskSpec:
    """The :class:`TaskSpec` of a seq2seq task (a file task: BLEU/chrF, BLEU leading).

    Raises:
      ValueError: for a name that is not a seq2seq task.
    """
    if task.name == "file" and task.kind == "seq2seq":
        return _seq2seq("file", ("bleu", "chrf"), "bleu")
    if task.name not in SEQ2SEQ_TASKS:
        raise ValueError(f"unknown seq2seq task {task.name!r}; use one of "
                         f"{sorted(SEQ2SEQ_TASKS)} or 'file' with --config.task.kind=seq2seq")
    return SEQ2SEQ_TASKS[task.name]


def shipped_file(name: str) -> str:
    """Path of a file of ``data/tasks/seq2seq/``, found through ``importlib.resources``."""
    path = importlib.resources.files(_PACKAGE).joinpath("tasks", "seq2seq", name)
    if not path.is_file():
        raise FileNotFoundError(f"embedded task file {path} is missing; reinstall pretrax with "
                                "its package data")
    return str(path)


def bible_rows(path: str | None = None):
    """``{column: value}`` of each verse pair of the Bible file, in canonical order.

    Raises:
      ValueError: for a header or a row that does not match ``BIBLE_COLUMNS``.
    """
    path = path or shipped_file(BIBLE_FILE)
    with gzip.open(path, "rt", encoding="utf-8", newline="\n") as f:
        for number, line in enumerate(f, start=1):
            fields = line.rstrip("\n").split("\t")
            if len(fields) != len(BIBLE_COLUMNS) or (number == 1 and
                                                     tuple(fields) != BIBLE_COLUMNS):
                raise ValueError(f"{path}, line {number}: expected the columns "
                                 f"{list(BIBLE_COLUMNS)}; {_DAMAGED}")
            if number > 1:
                yield dict(zip(BIBLE_COLUMNS, fields, strict=True))


def _split_records(rows, split_key, source, target, ident) -> dict[str, dict[str, list[str]]]:
    out = {s: {"source": [], "target": [], "id": []} for s in SPLITS}
    for row in rows:
        part = out[split_key(row)]
        part["source"].append(source(row))
        part["target"].append(target(row))
        part["id"].append(ident(row))
    return out


@functools.cache
def _embedded(name: str) -> dict[str, dict[str, list[str]]]:
    if name.startswith("translation_bible_"):
        src, tgt = ("es", "en") if name.endswith("es_en") else ("en", "es")
        return _split_records(bible_rows(), lambda r: r["split"], lambda r: r[src],
                              lambda r: r[tgt],
                              lambda r: f"{r['book']} {r['chapter']}:{r['verse']}")
    if name == "summarization_debian_desc":
        with gzip.open(shipped_file(DEBIAN_FILE), "rt", encoding="utf-8") as f:
            rows = [json.loads(line) for line in f]
        return _split_records(rows, lambda r: r["split"], lambda r: r["document"],
                              lambda r: r["summary"], lambda r: r["id"])
    if name == "qa_disflqa_generative":
        splits = task_sources.embedded_splits("qa_disflqa")
        out = {}
        for split in SPLITS:
            part = _split_records(splits[split], lambda r, s=split: s, qa_source, qa_target,
                                  lambda r: r["id"])
            out[split] = part[split]
        return out
    raise ValueError(f"{name!r} is not an embedded seq2seq task; embedded: "
                     f"{list(EMBEDDED_SEQ2SEQ)}")


def qa_source(example: dict) -> str:
    """The generative QA source of a span-QA example: ``"question: Q context: C"`` (T5's form)."""
    return f"question: {example['question']} context: {example['context']}"


def qa_target(example: dict) -> str:
    """The generative QA target: the first answer's text, or ``UNANSWERABLE``."""
    if example["is_impossible"] or not example["answers"]:
        return UNANSWERABLE
    return example["answers"][0]["text"]


def qa_prediction_text(generated: str) -> str:
    """A generated answer as the SQuAD 2.0 metric wants it: ``""`` for ``UNANSWERABLE``."""
    return "" if generated.strip() == UNANSWERABLE else generated.strip()


def generative_qa_scores(generated: dict[str, str], split: str = "test",
                         subset: bool = False) -> dict[str, float]:
    """SQuAD 2.0 exact/F1 (``data.squad_metrics``) of generated answers to ``qa_disflqa``.

    Args:
      generated: example id → the decoded target (``UNANSWERABLE`` means no answer).
      split: the split of ``qa_disflqa`` the ids belong to.
      subset: score only the examples ``generated`` answers (else every one must be).
    """
    examples = task_sources.embedded_examples("qa_disflqa", split)
    if subset:
        examples = [e for e in examples if e["id"] in generated]
    predictions = {k: qa_prediction_text(v) for k, v in generated.items()}
    return squad_metrics.squad_v2_scores(predictions, examples)


def _file_examples(task: TaskOptions, split: str) -> dict[str, list[str]]:
    """One split of a seq2seq file task; a missing dev/test file is carved from train by
    ``task_sources.split_of(source)`` (80/10/10) as classification file tasks do."""
    if not task.train_path:
        raise ValueError("a seq2seq file task needs --config.task.train_path=<TSV/CSV/JSONL with "
                         f"columns {task.source_column!r} and {task.target_column!r}>")
    paths = {"train": task.train_path, "dev": task.dev_path, "test": task.test_path}
    carved = split == "train" or not paths[split]  # rows of the train file, by bucket
    path = paths["train"] if carved else paths[split]
    out = {"source": [], "target": [], "id": []}
    for number, row in task_files._table_rows(path, task_files.file_format(path, task.format)):  # noqa: SLF001
        missing = [c for c in (task.source_column, task.target_column) if c not in row]
        if missing:
            raise ValueError(f"{path}, line {number}: no column {missing[0]!r} (it has "
                             f"{sorted(row)}); set --config.task.source_column/target_column")
        source, target = str(row[task.source_column]), str(row[task.target_column])
        if not source.strip() or not target.strip():
            continue  # nothing to learn from or to score
        if carved:
            bucket = task_sources.split_of(source)
            # Train keeps its bucket and those of dev/test when they come from their own files.
            keep = (bucket == "train" or bool(paths[bucket])) if split == "train" \
                else bucket == split
            if not keep:
                continue
        out["source"].append(source)
        out["target"].append(target)
        out["id"].append(f"{path}:{number}")
    if not out["source"]:
        raise ValueError(f"{path}: the {split} split of this seq2seq file task is empty; give "
                         "more rows or a --config.task.dev_path/test_path file")
    return out


def load_seq2seq_examples(task: TaskOptions, split: str) -> dict[str, list[str]]:
    """One split of a seq2seq task: ``{"source", "target", "id"}`` lists (fresh copies).

    Raises:
      ValueError: for an unknown task or split, or a malformed file.
      RuntimeError: when a TFDS dataset is not available offline.
    """
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {list(SPLITS)}")
    spec = seq2seq_spec(task)
    if spec.name == "file":
        return _file_examples(task, split)
    if spec.name in EMBEDDED_SEQ2SEQ:
        return {k: list(v) for k, v in _embedded(spec.name)[split].items()}
    from data import seq2seq_tfds  # TensorFlow only for TFDS tasks.
    return seq2seq_tfds.tfds_seq2seq_examples(spec.name, split, task.tfds_data_dir)
