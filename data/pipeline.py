"""Pretraining input: corpus → sentence pairs/segments → MLM masks → fixed-shape numpy batches.

``make_dataset(cfg, split, ...)`` is the one entry point the trainer calls, once per process.
Its output follows ``data.features.shapes(objectives, B=batch_size, L=max_seq_length,
P=max_predictions_per_seq)``; BERT's ``("mlm", "nsp")`` by default.

Sharding: the corpus is cut into ``data.num_shards`` shards (0 = one per process) before it is
read: whole files, TFDS sub-splits, or for a corpus of fewer files than shards its documents
dealt round-robin (``sources.read_shard_documents``). A process reads, tokenises and splits into
train/eval only the shards it owns (``shard_layout``); each shard is an independent stream. The
global batch is the shards' slices in shard order, so it is the same on 1 host or many.

Reproducibility contract (train split): instance ``i`` of a shard's stream depends only on
``(seed, shard, i)``: epoch ``e``'s sentence pairs and their order come from a NumPy generator
seeded with ``(seed, e, shard)``, and the masks of instance ``i`` from a stateless TF seed folded
from ``(seed, shard, i)``. So resuming with ``start_position`` yields exactly what the
uninterrupted stream would have from there on.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Iterator

import numpy as np
import tensorflow as tf
from absl import logging

from data import features, mlm, sentence_order, sources
from data.tokenizer import Tokenizer


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
_SPECIAL_PSEUDO_COUNT = 1e-6


@dataclasses.dataclass(frozen=True, eq=False)
class CorpusShard:
    """One data shard's train and held-out eval documents, each document a list of int32 [len]
    sentence arrays (no empty sentences)."""

    train_docs: list[list[np.ndarray]]
    eval_docs: list[list[np.ndarray]]


@dataclasses.dataclass(frozen=True, eq=False)
class PretrainingCorpus:
    """The tokenised data shards one process owns.

    Attributes:
      tokenizer: the tokenizer that produced the ids.
      shards: shard id → its documents, for this process's shards only, in shard order.
      unigram_counts: int64 [V] occurrences of each id in these shards' train documents. Sum it
        over processes before :func:`unigram_log_probs_from_counts` for the whole corpus.
    """

    tokenizer: Tokenizer
    shards: dict[int, CorpusShard]
    unigram_counts: np.ndarray

    @property
    def vocab_size(self) -> int:
        """``V``, the tokenizer's vocabulary size."""
        return self.tokenizer.vocab_size

    @property
    def train_docs(self) -> list[list[np.ndarray]]:
        """The train documents of all of this process's shards, in shard order."""
        return [d for shard in self.shards.values() for d in shard.train_docs]

    @property
    def eval_docs(self) -> list[list[np.ndarray]]:
        """The eval documents of all of this process's shards, in shard order."""
        return [d for shard in self.shards.values() for d in shard.eval_docs]

    @property
    def unigram_log_probs(self) -> np.ndarray:
        """float32 [V]: :func:`unigram_log_probs_from_counts` of this process's counts only."""
        return unigram_log_probs_from_counts(self.unigram_counts)


def tokenize_documents(tokenizer: Tokenizer,
                       documents: list[list[str]]) -> list[list[np.ndarray]]:
    """Encodes all sentences in one batched call; drops sentences and documents left empty.

    Returns:
      Documents of int32 [len] arrays, every array non-empty, every document non-empty.
    """
    ids = tokenizer.encode([s for doc in documents for s in doc])
    out, start = [], 0
    for doc in documents:
        sentences = [np.asarray(x, np.int32) for x in ids[start:start + len(doc)] if x]
        start += len(doc)
        if sentences:
            out.append(sentences)
    return out


def split_documents(num_docs: int, eval_fraction: float) -> tuple[list[int], list[int]]:
    """Deterministic train/eval split of document indices.

    ``max(1, round(num_docs * eval_fraction))`` eval documents spread evenly over the corpus (the
    middle of each of that many equal stretches), so every source file contributes to eval.

    Returns:
      ``(train_indices, eval_indices)``, both ascending.

    Raises:
      ValueError: when the corpus cannot give at least 1 eval and 2 train documents.
    """
    if not 0.0 <= eval_fraction < 1.0:
        raise ValueError(f"eval_fraction={eval_fraction} must be in [0, 1)")
    num_eval = max(1, round(num_docs * eval_fraction))
    if num_docs - num_eval < 2:
        raise ValueError(f"the corpus has {num_docs} documents; with eval_fraction={eval_fraction} "
                         "that leaves fewer than 2 for training and 1 for eval. Use a larger "
                         "corpus (documents are separated by blank lines) or a smaller fraction")
    eval_indices = sorted({int((j + 0.5) * num_docs / num_eval) for j in range(num_eval)})
    eval_set = set(eval_indices)
    return [i for i in range(num_docs) if i not in eval_set], eval_indices


def unigram_counts(docs: list[list[np.ndarray]], vocab_size: int) -> np.ndarray:
    """int64 [V]: how often each id occurs in ``docs``."""
    tokens = np.concatenate([s for doc in docs for s in doc])
    return np.bincount(tokens, minlength=vocab_size)[:vocab_size].astype(np.int64)


def unigram_log_probs_from_counts(counts: np.ndarray) -> np.ndarray:
    """float32 [V] log unigram probabilities: add-0.5 smoothed counts of the non-special ids.

    Special ids get a pseudo-count of 1e-6 rather than zero: a finite log-probability keeps
    ``-log_p[targets] * weights`` at 0 (not NaN) on padded prediction slots, whose target is 0.
    Smooth after summing ``counts`` (:func:`unigram_counts`) over processes: then the result is
    that of one process counting the whole corpus.
    """
    counts = np.asarray(counts).astype(np.float64)
    counts[:features.NUM_SPECIAL_IDS] = _SPECIAL_PSEUDO_COUNT
    counts[features.NUM_SPECIAL_IDS:] += 0.5
    return np.log(counts / counts.sum()).astype(np.float32)


def _load_shard(tok: Tokenizer, corpus: str, tfds_data_dir: str, eval_fraction: float,
                shard: int, num_shards: int) -> CorpusShard:
    """Reads and tokenises one shard's documents only, and splits them into train and eval."""
    docs = tokenize_documents(tok, sources.read_shard_documents(
        corpus, shard, num_shards, tfds_data_dir=tfds_data_dir))
    if num_shards > 1 and len(docs) - max(1, round(len(docs) * eval_fraction)) < 2:
        raise ValueError(
            f"data shard {shard} of {num_shards} has {len(docs)} documents; with eval_fraction="
            f"{eval_fraction} that leaves fewer than 2 for training and 1 for eval. Use fewer "
            "data.num_shards, more corpus files (a shard is files[shard::num_shards] when there "
            "are at least num_shards files), more documents, or a smaller eval_fraction")
    train_idx, eval_idx = split_documents(len(docs), eval_fraction)
    return CorpusShard(train_docs=[docs[i] for i in train_idx],
                       eval_docs=[docs[i] for i in eval_idx])


@functools.lru_cache(maxsize=4)
def _load_corpus(corpus: str, tokenizer: str, tfds_data_dir: str, eval_fraction: float,
                 shards: tuple[int, ...], num_shards: int) -> PretrainingCorpus:
    if not 0.0 <= eval_fraction < 1.0:  # say so before reading what may be a large corpus
        raise ValueError(f"eval_fraction={eval_fraction} must be in [0, 1)")
    if sources.shards_share_files(corpus, num_shards):
        logging.info("corpus %r has fewer files than data.num_shards=%d: every process reads all "
                     "of them but tokenises only its shards' documents (dealt round-robin)",
                     corpus, num_shards)
    tok = Tokenizer.load(tokenizer)
    loaded = {s: _load_shard(tok, corpus, tfds_data_dir, eval_fraction, s, num_shards)
              for s in shards}
    counts = sum(unigram_counts(x.train_docs, tok.vocab_size) for x in loaded.values())
    return PretrainingCorpus(tokenizer=tok, shards=loaded, unigram_counts=counts)


def load_corpus(cfg, *, process_index: int = 0, process_count: int = 1) -> PretrainingCorpus:
    """Reads, tokenises and splits this process's data shards of ``cfg.corpus`` (cached).

    Args:
      cfg: the data config; uses ``corpus``, ``tokenizer``, ``tfds_data_dir``, ``eval_fraction``,
        ``num_shards``.
      process_index, process_count: this process and how many there are; they pick the shards
        (``shard_layout``), whose content does not depend on them.

    Returns:
      The cached :class:`PretrainingCorpus`; treat it as read-only.
    """
    shards, num_shards = _owned_shards(cfg.num_shards, process_index, process_count)
    return _load_corpus(cfg.corpus, cfg.tokenizer, cfg.tfds_data_dir or "",
                        float(cfg.eval_fraction), tuple(shards), num_shards)


def _rng(tag: int, seed: int, counter: int, shard: int) -> np.random.Generator:
    return np.random.default_rng([tag, int(seed) & _U64, counter, shard])


def _instances(docs, cfg, rng: np.random.Generator, task: str = "nsp") -> dict[str, np.ndarray]:
    """One pass of ``task`` instances over ``docs``, shuffled by the same ``rng``."""
    inst = sentence_order.make_instances(task, docs, cfg, rng)
    order = rng.permutation(len(inst["token_ids"]))
    return {k: v[order] for k, v in inst.items()}


def _owned_shards(num_shards: int, process_index: int,
                  process_count: int) -> tuple[list[int], int]:
    """``(this process's shards, S)``; raises when ``S`` does not divide over the processes."""
    if not 0 <= process_index < process_count:
        raise ValueError(f"need 0 <= process_index={process_index} < process_count="
                         f"{process_count}")
    num_shards = num_shards or process_count
    if num_shards % process_count:
        raise ValueError(f"data.num_shards={num_shards} does not divide over {process_count} "
                         f"processes; use a multiple of {process_count} (or 0 = one per process)")
    per_process = num_shards // process_count
    first = process_index * per_process
    return list(range(first, first + per_process)), num_shards


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
    shards, num_shards = _owned_shards(num_shards, process_index, process_count)
    if batch_size % len(shards):
        raise ValueError(f"a per-process batch of {batch_size} does not split over this process's "
                         f"{len(shards)} data shards; use a global batch divisible by "
                         f"data.num_shards={num_shards}")
    return shards, batch_size // len(shards)


def _train_epochs(docs, cfg, seed: int, shard: int, batch_size: int,
                  start_position: int, task: str = "nsp") -> Iterator[tuple[np.ndarray, ...]]:
    """Yields, epoch by epoch, ``(token_ids [n, L], type_ids [n, L], {task}_labels [n],
    positions [n])`` with ``n`` a multiple of ``batch_size``, from ``start_position`` on.

    The stream is one flat sequence of instances; rows that do not fill a batch at the end of an
    epoch are carried into the next, so batches are the same however epochs fall. Skipped epochs
    are built (to learn their sizes) but never masked.
    """
    position, to_skip = start_position, start_position
    carry = None
    for epoch in itertools.count():
        inst = _instances(docs, cfg, _rng(_TRAIN, seed, epoch, shard), task)
        size = len(inst["token_ids"])
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


def _train_batches(docs, cfg, seed: int, shard: int, batch_size: int,
                   start_position: int, mask, task: str) -> Iterator[dict[str, np.ndarray]]:
    """One tf.data pipeline per epoch, fed from NumPy arrays.

    Building pairs happens here, on the caller's thread, never inside a TF thread: a Python
    callback in tf.data (``from_generator``) deadlocks on the GIL when the iterator is destroyed
    mid-stream, which is how every training run ends.
    """
    for arrays in _train_epochs(docs, cfg, seed, shard, batch_size, start_position, task):
        ds = tf.data.Dataset.from_tensor_slices(arrays)
        ds = ds.map(mask, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        yield from ds.batch(batch_size, drop_remainder=True).prefetch(
            tf.data.AUTOTUNE).as_numpy_iterator()


def _eval_instances(docs, cfg, seed: int, shard: int, batch_size: int,
                    task: str) -> dict[str, np.ndarray]:
    """Eval pairs from a fixed rng; passes are repeated (fresh pairs) until a batch is full."""
    passes = []
    for repeat in itertools.count():
        passes.append(_instances(docs, cfg, _rng(_EVAL, seed, repeat, shard), task))
        if sum(len(p["token_ids"]) for p in passes) >= batch_size:
            return {k: np.concatenate([p[k] for p in passes]) for k in passes[0]}


def _mask_fn(cfg, vocab_size: int, is_word_start, base_seed: tf.Tensor, task: str,
             keys: tuple[str, ...]):
    """The tf.data map that masks one instance (if MLM) with a seed folded from its position."""
    @tf.autograph.experimental.do_not_convert  # straight-line TF ops; nothing to convert
    def fn(token_ids, type_ids, labels, position):
        out = {"token_ids": token_ids}
        if "mlm_positions" in keys:
            seed = tf.random.experimental.stateless_fold_in(base_seed, position)
            out = mlm.mask_tokens(token_ids, seed, max_predictions=cfg.max_predictions_per_seq,
                                  masked_lm_prob=cfg.masked_lm_prob, vocab_size=vocab_size,
                                  is_word_start=is_word_start)
        batch = dict(out, type_ids=type_ids, **{f"{task}_labels": labels})
        return {k: batch[k] for k in keys}
    return fn


def checked_layout(cfg, split: str, batch_size: int, start_position: int, process_index: int,
                   process_count: int) -> tuple[list[int], int]:
    """``shard_layout`` for a pretraining stream, after checking ``split`` and
    ``start_position`` (every pretraining pipeline takes the same arguments)."""
    if split not in ("train", "eval"):
        raise ValueError(f"split={split!r}; use 'train' or 'eval'")
    if start_position < 0 or start_position % batch_size:
        raise ValueError(f"start_position={start_position} is not a whole number of batches")
    return shard_layout(cfg.num_shards, batch_size, process_index, process_count)


def make_dataset(cfg, split: str, *, batch_size: int, seed: int, process_index: int = 0,
                 process_count: int = 1, start_position: int = 0,
                 objectives: tuple[str, ...] = ("mlm", "nsp")) -> Iterator[dict[str, np.ndarray]]:
    """Pretraining batches for one process (BERT's MLM + NSP by default).

    Args:
      cfg: data ConfigDict: ``corpus``, ``tokenizer``, ``tfds_data_dir``, ``max_seq_length`` (L),
        ``max_predictions_per_seq`` (P), ``masked_lm_prob``, ``short_seq_prob``,
        ``nsp_random_prob``, ``whole_word_masking``, ``eval_fraction``, ``num_shards``.
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
    shards, rows = checked_layout(cfg, split, batch_size, start_position, process_index,
                                  process_count)
    tag = _TRAIN if split == "train" else _EVAL
    task, keys = sentence_order.sentence_task(objectives), tuple(features.schema(objectives))
    corpus = load_corpus(cfg, process_index=process_index, process_count=process_count)
    word_starts = corpus.tokenizer.is_word_start() if cfg.whole_word_masking else None
    if split == "eval":
        eval_rows = _eval_rows(corpus, cfg, rows, seed, task)
    streams = []
    for shard in shards:
        base_seed = tf.random.experimental.stateless_fold_in(
            tf.constant([tag, int(seed) & _I63], tf.int64), shard)
        mask = _mask_fn(cfg, corpus.vocab_size, word_starts, base_seed, task, keys)
        if split == "train":
            start = start_position // batch_size * rows
            streams.append(_train_batches(corpus.shards[shard].train_docs, cfg, seed, shard, rows,
                                          start, mask, task))
        else:
            ds = tf.data.Dataset.from_tensor_slices(eval_rows[shard]).map(
                mask, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            streams.append(ds.batch(rows, drop_remainder=True).as_numpy_iterator())
    if len(streams) == 1:
        return streams[0]
    return ({k: np.concatenate([b[k] for b in parts]) for k in parts[0]}
            for parts in zip(*streams, strict=False))


def _eval_rows(corpus: PretrainingCorpus, cfg, rows: int, seed: int,
               task: str) -> dict[int, tuple[np.ndarray, ...]]:
    """Unmasked eval instances of this process's shards, cut to the batch count all can give.

    Other processes' shards are not read here, so the count may differ between processes; the
    caller agrees on the minimum. A shard's instances are a prefix of the same stream whatever
    the cut, so the batches all processes keep are those of a single process.

    Returns:
      Per owned shard, ``(token_ids, type_ids, {task}_labels, positions)``, equally long.
    """
    shards = {s: _eval_instances(x.eval_docs, cfg, seed, s, rows, task)
              for s, x in corpus.shards.items()}
    num = min(len(x["token_ids"]) for x in shards.values()) // rows * rows
    return {s: (x["token_ids"][:num], x["type_ids"][:num], x[f"{task}_labels"][:num],
                np.arange(num, dtype=np.int64)) for s, x in shards.items()}
