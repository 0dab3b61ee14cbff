"""Bring-your-own fine-tuning data: TSV, CSV (both with a header row) or JSONL files, plain or
gzipped, local or remote (``gs://…``, through ``data/paths.py``).

A ``"file"`` task reads ``task.train_path`` (and ``dev_path``/``test_path`` when given) with
the columns ``text_column`` (+ ``text_b_column`` for pairs) and ``label_column``. A missing dev or
test file is carved from train: the rows whose text hashes (``task_sources.split_of``) into that
10% bucket, so the carve is the same on every host and in every run.

Every problem in a file is reported with the file, the line, what is wrong and how to fix it:
a label outside the label set or empty, a missing column, a column (or JSON key) named twice,
text that is not UTF-8, a malformed row, a split left empty by the carving. A row with an empty
text is skipped instead, counted, and reported once with its line. A field may be as long in a
TSV/CSV file as in a JSONL one (the csv module's 128 KiB limit is lifted).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import json
import math
import sys
from collections.abc import Iterator

from absl import logging

from data import paths, task_sources
from data.options import TaskOptions
from data.skipped import Reason, Skipped
from data.task_sources import SPLITS, TaskSpec

_FORMATS = ("tsv", "csv", "jsonl")
# A row without its text carries nothing to learn from or to score, and one such row (a blank
# cell in an export) should not cost the run: skipped, counted and reported with its line.
EMPTY_TEXT = Reason("row with an empty text was skipped", "rows with an empty text were skipped",
                    "fill in the text or remove those rows (in dev/test they are not scored)")


def _stamp(path: str) -> tuple[int, int]:
    """(mtime, size) of a file, so a cached read is redone when the file changes."""
    if not path:
        return (0, 0)
    try:
        return paths.stat(path)
    except OSError as err:
        raise ValueError(f"cannot read task file {path!r} ({err.strerror}); check "
                         "--config.task.train_path/dev_path/test_path") from err


def file_format(path: str, fmt: str = "") -> str:
    """``fmt`` if set, else the format named by ``path``'s extension (``.gz`` looked through)."""
    if fmt:
        if fmt not in _FORMATS:
            raise ValueError(f"--config.task.format={fmt!r} is not one of {list(_FORMATS)}")
        return fmt
    stem = path[:-3] if path.endswith(".gz") else path
    ext = stem.rpartition(".")[2].lower()
    if ext not in _FORMATS:
        raise ValueError(f"{path}: cannot tell the format from the extension {ext!r}; name the "
                         "file .tsv/.csv/.jsonl (optionally .gz) or set --config.task.format="
                         "tsv|csv|jsonl")
    return ext


def _open_binary(path: str):
    """Plain or gzipped (by its first bytes, whatever its name), local or remote."""
    return paths.open_decompressed(path, by_name=False)


def _open_text(path: str):
    # newline="": the csv module handles line ends itself (quoted fields may span lines).
    # utf-8-sig: drops the byte-order mark that spreadsheet exports put first.
    return io.TextIOWrapper(_open_binary(path), encoding="utf-8-sig", newline="")


def _table_rows(path: str, fmt: str) -> Iterator[tuple[int, dict]]:
    """``(line_number, row)`` for each data row; the header row of TSV/CSV gives the keys.

    Raises:
      ValueError: naming the file and line for text that is not UTF-8 (or binary), a malformed
        row, and every other problem of the file's layout.
    """
    try:
        yield from _layout_rows(path, fmt)
    except UnicodeDecodeError as err:
        raise ValueError(
            f"{path}, line {_first_bad_line(path)}: not valid UTF-8 ({err.reason}); a task file "
            "is UTF-8 text: re-encode it, e.g. `iconv -f latin1 -t utf-8 in.tsv > out.tsv` (a "
            "spreadsheet: export it as UTF-8 CSV/TSV)") from err
    except csv.Error as err:  # e.g. a NUL byte: a binary file
        raise ValueError(f"{path}: {err}; is it a {fmt} text file? Check the delimiter and "
                         "quoting, or set --config.task.format") from err


def _first_bad_line(path: str) -> int:
    """The number of the first line of ``path`` that is not valid UTF-8 (0 if none is)."""
    with _open_binary(path) as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return 0


def _allow_any_field_size() -> None:
    """Lifts the csv module's 128 KiB field limit, so a TSV/CSV field may be as long as a JSONL
    one (a long document is a valid text); a quote never closed is caught by the field count."""
    limit = sys.maxsize
    while limit > csv.field_size_limit():
        try:
            csv.field_size_limit(limit)
        except OverflowError:  # a C long of 32 bits (Windows)
            limit = 2**31 - 1
        else:
            return


def _layout_rows(path: str, fmt: str) -> Iterator[tuple[int, dict]]:
    if fmt == "tsv":  # No quoting: GLUE-style TSVs hold bare quote characters.
        reader_args = dict(delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader_args = dict(delimiter=",")
    with _open_text(path) as f:
        if fmt == "jsonl":
            yield from _jsonl_rows(path, f)
            return
        _allow_any_field_size()
        reader = csv.reader(f, **reader_args)
        header = _header(path, fmt, next(reader, None))
        start = reader.line_num + 1
        for fields in reader:
            if any(fields):  # not a blank line
                _check_fields(path, start, reader.line_num, fields, header)
                yield start, dict(zip(header, fields, strict=True))
            start = reader.line_num + 1


def _header(path: str, fmt: str, header: list[str] | None) -> list[str]:
    """The header row, refused when missing or when it names a column twice."""
    if header is None:
        raise ValueError(f"{path}: the file is empty; a {fmt} file needs a header row")
    for i, name in enumerate(header):
        if name in header[:i]:
            raise ValueError(
                f"{path}, line 1: the header names the column {name!r} twice (columns "
                f"{header.index(name) + 1} and {i + 1}); rename or remove one, so each column "
                "is read by its own name")
    return header


def _check_fields(path: str, start: int, end: int, fields: list[str], header: list[str]):
    if len(fields) == len(header):
        return
    spans = (f" (one quoted field runs from line {start} to line {end}: is a quote never "
             "closed?)" if end > start else "")
    raise ValueError(
        f"{path}, line {start}: {len(fields)} fields but the header has {len(header)} "
        f"({header[:20]}){spans}; check the delimiter and quoting, or set --config.task.format")


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    out = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def _jsonl_rows(path: str, f) -> Iterator[tuple[int, dict]]:
    for number, line in enumerate(f, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, object_pairs_hook=_unique_keys)
        except _DuplicateKey as err:
            raise ValueError(f"{path}, line {number}: the key {str(err)!r} appears twice in one "
                             "object; keep one, so each field is read by its own name") from err
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}, line {number}: not valid JSON ({err.msg}); a .jsonl file "
                             "holds one JSON object per line") from err
        if not isinstance(row, dict):
            raise ValueError(f"{path}, line {number}: a JSON {type(row).__name__}, expected an "
                             "object with named fields")
        yield number, row


def _column(row: dict, key: str, flag: str, path: str, number: int):
    if key not in row:
        raise ValueError(f"{path}, line {number}: no column {key!r}; the columns are "
                         f"{sorted(row)}. Name the right one with --config.task.{flag}=<column>")
    value = row[key]
    return "" if value is None else value


def _label(raw, spec: TaskSpec, path: str, number: int) -> float:
    """A raw label → class index (classification) or float (regression)."""
    if spec.kind == "regression":
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = math.nan
        if not math.isfinite(value):
            raise ValueError(f"{path}, line {number}: label {raw!r} is not a finite number; a "
                             "regression task needs numeric labels (for class names set "
                             "--config.task.kind=classification)")
        return value
    text = str(raw).strip()
    if not text:
        raise ValueError(f"{path}, line {number}: the label is empty; fill it in (one of "
                         f"{list(spec.label_names)}) or remove the row")
    if text not in spec.label_names:
        raise ValueError(
            f"{path}, line {number}: label {text!r} is not one of the task's labels "
            f"{list(spec.label_names)}; list every label, in class-index order, with "
            f"--config.task.labels={','.join(spec.label_names + (text,))}")
    return spec.label_names.index(text)


def _read_records(path: str, task: TaskOptions,
                  spec: TaskSpec) -> list[tuple[str, str | None, float]]:
    """Validated ``(text_a, text_b, label)`` records of one file; empty texts skipped."""
    fmt = file_format(path, task.format)
    records, skipped = [], Skipped()
    for number, row in _table_rows(path, fmt):
        text_a = str(_column(row, task.text_column, "text_column", path, number)).strip()
        text_b = None
        if task.text_b_column:
            text_b = str(_column(row, task.text_b_column, "text_b_column", path,
                                 number)).strip()
        raw = _column(row, task.label_column, "label_column", path, number)
        if not text_a or text_b == "":
            skipped.add(EMPTY_TEXT, f"line {number}")
            continue
        records.append((text_a, text_b, _label(raw, spec, path, number)))
    if not records:
        raise ValueError(f"{path}: no usable rows ({skipped.summary()}); check "
                         "--config.task.text_column / text_b_column")
    skipped.warn(path)
    return records


def _raw_labels(path: str, fmt: str, label_column: str) -> tuple[str, ...]:
    """Sorted distinct label values of a file (for a classification task without ``labels``)."""
    values = set()
    for number, row in _table_rows(path, file_format(path, fmt)):
        value = str(_column(row, label_column, "label_column", path, number)).strip()
        if not value:
            raise ValueError(f"{path}, line {number}: the label is empty; fill it in or remove "
                             "the row (or list the labels with --config.task.labels=a,b,...)")
        values.add(value)
    return tuple(sorted(values))


def _parse_labels(text: str) -> tuple[str, ...]:
    names = tuple(s.strip() for s in text.split(",") if s.strip())
    if len(set(names)) != len(names):
        raise ValueError(f"--config.task.labels={text!r} names a label twice")
    return names


@functools.lru_cache(maxsize=16)
def _file_spec(kind: str, labels: str, pair: bool, train_path: str, fmt: str,
               label_column: str, stamp: tuple[int, int]) -> TaskSpec:
    del stamp  # Only part of the cache key.
    if kind == "regression":
        return TaskSpec("file", kind, (), pair, ("pearson", "spearman"), "spearman")
    if kind != "classification":
        raise ValueError(f"--config.task.kind={kind!r}: a file task is 'classification' or "
                         "'regression'")
    names = _parse_labels(labels)
    if not names:
        if not train_path:
            raise ValueError("a file task needs --config.task.train_path")
        names = _raw_labels(train_path, fmt, label_column)
        logging.info("task labels not given; using the sorted labels of %s: %s (set "
                     "--config.task.labels to fix the class order)", train_path, ",".join(names))
    if len(names) < 2:
        raise ValueError(f"a classification task needs at least 2 labels, got {list(names)}; "
                         "set --config.task.labels=a,b,...")
    metrics = ("accuracy", "f1") if len(names) == 2 else ("accuracy", "macro_f1")
    return TaskSpec("file", kind, names, pair, metrics, "accuracy")


def file_spec(task: TaskOptions) -> TaskSpec:
    """The :class:`TaskSpec` of a ``"file"`` task, from its options.

    Without ``task.labels`` a classification task takes the sorted distinct labels of the
    train file (logged); pass ``labels`` to fix the class order.
    """
    stamp = _stamp(task.train_path) if not task.labels else (0, 0)
    return _file_spec(task.kind, task.labels, bool(task.text_b_column), task.train_path,
                      task.format, task.label_column, stamp)


@functools.lru_cache(maxsize=8)
def _file_splits(task: TaskOptions, stamps: tuple) -> dict[str, list]:
    del stamps  # Only part of the cache key.
    if not task.train_path:
        raise ValueError("a file task needs --config.task.train_path (and optionally dev_path, "
                         "test_path)")
    spec = file_spec(task)
    given = {s: getattr(task, f"{s}_path") for s in SPLITS}
    train = _read_records(task.train_path, task, spec)
    carved = [s for s in ("dev", "test") if not given[s]]
    if carved:
        logging.info("file task: %s carved from %s (10%% of its rows each, chosen by a stable "
                     "hash of the row's text)", " and ".join(carved), task.train_path)
    out = {s: [] for s in SPLITS}
    for record in train:
        bucket = task_sources.split_of(record[0] + "\t" + (record[1] or ""))
        out[bucket if bucket in carved else "train"].append(record)
    read = {task.train_path: train}  # a file given for two splits is read (and reported) once
    for s in ("dev", "test"):
        if given[s]:
            if given[s] not in read:
                read[given[s]] = _read_records(given[s], task, spec)
            out[s] = list(read[given[s]])
    return out


def file_examples(task: TaskOptions, split: str) -> dict:
    """One split of a ``"file"`` task as ``{"text_a", "text_b", "labels"}`` (cached read)."""
    spec = file_spec(task)
    # The read depends only on the file fields (and the files' timestamps, which key the cache).
    key = dataclasses.replace(task, tfds_data_dir="", max_train_examples=0)
    stamps = tuple(_stamp(getattr(task, f"{s}_path")) for s in SPLITS)
    splits = _file_splits(key, stamps)
    if not splits[split]:
        raise _empty_split(task, split, splits)
    return task_sources.records_to_examples(splits[split], spec.kind, spec.pair)


def _empty_split(task: TaskOptions, split: str, splits: dict[str, list]) -> ValueError:
    """Why a split carved from the train file (or the train split left by the carving) is empty,
    with the file's number of usable rows and what to do. (A file given for a split and empty
    is refused when it is read.)"""
    carved = [s for s in ("dev", "test") if not getattr(task, f"{s}_path")]
    rows = len(splits["train"]) + sum(len(splits[s]) for s in carved)
    plural = "row" if rows == 1 else "rows"
    more = "or use more rows (with 50 or more, each split almost surely gets some)"
    if split == "train":
        return ValueError(
            f"{task.train_path}: its {rows} usable {plural} all went to the {' and '.join(carved)} "
            f"split{'s' if len(carved) > 1 else ''} carved from it, leaving none to train on; give "
            f"{' and '.join(f'--config.task.{s}_path=FILE' for s in carved)}, {more}")
    return ValueError(
        f"{task.train_path} has {rows} usable {plural}; the {split} split is carved from it (the "
        f"rows whose text hashes into its 10% bucket) and got none. Give a {split} file with "
        f"--config.task.{split}_path=FILE, {more}")
