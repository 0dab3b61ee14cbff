"""Pretraining input: corpus → sentence pairs/segments → MLM masks → fixed-shape numpy batches.

``make_dataset(corpus_options, options, split, ...)`` is the one entry point the trainer calls,
once per process, with the records of ``data/options.py``. Its output follows
``data.features.shapes(objectives, B=batch_size, L=max_seq_length, P=max_predictions_per_seq)``;
BERT's ``("mlm", "nsp")`` by default.

Sharding: the corpus is cut into ``num_shards`` shards (0 = one per process) before it is
read: whole files, TFDS sub-splits, or for a corpus of fewer files than shards its documents
dealt round-robin (``sources.read_shard_documents``). A process reads, tokenises and splits into
train/eval only the shards it owns (``shard_layout``); each shard is an independent stream. The
global batch is the shards' slices in shard order, so it is the same on 1 host or many.

Reading, tokenising and splitting the corpus is ``data/corpus.py`` (bad lines and files are
skipped, counted and reported there); each sentence task then skips the documents too short for
it (``corpus.task_documents``: counted, located, reported once, an error when none is left).

Reproducibility contract (train split): instance ``i`` of a shard's stream depends only on
``(seed, shard, i)``: epoch ``e``'s sentence pairs and their order come from a NumPy generator
seeded with ``(seed, e, shard)``, and the masks of instance ``i`` from a stateless TF seed folded
from ``(seed, shard, i)``. So resuming with ``start_position`` yields exactly what the
uninterrupted stream would have from there on.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from data import corpus as corpus_lib
from data import features, mlm, sentence_order
from data.options import CorpusOptions, InstanceOptions


def _hide_accelerators_from_tf() -> None:
    """Keeps TensorFlow off GPUs so it never takes memory JAX needs."""
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:
        pass  # TF already initialised its devices; too late to change, and not ours to undo.


_hide_accelerators_from_tf()

# Stream tags keep train and eval randomness apart even for equal seeds and counters.
_TRAIN, _EVAL = 0, 1
_U64 = (1 << 64) - 1
_I63 = (1 << 63) - 1  # TF seeds are int64.
# Passes over a shard's documents that may give no instance before that is an error (an empty
# pass is possible by chance, e.g. order with segment counts drawn above a short document's size).
_MAX_EMPTY_PASSES = 100

# Reading and tokenising the corpus lives in data/corpus.py; these names are also this module's.
CorpusShard = corpus_lib.CorpusShard
PretrainingCorpus = corpus_lib.PretrainingCorpus
load_corpus = corpus_lib.load_corpus
split_documents = corpus_lib.split_documents
tokenize_documents = corpus_lib.tokenize_documents
unigram_counts = corpus_lib.unigram_counts
unigram_log_probs_from_counts = corpus_lib.unigram_log_probs_from_counts


def _rng(tag: int, seed: int, counter: int, shard: int) -> np.random.Generator:
    return np.random.default_rng([tag, int(seed) & _U64, counter, shard])


def _instances(docs, options: InstanceOptions, rng: np.random.Generator,
               task: str = "nsp") -> dict[str, np.ndarray]:
    """One pass of ``task`` instances over ``docs``, shuffled by the same ``rng``."""
    inst = sentence_order.make_instances(task, docs, options, rng)
    order = rng.permutation(len(inst["token_ids"]))
    return {k: v[order] for k, v in inst.items()}


def _no_instances(docs, shard: int, passes: int, task: str) -> ValueError:
    """The error for documents that keep giving no instance (they would loop forever)."""
    return ValueError(f"data shard {shard}: {passes} passes over its {len(docs)} documents gave "
                      f"no {task} instance; the documents are too short for {task} (see "
                      "data.sentence_order.document_minimum): use longer documents")


def shard_layout(num_shards: int, batch_size: int, process_index: int,
                 process_count: int) -> tuple[list[int], int]:
    """Which data shards this process reads, and how many rows of each go into its batch.

    The global batch is always the concatenation, in shard order, of equal slices of every
    shard's stream, so it does not depend on how many processes share the work: a run on 2 hosts
    sees exactly the batches of a run on 1 host with the same ``num_shards``.

    Args:
      num_shards: data shards (0 = one per process, each host reading only its own documents).
      batch_size: rows of this process's batch.
      process_index, process_count: this process and how many there are.

    Returns:
      ``(shards, rows_per_shard)``.

    Raises:
      ValueError: when the shards do not divide over the processes or the batch over the shards.
    """
    shards, num_shards = corpus_lib.owned_shards(num_shards, process_index, process_count)
    if batch_size % len(shards):
        raise ValueError(f"a per-process batch of {batch_size} does not split over this process's "
                         f"{len(shards)} data shards; use a global batch divisible by "
                         f"data.num_shards={num_shards}")
    return shards, batch_size // len(shards)


def _train_epochs(docs, options: InstanceOptions, seed: int, shard: int, batch_size: int,
                  start_position: int, task: str = "nsp") -> Iterator[tuple[np.ndarray, ...]]:
    """Yields, epoch by epoch, ``(token_ids [n, L], type_ids [n, L], {task}_labels [n],
    positions [n])`` with ``n`` a multiple of ``batch_size``, from ``start_position`` on.

    The stream is one flat sequence of instances; rows that do not fill a batch at the end of an
    epoch are carried into the next, so batches are the same however epochs fall. Skipped epochs
    are built (to learn their sizes) but never masked.
    """
    position, to_skip = start_position, start_position
    carry, empty = None, 0
    for epoch in itertools.count():
        inst = _instances(docs, options, _rng(_TRAIN, seed, epoch, shard), task)
        size = len(inst["token_ids"])
        empty = 0 if size else empty + 1
        if empty >= _MAX_EMPTY_PASSES:
            raise _no_instances(docs, shard, empty, task)
        if to_skip >= size:
            to_skip -= size
            continue
        rows = (inst["token_ids"][to_skip:], inst["type_ids"][to_skip:],
                inst[f"{task}_labels"][to_skip:],
                np.arange(position, position + size - to_skip, dtype=np.int64))
        position += size - to_skip
        to_skip = 0
        if carry is not None:
            rows = tuple(np.concatenate([c, r]) for c, r in zip(carry, rows, strict=True))
        full = len(rows[2]) // batch_size * batch_size
        carry = tuple(r[full:] for r in rows)
        if full:
            yield tuple(r[:full] for r in rows)


def _train_batches(docs, options: InstanceOptions, seed: int, shard: int, batch_size: int,
                   start_position: int, mask, task: str) -> Iterator[dict[str, np.ndarray]]:
    """One tf.data pipeline per epoch, fed from NumPy arrays.

    Building pairs happens here, on the caller's thread, never inside a TF thread: a Python
    callback in tf.data (``from_generator``) deadlocks on the GIL when the iterator is destroyed
    mid-stream, which is how every training run ends.
    """
    for arrays in _train_epochs(docs, options, seed, shard, batch_size, start_position, task):
        ds = tf.data.Dataset.from_tensor_slices(arrays)
        ds = ds.map(mask, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        yield from ds.batch(batch_size, drop_remainder=True).prefetch(
            tf.data.AUTOTUNE).as_numpy_iterator()


def _eval_instances(docs, options: InstanceOptions, seed: int, shard: int, batch_size: int,
                    task: str) -> dict[str, np.ndarray]:
    """Eval pairs from a fixed rng; passes are repeated (fresh pairs) until a batch is full."""
    passes = []
    for repeat in itertools.count():
        passes.append(_instances(docs, options, _rng(_EVAL, seed, repeat, shard), task))
        size = sum(len(p["token_ids"]) for p in passes)
        if size >= batch_size:
            return {k: np.concatenate([p[k] for p in passes]) for k in passes[0]}
        if not size and repeat + 1 >= _MAX_EMPTY_PASSES:
            raise _no_instances(docs, shard, repeat + 1, task)


def _mask_fn(options: InstanceOptions, vocab_size: int, is_word_start, base_seed: tf.Tensor,
             task: str, keys: tuple[str, ...]):
    """The tf.data map that masks one instance (if MLM) with a seed folded from its position."""
    @tf.autograph.experimental.do_not_convert  # straight-line TF ops; nothing to convert
    def fn(token_ids, type_ids, labels, position):
        out = {"token_ids": token_ids}
        if "mlm_positions" in keys:
            seed = tf.random.experimental.stateless_fold_in(base_seed, position)
            out = mlm.mask_tokens(token_ids, seed,
                                  max_predictions=options.max_predictions_per_seq,
                                  masked_lm_prob=options.masked_lm_prob, vocab_size=vocab_size,
                                  is_word_start=is_word_start)
        batch = dict(out, type_ids=type_ids, **{f"{task}_labels": labels})
        return {k: batch[k] for k in keys}
    return fn


def checked_layout(corpus_options: CorpusOptions, split: str, batch_size: int,
                   start_position: int, process_index: int,
                   process_count: int) -> tuple[list[int], int]:
    """``shard_layout`` for a pretraining stream, after checking ``split`` and
    ``start_position`` (every pretraining pipeline takes the same arguments)."""
    if split not in ("train", "eval"):
        raise ValueError(f"split={split!r}; use 'train' or 'eval'")
    if start_position < 0 or start_position % batch_size:
        raise ValueError(f"start_position={start_position} is not a whole number of batches")
    return shard_layout(corpus_options.num_shards, batch_size, process_index, process_count)


def make_dataset(corpus_options: CorpusOptions, options: InstanceOptions, split: str, *,
                 batch_size: int, seed: int, process_index: int = 0, process_count: int = 1,
                 start_position: int = 0,
                 objectives: tuple[str, ...] = ("mlm", "nsp")) -> Iterator[dict[str, np.ndarray]]:
    """Pretraining batches for one process (BERT's MLM + NSP by default).

    Args:
      corpus_options: the corpus, its tokenizer, held-out fraction and data shards.
      options: the instances: ``max_seq_length`` (L), ``max_predictions_per_seq`` (P), the
        masking and the sentence task's probabilities.
      split: ``"train"`` (infinite, reshuffled pairs every epoch) or ``"eval"`` (one fixed pass,
        as many batches as this process's shards can all fill: processes may differ, so a
        multi-process caller agrees on the minimum before evaluating).
      batch_size: ``B`` per process.
      seed: the run's data seed.
      process_index: this process; it reads only the documents of its shards (``shard_layout``).
      process_count: number of processes.
      start_position: train only: instances this process already consumed (steps × B). The
        stream resumes exactly there; each skipped epoch costs one unmasked pass of pair
        building (~1.5 s on the embedded corpus), no masking.
      objectives: ``mlm`` and/or one sentence task (``nsp``, ``sop``, ``order``).

    Returns:
      An iterator of dicts as ``data.features.shapes(objectives, B=…, L=…, P=…)`` (B per process).
    """
    shards, rows = checked_layout(corpus_options, split, batch_size, start_position,
                                  process_index, process_count)
    tag = _TRAIN if split == "train" else _EVAL
    task, keys = sentence_order.sentence_task(objectives), tuple(features.schema(objectives))
    corpus = load_corpus(corpus_options, process_index=process_index, process_count=process_count)
    word_starts = corpus.tokenizer.is_word_start() if options.whole_word_masking else None
    if split == "eval":
        eval_rows = _eval_rows({s: corpus_lib.task_documents(corpus, s, "eval", task, options)
                                for s in shards}, options, rows, seed, task)
    streams = []
    for shard in shards:
        base_seed = tf.random.experimental.stateless_fold_in(
            tf.constant([tag, int(seed) & _I63], tf.int64), shard)
        mask = _mask_fn(options, corpus.vocab_size, word_starts, base_seed, task, keys)
        if split == "train":
            start = start_position // batch_size * rows
            docs = corpus_lib.task_documents(corpus, shard, "train", task, options)
            streams.append(_train_batches(docs, options, seed, shard, rows, start, mask, task))
        else:
            ds = tf.data.Dataset.from_tensor_slices(eval_rows[shard]).map(
                mask, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            streams.append(ds.batch(rows, drop_remainder=True).as_numpy_iterator())
    if len(streams) == 1:
        return streams[0]
    return ({k: np.concatenate([b[k] for b in parts]) for k in parts[0]}
            for parts in zip(*streams, strict=False))


def _eval_rows(docs: dict[int, list], options: InstanceOptions, rows: int, seed: int,
               task: str) -> dict[int, tuple[np.ndarray, ...]]:
    """Unmasked eval instances of this process's shards (``docs``: shard → its eval documents),
    cut to the batch count all can give.

    Other processes' shards are not read here, so the count may differ between processes; the
    caller agrees on the minimum. A shard's instances are a prefix of the same stream whatever
    the cut, so the batches all processes keep are those of a single process.

    Returns:
      Per owned shard, ``(token_ids, type_ids, {task}_labels, positions)``, equally long.
    """
    shards = {s: _eval_instances(x, options, seed, s, rows, task) for s, x in docs.items()}
    num = min(len(x["token_ids"]) for x in shards.values()) // rows * rows
    return {s: (x["token_ids"][:num], x["type_ids"][:num], x[f"{task}_labels"][:num],
                np.arange(num, dtype=np.int64)) for s, x in shards.items()}
