"""Fine-tuning tasks: specs, examples, BERT encoding and fixed-shape numpy batches.

A :class:`data.options.TaskOptions` names a task: an embedded one shipped in
``data/tasks/`` (``sentiment_rt``, ``topic_wordnet``, ``nli_vitaminc``, ``paraphrase_bible``,
``qa_disflqa``), a TFDS one (``glue/*``, ``squad/v2.0``), a seq2seq one
(``data/seq2seq_tasks.py``: translation, summarisation, generative QA) or ``"file"`` (the user's own
TSV/CSV/JSONL, see ``data/task_files.py``). Splits are always ``"train"``, ``"dev"`` and ``"test"``.

Example::

  tok = Tokenizer.load("embedded")
  it = make_dataset(TaskOptions("sentiment_rt"), "train", tokenizer=tok, max_seq_length=128,
                    batch_size=32, seed=0)
  batch = next(it)   # keys and shapes: data.features.shapes("classification", B=32, L=128)

Batches (classification/regression; span QA lives in ``data/qa.py``):

* train: an endless stream; epoch ``e`` is the permutation ``default_rng((seed, e))`` of the
  training examples, epochs concatenated, so rows left at an epoch's end open the next batch;
* dev/test: one pass in file order; the last global batch is padded with ``[CLS] [SEP]`` rows of
  ``example_weights`` 0 so every example is scored exactly once with static shapes.

With ``process_count`` processes the global batch is ``process_count * batch_size`` rows and each
process yields its contiguous slice, so the global batch does not depend on the host count.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from absl import logging

from data import features, seq2seq_tasks, task_files, task_sources, task_tfds
from data.options import TaskOptions
from data.task_sources import SPLITS, TASKS, TaskSpec

__all__ = ["TASKS", "TaskSpec", "encode", "load_examples", "make_dataset", "num_examples",
           "task_spec"]


def task_spec(task: TaskOptions) -> TaskSpec:
    """The :class:`TaskSpec` of ``task.name`` (a ``TASKS`` key, or ``"file"``).

    Raises:
      ValueError: for an unknown task name or invalid file-task options.
    """
    if seq2seq_tasks.is_seq2seq(task):
        return seq2seq_tasks.seq2seq_spec(task)
    if task.name == "file":
        return task_files.file_spec(task)
    if task.name not in TASKS:
        raise ValueError(f"unknown task {task.name!r}; use one of {sorted(TASKS)} or 'file' "
                         "(with --config.task.train_path=...)")
    return TASKS[task.name]


def load_examples(task: TaskOptions, split: str):
    """Reads one split of a task.

    Returns:
      classification/regression: ``{"text_a": list[str], "text_b": list[str] | None,
      "labels": int32 [N] class indices (float32 for regression)}``; span QA: a list of
      ``{"id", "question", "context", "answers": [{"text", "answer_start"}], "is_impossible"}``;
      seq2seq (``data.seq2seq_tasks``): ``{"source", "target", "id"}`` lists of strings.

    Raises:
      ValueError: for an unknown split or task, or a malformed file.
      RuntimeError: when a TFDS dataset is not available offline.
    """
    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {list(SPLITS)}")
    spec = task_spec(task)
    if spec.kind == "seq2seq":
        return seq2seq_tasks.load_seq2seq_examples(task, split)
    if spec.name == "file":
        return task_files.file_examples(task, split)
    if spec.name in task_sources.EMBEDDED:
        return task_sources.embedded_examples(spec.name, split)
    return task_tfds.tfds_examples(spec.name, split, task.tfds_data_dir)


def num_examples(task: TaskOptions, split: str) -> int:
    """Number of examples in a split (loads it; embedded and file tasks are cached)."""
    examples = load_examples(task, split)
    if isinstance(examples, dict):
        return len(examples["labels"] if "labels" in examples else examples["source"])
    return len(examples)


def truncated_lengths(len_a: int, len_b: int, budget: int) -> tuple[int, int]:
    """Lengths after BERT's longest-first truncation of a pair to ``budget`` tokens.

    Same result as popping one token at a time from the longer text (from ``b`` on a tie) until
    the pair fits, in closed form.
    """
    if len_a + len_b <= budget:
        return len_a, len_b
    if len_b <= budget // 2:
        return budget - len_b, len_b
    if len_a <= budget - budget // 2:
        return len_a, budget - len_a
    return budget - budget // 2, budget // 2


LAYOUTS = ("bert", "xlnet")
TYPE_CLS = 2  # XLNet's segment id of its <cls> (as data/plm.py lays pretraining rows out)


def encode(tokenizer, examples: dict, max_seq_length: int,
           layout: str = "bert") -> dict[str, np.ndarray]:
    """Tokenises examples into ``[CLS] a [SEP]`` or ``[CLS] a [SEP] b [SEP]`` rows.

    With ``layout="xlnet"`` the rows are XLNet's own, as it pretrains: ``a <sep> <cls>`` or
    ``a <sep> b <sep> <cls>`` (type ids a 0, b 1, <cls> 2), so its summary token, the last real
    one, is the <cls> its pretraining put there. Padding stays on the right: XLNet's relative
    attention does not see where a row starts.

    Args:
      tokenizer: a ``data.tokenizer.Tokenizer`` or ``data.hf_tokenizers.HfTokenizer``; its
        ``special_ids`` give [CLS], [SEP] and the padding id.
      examples: ``{"text_a", "text_b" (or None), "labels"}`` as from :func:`load_examples`.
      max_seq_length: ``L``; longer rows are truncated longest-first (the count is logged).

    Returns:
      ``token_ids`` and ``type_ids`` int32 [N, L] (padded with the pad id; type 1 marks ``b`` and
      its [SEP]) and ``labels`` [N] as given.

    Raises:
      ValueError: when ``max_seq_length`` leaves no room, the tokenizer has no [CLS], [SEP]
        or padding token (GPT-2's), or for an unknown ``layout``.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown task row layout {layout!r}; use one of {LAYOUTS}")
    special = sentence_specials(tokenizer)
    pair = examples.get("text_b") is not None
    budget = max_seq_length - (3 if pair else 2)
    if budget < (2 if pair else 1):
        raise ValueError(f"max_seq_length={max_seq_length} leaves no room for text")
    ids_a = tokenizer.encode(examples["text_a"])
    ids_b = tokenizer.encode(examples["text_b"]) if pair else [[]] * len(ids_a)
    token_ids = np.full((len(ids_a), max_seq_length), special.pad, np.int32)
    type_ids = np.zeros_like(token_ids)
    truncated = 0
    for i, (a, b) in enumerate(zip(ids_a, ids_b, strict=True)):
        len_a, len_b = truncated_lengths(len(a), len(b), budget)
        truncated += (len_a, len_b) != (len(a), len(b))
        row = [special.cls, *a[:len_a], special.sep]
        if pair:
            row += [*b[:len_b], special.sep]
            type_ids[i, len_a + 2:len(row)] = 1
        if layout == "xlnet":  # <cls> moves from the front to the end; the types shift with it
            row = row[1:] + [special.cls]
            type_ids[i, :len(row) - 1] = type_ids[i, 1:len(row)]
            type_ids[i, len(row) - 1] = TYPE_CLS
        token_ids[i, :len(row)] = row
    if truncated:
        logging.info("truncated %d of %d examples to %d tokens", truncated, len(ids_a),
                     max_seq_length)
    return {"token_ids": token_ids, "type_ids": type_ids,
            "labels": np.asarray(examples["labels"])}


def sentence_specials(tokenizer) -> features.SpecialIds:
    """The tokenizer's special ids, checked to have what ``[CLS] a [SEP] b [SEP]`` rows need.

    Raises:
      ValueError: naming the tokenizer and the tokens it lacks.
    """
    special = tokenizer.special_ids
    missing = [f"[{n.upper()}]" for n in ("cls", "sep", "pad") if getattr(special, n) is None]
    if missing:
        raise ValueError(
            f"the tokenizer {tokenizer.name} has no {' or '.join(missing)} token, which the "
            "fine-tuning rows [CLS] a [SEP] b [SEP] need (GPT-2's byte-level BPE has none); "
            "fine-tune a model whose tokenizer has them (BERT, ALBERT, or a pretrax run)")
    return special


def budget_indices(num: int, max_examples: int, seed: int) -> np.ndarray:
    """The training subset under a label budget: the first ``max_examples`` of a permutation
    seeded by ``seed`` alone (sorted), so runs with the same seed see the same examples."""
    if max_examples <= 0 or max_examples >= num:
        return np.arange(num)
    return np.sort(np.random.default_rng(seed).permutation(num)[:max_examples])


def eval_subset(examples, max_examples: int):
    """``max_examples`` of a dev or test split (``load_examples``' dict or span-QA list), the
    same for every run: ``budget_indices`` with seed 0, in file order; all when 0."""
    n = len(examples) if isinstance(examples, list) else len(examples["labels"])
    if max_examples <= 0 or max_examples >= n:
        return examples
    keep = budget_indices(n, max_examples, 0)
    if isinstance(examples, list):
        return [examples[i] for i in keep]
    return {"text_a": [examples["text_a"][i] for i in keep],
            "text_b": None if examples["text_b"] is None
            else [examples["text_b"][i] for i in keep],
            "labels": np.asarray(examples["labels"])[keep]}


def _take(arrays: dict[str, np.ndarray], rows: np.ndarray, kind: str,
          special: features.SpecialIds) -> dict[str, np.ndarray]:
    """Rows of the encoded arrays (indices >= N become padding rows of weight 0)."""
    n = len(arrays["labels"])
    real = rows < n
    safe = np.where(real, rows, 0)
    batch = {k: v[safe] for k, v in arrays.items()}
    batch["token_ids"][~real] = special.pad
    batch["token_ids"][~real, :2] = (special.cls, special.sep)  # Never an empty row.
    batch["type_ids"][~real] = 0
    batch["labels"][~real] = 0
    batch["labels"] = batch["labels"].astype(features.FEATURES[kind]["labels"][1])
    batch["example_weights"] = real.astype(np.float32)
    return batch


def _train_batches(arrays, kind: str, special, *, batch_size: int, seed: int, process_index: int,
                   process_count: int) -> Iterator[dict[str, np.ndarray]]:
    n = len(arrays["labels"])
    global_size = batch_size * process_count
    start = process_index * batch_size
    pending, epoch = np.zeros(0, np.int64), 0
    while True:
        while len(pending) < global_size:  # Epoch ends carry over: nothing is dropped.
            pending = np.concatenate([pending, np.random.default_rng((seed, epoch)).permutation(n)])
            epoch += 1
        yield _take(arrays, pending[start:start + batch_size], kind, special)
        pending = pending[global_size:]


def _eval_batches(arrays, kind: str, special, *, batch_size: int, process_index: int,
                  process_count: int) -> Iterator[dict[str, np.ndarray]]:
    n = len(arrays["labels"])
    global_size = batch_size * process_count
    for step in range(math.ceil(n / global_size)):
        start = step * global_size + process_index * batch_size
        yield _take(arrays, np.arange(start, start + batch_size), kind, special)


def make_dataset(task: TaskOptions, split: str, *, tokenizer, max_seq_length: int,
                 batch_size: int, seed: int, process_index: int = 0, process_count: int = 1,
                 layout: str = "bert") -> Iterator[dict[str, np.ndarray]]:
    """Fixed-shape numpy batches of a classification or regression task, for one process.

    Args:
      task: the task (see the module docstring). Its ``max_train_examples`` > 0 keeps only that
        many training examples (a label budget, chosen by ``seed`` alone before anything else);
        dev and test are always whole.
      split: ``"train"`` (endless, reshuffled each epoch) or ``"dev"``/``"test"`` (one pass).
      tokenizer: a ``data.tokenizer.Tokenizer`` or ``data.hf_tokenizers.HfTokenizer``.
      max_seq_length: ``L``.
      batch_size: ``B``, rows per process; the global batch is ``process_count * B``.
      seed: picks the epoch permutations and the label-budget subset.
      process_index, process_count: this process and how many read the same stream.
      layout: ``bert`` or ``xlnet`` rows (:func:`encode`).

    Returns:
      An iterator of dicts following ``data.features.shapes(kind, B=batch_size,
      L=max_seq_length)``: ``token_ids``, ``type_ids``, ``labels``, ``example_weights``.

    Raises:
      ValueError: for a span-QA task (use ``data.qa``), bad sizes, or an empty split.
    """
    spec = task_spec(task)
    if spec.kind not in ("classification", "regression"):
        where = "data.seq2seq_batches" if spec.kind == "seq2seq" else "data.qa"
        raise ValueError(f"task {spec.name!r} is {spec.kind}; its batches come from {where}")
    if batch_size < 1 or not 0 <= process_index < process_count:
        raise ValueError(f"need batch_size >= 1 and 0 <= process_index < process_count; got "
                         f"{batch_size}, {process_index}, {process_count}")
    examples = load_examples(task, split)
    if split == "train":
        keep = budget_indices(len(examples["labels"]), task.max_train_examples, seed)
        examples = {"text_a": [examples["text_a"][i] for i in keep],
                    "text_b": None if examples["text_b"] is None
                    else [examples["text_b"][i] for i in keep],
                    "labels": examples["labels"][keep]}
    else:
        examples = eval_subset(examples, task.max_eval_examples)
    if not len(examples["labels"]):
        raise ValueError(f"task {spec.name!r} split {split!r} has no examples")
    arrays = encode(tokenizer, examples, max_seq_length, layout)
    shard = dict(batch_size=batch_size, process_index=process_index,
                 process_count=process_count)
    special = tokenizer.special_ids
    if split == "train":
        return _train_batches(arrays, spec.kind, special, seed=seed, **shard)
    return _eval_batches(arrays, spec.kind, special, **shard)
