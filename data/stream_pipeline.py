"""Pretraining batches from streamed corpora (``stream:``, ``prepared:``, mixtures of them).

``make_dataset(family, corpus_options, options, split, ...)`` keeps ``data.pipeline``'s contract
(the same batch schema, shards and process layout) for corpora larger than memory, for every
objective family: ``"sentence"`` (MLM and/or NSP/SOP/order, ``options`` an ``InstanceOptions``
plus ``objectives``), ``"clm"`` (GPT packing) and ``"plm"`` (XLNet). A chunk of documents
(``data.streaming``) becomes rows with the in-memory builders (``sentence_order.make_instances``,
``clm.pack``, the sentence pairs ``plm`` reuses), shuffled within the chunk; rows of a data shard
are drawn from its sources (``data.mixture``), then masked in tf.data with stateless seeds folded
from the row's position in the shard's stream, exactly as the in-memory path masks (PLM:
``plm.plm_batches``, seeded by position too).

A background thread builds blocks of batches ahead of the training thread (a bounded queue);
it is a plain Python thread that iterates tf.data, never a tf.data Python callback
(``from_generator`` deadlocks on the GIL when the iterator is destroyed). The iterator reports
``state()`` — per shard the mixture state after the last batch it returned — which the trainer
saves with each checkpoint and passes back as ``stream_state`` to resume exactly there.

Eval: each shard's held-out documents, read from the start of its files until
``stream_chunk_documents`` of them are found or 8 times that many documents were read (a
bounded read, whatever the corpus size), built as the in-memory eval stream builds them.
Start-up never reads the whole corpus; the unigram baseline's counts (:func:`load_corpus`) are
those of these eval documents for ``stream:`` and the manifest's counts (of the shard's files)
for ``prepared:``.
"""

from __future__ import annotations

import dataclasses
import functools
import queue
import threading
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow as tf

from data import clm, features, mixture, pipeline, plm, sentence_order, streaming
from data.options import CorpusOptions
from data.skipped import Skipped
from data.tokenizer import Tokenizer

_TRAIN, _EVAL = 0, 1
_U64, _I63 = (1 << 64) - 1, (1 << 63) - 1
_BLOCK_ROWS = 1024  # rows masked per tf.data pipeline
_QUEUE_BLOCKS = 2  # blocks of batches ready ahead of the training thread


@dataclasses.dataclass(frozen=True, eq=False)
class StreamedCorpus:
    """What the trainer needs of a streamed corpus before training (no document lists).

    ``train_docs`` is a ``range`` as long as the documents ``unigram_counts`` counted (the CLM
    baseline adds one </s> per document).
    """

    tokenizer: Tokenizer
    sources: dict[str, tuple[float, streaming.Source]]
    unigram_counts: np.ndarray
    train_docs: range
    shard_eval_docs: dict[int, list]

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    @property
    def eval_docs(self) -> list:
        """The eval documents of all of this process's shards, in shard order."""
        return [d for docs in self.shard_eval_docs.values() for d in docs]


@functools.lru_cache(maxsize=4)
def _load(options: CorpusOptions, shards: tuple[int, ...], num_shards: int) -> StreamedCorpus:
    tok = Tokenizer.load(options.tokenizer)
    srcs = {n: (w, streaming.open_source(s, tok)) for n, w, s in mixture.parse(options.corpus)}
    skipped, eval_docs = Skipped(), {}
    counts, counted = np.zeros(tok.vocab_size, np.int64), 0
    for shard in shards:
        eval_docs[shard] = []
        for _, source in srcs.values():
            docs = streaming.eval_documents(source, shard, num_shards, options.eval_fraction,
                                            options.stream_chunk_documents, skipped)
            eval_docs[shard].extend(docs)
            manifest = source.unigram_counts([shard], num_shards)
            if manifest is not None:
                counts += manifest
                counted += source.document_count([shard], num_shards)
            elif docs:
                counts += pipeline.unigram_counts(docs, tok.vocab_size)
                counted += len(docs)
    skipped.warn(f"corpus {options.corpus!r}, eval documents")
    return StreamedCorpus(tok, srcs, counts, range(counted), eval_docs)


def load_corpus(options: CorpusOptions, *, process_index: int = 0,
                process_count: int = 1) -> StreamedCorpus:
    """The tokenizer, sources, eval documents and baseline counts of this process's shards."""
    shards, num_shards = pipeline.corpus_lib.owned_shards(options.num_shards, process_index,
                                                          process_count)
    return _load(options, tuple(shards), num_shards)


@dataclasses.dataclass(frozen=True)
class _Family:
    """How one objective family turns documents into rows and rows into batches."""

    train_rows: Callable  # (docs, rng) -> rows
    eval_rows: Callable  # (docs, seed, shard, rows_per_batch) -> rows (a whole number of batches)
    batches: Callable  # (rows, positions, tag, seed, shard, rows_per_batch) -> iterator of batches


def _sentence_family(options, objectives, corpus: StreamedCorpus) -> _Family:
    task, keys = sentence_order.sentence_task(objectives), tuple(features.schema(objectives))
    need_sentences, need_tokens = sentence_order.document_minimum(task, options)
    word_starts = corpus.tokenizer.is_word_start() if options.whole_word_masking else None

    def usable(docs):
        return [d for d in docs if len(d) >= need_sentences
                and sum(len(s) for s in d) >= need_tokens]

    def train_rows(docs, rng):
        inst = pipeline._instances(usable(docs), options, rng, task)
        return {"token_ids": inst["token_ids"], "type_ids": inst["type_ids"],
                "labels": inst[f"{task}_labels"]}

    def eval_rows(docs, seed, shard, rows):
        docs = usable(docs)
        if not docs:
            empty = np.zeros((0, options.max_seq_length), np.int32)
            return {"token_ids": empty, "type_ids": empty, "labels": np.zeros(0, np.int32)}
        inst = pipeline._eval_instances(docs, options, seed, shard, rows, task)
        n = len(inst["token_ids"]) // rows * rows
        return {"token_ids": inst["token_ids"][:n], "type_ids": inst["type_ids"][:n],
                "labels": inst[f"{task}_labels"][:n]}

    def batches(rows, positions, tag, seed, shard, per_batch):
        base_seed = tf.random.experimental.stateless_fold_in(
            tf.constant([tag, int(seed) & _I63], tf.int64), shard)
        mask = pipeline._mask_fn(options, corpus.vocab_size, word_starts, base_seed, task, keys)
        ds = tf.data.Dataset.from_tensor_slices(
            (rows["token_ids"], rows["type_ids"], rows["labels"], positions))
        ds = ds.map(mask, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.batch(per_batch, drop_remainder=True).as_numpy_iterator()
    return _Family(train_rows, eval_rows, batches)


def _clm_family(options) -> _Family:
    length = options.max_seq_length

    def train_rows(docs, rng):
        rows = clm.pack([docs[i] for i in rng.permutation(len(docs))], length, pad_tail=False)
        order = rng.permutation(len(rows["token_ids"]))
        return {k: v[order] for k, v in rows.items()}

    def eval_rows(docs, seed, shard, rows):
        if not docs:
            empty = np.zeros((0, length), np.int32)
            return clm.row_features(empty, empty)
        return clm.eval_rows(docs, length, rows)

    def batches(rows, positions, tag, seed, shard, per_batch):
        n = len(positions)
        return ({k: rows[k][i:i + per_batch] for k in rows} for i in range(0, n, per_batch))
    return _Family(train_rows, eval_rows, batches)


def _plm_family(options, corpus: StreamedCorpus) -> _Family:
    sentence = _sentence_family(options.instances, ("nsp",), corpus)
    is_start_v = (corpus.tokenizer.is_word_start() if options.instances.whole_word_masking
                  else np.ones(corpus.vocab_size, bool))

    def batches(rows, positions, tag, seed, shard, per_batch):
        return plm.plm_batches(rows["token_ids"], rows["type_ids"], positions, options,
                               is_start_v, (tag, int(seed) & _U64, shard), per_batch)
    return _Family(sentence.train_rows, sentence.eval_rows, batches)


def _family(kind: str, options, objectives, corpus: StreamedCorpus) -> _Family:
    if kind == "sentence":
        return _sentence_family(options, objectives, corpus)
    if kind == "clm":
        return _clm_family(options)
    if kind == "plm":
        return _plm_family(options, corpus)
    raise ValueError(f"unknown input family {kind!r}; use 'sentence', 'clm' or 'plm'")


class StreamIterator:
    """Batches from a background producer; ``state()`` is the position after the last one.

    The thread holds the queue and the stop event, never the iterator: dropping the iterator
    stops the thread (at its next put)."""

    def __init__(self, produce: Callable[[Callable], None], initial_state: dict,
                 depth: int = 16):
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._state = initial_state
        self._thread = threading.Thread(target=_run, args=(produce, self._queue, self._stop),
                                        daemon=True)
        self._thread.start()

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        item = self._queue.get()
        if isinstance(item, BaseException):
            self.close()
            raise item
        batch, self._state = item
        return batch

    def state(self) -> dict:
        """``{shard: mixture state}`` after the last batch returned (JSON-able)."""
        return self._state

    def shares(self) -> dict[str, float]:
        return mixture.shares(self._state)

    def close(self) -> None:
        self._stop.set()

    def __del__(self):
        self._stop.set()


def _run(produce: Callable, out: queue.Queue, stop: threading.Event) -> None:
    """The producer thread: ``produce(put)`` until ``put`` says stop; an error is handed to the
    consumer, raised there."""
    def put(item) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False
    try:
        produce(put)
    except BaseException as e:
        put(e)


def make_dataset(kind: str, corpus_options: CorpusOptions, options, split: str, *,
                 batch_size: int, seed: int, process_index: int = 0, process_count: int = 1,
                 start_position: int = 0, stream_state: dict | None = None,
                 objectives: tuple[str, ...] = ("mlm", "nsp")) -> Iterator[dict[str, np.ndarray]]:
    """Batches of a streamed corpus for one process; ``data.pipeline.make_dataset``'s contract.

    ``start_position`` is not used to resume (a streamed position is not a row count):
    ``stream_state`` (a :meth:`StreamIterator.state` saved with a checkpoint) is; None starts
    at the beginning. Train: a :class:`StreamIterator`; eval: a list's iterator.
    """
    shards, rows = pipeline.checked_layout(corpus_options, split, batch_size, start_position,
                                           process_index, process_count)
    corpus = load_corpus(corpus_options, process_index=process_index,
                         process_count=process_count)
    family = _family(kind, options, objectives, corpus)
    num_shards = corpus_options.num_shards or process_count
    if split == "eval":
        return _eval_batches(family, corpus, shards, rows, seed)
    stream_state = {int(k): v for k, v in (stream_state or {}).items()}
    cursors = {}
    for shard in shards:
        state = stream_state.get(shard, {})
        sub = {n: streaming.ChunkCursor(
            src, family.train_rows, shard=shard, num_shards=num_shards, seed=seed,
            eval_fraction=corpus_options.eval_fraction,
            chunk_documents=corpus_options.stream_chunk_documents,
            state=state.get("sources", {}).get(n)) for n, (_, src) in corpus.sources.items()}
        cursors[shard] = mixture.MixedCursor(
            sub, {n: w for n, (w, _) in corpus.sources.items()}, seed=seed, shard=shard,
            state=state)
    per_block = max(1, _BLOCK_ROWS // rows)

    def produce(put) -> None:
        while True:
            blocks = {}
            for shard, cursor in cursors.items():
                first, parts, states = cursor.counter, [], []
                for _ in range(per_block):
                    parts.append(cursor.take(rows))
                    states.append(cursor.state())
                block = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
                positions = np.arange(first, cursor.counter, dtype=np.int64)
                blocks[shard] = zip(family.batches(block, positions, _TRAIN, seed, shard, rows),
                                    states, strict=True)
            for parts in zip(*blocks.values(), strict=True):
                batch = {k: np.concatenate([b[k] for b, _ in parts]) for k in parts[0][0]}
                state = {str(s): st for s, (_, st) in zip(blocks, parts, strict=True)}
                if not put((batch, state)):
                    return

    initial = {str(s): c.state() for s, c in cursors.items()}
    return StreamIterator(produce, initial, depth=_QUEUE_BLOCKS * per_block)


def _eval_batches(family: _Family, corpus: StreamedCorpus, shards: list[int], rows: int,
                  seed: int) -> Iterator[dict[str, np.ndarray]]:
    """Eval batches of this process's shards, cut to the count all of them give."""
    built = {s: family.eval_rows(corpus.shard_eval_docs[s], seed, s, rows) for s in shards}
    num = min(len(x["token_ids"]) for x in built.values()) // rows * rows
    streams = [list(family.batches({k: v[:num] for k, v in built[s].items()},
                                   np.arange(num, dtype=np.int64), _EVAL, seed, s, rows))
               for s in shards]
    return iter([{k: np.concatenate([b[k] for b in parts]) for k in parts[0]}
                 for parts in zip(*streams, strict=True)])
