"""Causal-LM input: corpus → documents ending in </s> → packed rows of L tokens → batches.

``make_dataset(corpus_options, options, split, ...)`` mirrors ``data.pipeline.make_dataset``
(same corpus loading, shards, process layout and resumption contract); its output follows
``data.features.shapes("clm", B=batch_size, L=max_seq_length)``.

Packing: an epoch's documents (each one's sentences concatenated, then </s>) form one token
stream, cut into rows of L tokens; a document may end in one row and go on in the next. Inside a
row, ``segment_ids`` number the document pieces 1, 2, … (0 = padding), ``positions`` restart at 0
with each piece, and ``clm_targets`` is the next token of the same piece: ``clm_weights`` is 0 at
the last token of every piece (a </s>, or a row end), so nothing is predicted across a boundary.

Reproducibility (train split): every epoch has the same number of rows (the stream's length does
not depend on document order), and epoch ``e``'s document order and row order come from a NumPy
generator seeded with ``(seed, e, shard)``; so row ``i`` of a shard's stream depends only on
``(seed, shard, i)`` and ``start_position`` resumes exactly, without rebuilding skipped epochs.
Arrays are built with NumPy on the caller's thread and fed to tf.data as tensors (a Python
callback inside tf.data deadlocks on the GIL when the iterator is dropped mid-stream).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import tensorflow as tf

from data import features, pipeline
from data.options import ClmOptions, CorpusOptions

_TRAIN, _EVAL = 0, 1
_U64 = (1 << 64) - 1
_KEYS = tuple(features.FEATURES["clm"])


def document_tokens(doc: list[np.ndarray]) -> np.ndarray:
    """int32 [len + 1]: a document's sentences back to back, then </s>."""
    return np.concatenate([*doc, np.array([features.EOS_ID], np.int32)]).astype(np.int32)


def _stream(docs: list[list[np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """``(token_ids, doc_index)``, both int32 [T]: the documents in the given order."""
    toks = [document_tokens(d) for d in docs]
    index = np.repeat(np.arange(len(toks), dtype=np.int32), [len(t) for t in toks])
    return np.concatenate(toks), index


def row_features(token_ids: np.ndarray, doc_index: np.ndarray) -> dict[str, np.ndarray]:
    """The ``clm`` features of packed rows.

    Args:
      token_ids: int32 [n, L]; padding is ``PAD_ID``.
      doc_index: int [n, L], which document each token comes from; -1 for padding.

    Returns:
      ``token_ids``, ``segment_ids``, ``positions``, ``clm_targets`` int32 [n, L] and
      ``clm_weights`` float32 [n, L].
    """
    n, length = token_ids.shape
    real = doc_index >= 0
    starts = real & np.concatenate([np.ones((n, 1), bool), doc_index[:, 1:] != doc_index[:, :-1]],
                                   axis=1)
    segment_ids = np.where(real, np.cumsum(starts, axis=1), 0)
    cols = np.broadcast_to(np.arange(length), (n, length))
    positions = np.where(real, cols - np.maximum.accumulate(np.where(starts, cols, 0), axis=1), 0)
    same_next = np.zeros((n, length), bool)
    same_next[:, :-1] = real[:, :-1] & (doc_index[:, 1:] == doc_index[:, :-1])
    targets = np.zeros((n, length), np.int32)
    targets[:, :-1] = token_ids[:, 1:]
    return {"token_ids": token_ids.astype(np.int32), "segment_ids": segment_ids.astype(np.int32),
            "positions": positions.astype(np.int32),
            "clm_targets": np.where(same_next, targets, features.PAD_ID).astype(np.int32),
            "clm_weights": same_next.astype(np.float32)}


def pack(docs: list[list[np.ndarray]], length: int, *, pad_tail: bool) -> dict[str, np.ndarray]:
    """Packs ``docs`` (in order) into rows of ``length`` tokens.

    Args:
      docs: documents of int32 sentence arrays.
      length: L.
      pad_tail: keep the last, partial row, padded (eval); else drop it (train).

    Returns:
      :func:`row_features` of the rows.
    """
    tokens, index = _stream(docs)
    n = -(-len(tokens) // length) if pad_tail else len(tokens) // length
    tokens = np.pad(tokens, (0, max(0, n * length - len(tokens))),
                    constant_values=features.PAD_ID)
    index = np.pad(index, (0, max(0, n * length - len(index))), constant_values=-1)
    return row_features(tokens[:n * length].reshape(n, length),
                        index[:n * length].reshape(n, length))


def _rng(tag: int, seed: int, epoch: int, shard: int) -> np.random.Generator:
    return np.random.default_rng([tag, int(seed) & _U64, epoch, shard])


def _epoch_rows(docs, length: int, seed: int, epoch: int, shard: int) -> dict[str, np.ndarray]:
    """One epoch's rows: documents and then rows in an order drawn from ``(seed, epoch, shard)``."""
    rng = _rng(_TRAIN, seed, epoch, shard)
    rows = pack([docs[i] for i in rng.permutation(len(docs))], length, pad_tail=False)
    order = rng.permutation(len(rows["token_ids"]))
    return {k: v[order] for k, v in rows.items()}


def rows_per_epoch(docs, length: int) -> int:
    """Rows an epoch of ``docs`` gives (the same every epoch)."""
    return sum(sum(len(s) for s in d) + 1 for d in docs) // length


def _train_rows(docs, length: int, seed: int, shard: int, start: int
                ) -> Iterator[dict[str, np.ndarray]]:
    """The shard's row stream from row ``start`` on, an epoch (or its rest) at a time."""
    per_epoch = rows_per_epoch(docs, length)
    if per_epoch == 0:
        raise ValueError(f"data shard {shard} has fewer tokens than one row of "
                         f"data.max_seq_length={length}; use a larger corpus or a shorter length")
    first, offset = divmod(start, per_epoch)
    for epoch in itertools.count(first):
        rows = _epoch_rows(docs, length, seed, epoch, shard)
        yield {k: v[offset:] for k, v in rows.items()}
        offset = 0


def _batched(row_chunks: Iterator[dict], batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Batches of ``batch_size`` consecutive rows; rows left at an epoch's end join the next."""
    carry = None
    for rows in row_chunks:
        if carry is not None:
            rows = {k: np.concatenate([carry[k], rows[k]]) for k in _KEYS}
        full = len(rows["token_ids"]) // batch_size * batch_size
        carry = {k: rows[k][full:] for k in _KEYS}
        if full:
            ds = tf.data.Dataset.from_tensor_slices({k: rows[k][:full] for k in _KEYS})
            yield from ds.batch(batch_size, drop_remainder=True).prefetch(
                tf.data.AUTOTUNE).as_numpy_iterator()


def eval_rows(docs, length: int, batch_size: int) -> dict[str, np.ndarray]:
    """The held-out documents packed in order, padded with empty rows to whole batches."""
    rows = pack(docs, length, pad_tail=True)
    extra = -len(rows["token_ids"]) % batch_size
    return {k: np.pad(v, ((0, extra), (0, 0))) for k, v in rows.items()}


def make_dataset(corpus_options: CorpusOptions, options: ClmOptions, split: str, *,
                 batch_size: int, seed: int, process_index: int = 0, process_count: int = 1,
                 start_position: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Causal-LM batches for one process.

    Args:
      corpus_options: the corpus, its tokenizer, held-out fraction and data shards.
      options: ``max_seq_length`` (L), the length of a packed row.
      split: ``"train"`` (infinite, reshuffled every epoch) or ``"eval"`` (the held-out
        documents once, in order; the last batch padded with empty rows, weight 0).
      batch_size: ``B`` per process.
      seed: the run's data seed.
      process_index, process_count: pick this process's data shards (``pipeline.shard_layout``).
      start_position: train only: rows this process already consumed (steps × B).

    Returns:
      An iterator of dicts with the keys of ``features.FEATURES["clm"]``, each [B, L].
    """
    shards, rows = pipeline.checked_layout(corpus_options, split, batch_size, start_position,
                                           process_index, process_count)
    corpus = pipeline.load_corpus(corpus_options, process_index=process_index,
                                  process_count=process_count)
    length, streams = options.max_seq_length, []
    for shard in shards:
        if split == "train":
            start = start_position // batch_size * rows
            streams.append(_batched(_train_rows(corpus.shards[shard].train_docs, length, seed,
                                                shard, start), rows))
        else:
            streams.append(_batched(iter([eval_rows(corpus.shards[shard].eval_docs, length,
                                                    rows)]), rows))
    if len(streams) == 1:
        return streams[0]
    return ({k: np.concatenate([b[k] for b in parts]) for k in parts[0]}
            for parts in zip(*streams, strict=False))


def unigram_counts(corpus: pipeline.PretrainingCorpus) -> np.ndarray:
    """int64 [V]: the corpus's train-token counts plus one </s> per train document (the CLM
    stream's tokens), for :func:`unigram_log_probs_from_counts`."""
    counts = np.array(corpus.unigram_counts, np.int64)
    counts[features.EOS_ID] += len(corpus.train_docs)
    return counts


def unigram_log_probs_from_counts(counts: np.ndarray) -> np.ndarray:
    """float32 [V]: ``pipeline.unigram_log_probs_from_counts``'s smoothing (add 0.5 to words, a
    1e-6 pseudo-count to special ids), except that </s> keeps its count + 0.5: in the CLM stream
    it is a target like any word."""
    counts = np.asarray(counts).astype(np.float64)
    eos = counts[features.EOS_ID]
    counts[:features.NUM_SPECIAL_IDS] = 1e-6
    counts[features.NUM_SPECIAL_IDS:] += 0.5
    counts[features.EOS_ID] = eos + 0.5
    return np.log(counts / counts.sum()).astype(np.float32)
