"""Streamed corpora: a data shard's documents read lazily, a chunk at a time, resumable.

A source is ``stream:GLOB[,GLOB…]`` (text files as for the in-memory path: one sentence per line,
a blank line between documents, plain or gzipped) or ``prepared:DIR`` (``data.prepared``:
TFRecords of token ids). Memory is bounded by the chunk size, not the corpus:

* data shard ``s`` of ``S`` reads the files ``files[s::S]`` (an error when there are fewer files
  than shards); each epoch visits them in an order permuted by ``rng(seed, epoch, shard)``;
* documents are read one at a time and grouped into *chunks* of ``stream_chunk_documents``
  documents (a chunk may span files; the last one of an epoch may be short);
* a document is held out for evaluation when a hash of (file name, its index in the file) falls
  below ``eval_fraction``: the same documents every epoch, never trained on;
* a chunk's train documents are tokenised (``stream:``) or taken as they are (``prepared:``) and
  turned into rows by the objective's builder (``data.stream_pipeline``) with an rng seeded by
  ``(seed, epoch, chunk index, shard)``, which also shuffles the rows within the chunk: the
  shuffle buffer is one chunk (documents from different chunks never share an epoch's shuffle).

:class:`ChunkCursor` hands rows out in any amounts and reports its state at any row: ``(epoch,
file, doc, chunk, offset)`` = the chunk being read starts at document ``doc`` of the ``file``-th
file of that epoch's order, and ``offset`` of its rows were consumed. Restoring from a state
re-reads that file from its start and skips ``doc`` documents without tokenising them, then
rebuilds the chunk (the same rows, the same order) and skips ``offset`` rows: exact resumption.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Callable, Iterator

import numpy as np

from data import corpus as corpus_lib
from data import prepared, sources, text_files
from data.skipped import Skipped
from data.tokenizer import Tokenizer

STREAM, PREPARED = "stream:", "prepared:"
_U64 = (1 << 64) - 1
_CHUNK_TAG = 2  # apart from data.pipeline's train (0) and eval (1) streams
# Eval reads at most this many chunks' worth of documents to find its held-out ones.
EVAL_SCAN = 8


def is_streamed_source(spec: str) -> bool:
    return spec.startswith((STREAM, PREPARED))


@dataclasses.dataclass(frozen=True)
class Source:
    """One streamed source: its kind (``stream:``/``prepared:``), files and tokenizer."""

    spec: str
    files: tuple[str, ...]
    tokenizer: Tokenizer
    directory: str = ""  # prepared: only
    file_documents: tuple[int, ...] = ()  # prepared: each file's document count

    @property
    def is_prepared(self) -> bool:
        return bool(self.directory)

    def shard_files(self, shard: int, num_shards: int) -> list[str]:
        """``files[shard::num_shards]``; a one-line error when there are fewer files than shards."""
        if len(self.files) < num_shards:
            fix = ("re-run launch.prepare_data with --num_shards of at least that many"
                   if self.is_prepared else "split the corpus into more files")
            raise ValueError(f"corpus {self.spec!r} has {len(self.files)} files, fewer than "
                             f"data.num_shards={num_shards}: a streamed shard reads whole files; "
                             f"{fix}, or use fewer data.num_shards")
        return list(self.files[shard::num_shards])

    def documents(self, path: str, skip: int, skipped: Skipped,
                  keep: Callable[[int], bool] | None = None) -> Iterator:
        """The raw documents of one file from index ``skip`` on (text: sentence strings, not
        tokenised; prepared: int32 sentence arrays, and None for an index ``keep`` refuses,
        left unparsed; text files are read whole either way)."""
        if self.is_prepared:
            yield from prepared.iter_documents(path, skip, keep)
            return
        lines = ((f"{path}:{n}", t) for n, t in text_files.iter_lines(path, skipped))
        for i, doc in enumerate(text_files.iter_documents(lines, skipped)):
            if i >= skip:
                yield doc

    def tokenize(self, docs: list, skipped: Skipped) -> list[list[np.ndarray]]:
        if self.is_prepared:
            return docs
        return corpus_lib.tokenize_documents(self.tokenizer, docs, skipped)

    def _file_indices(self, shards: list[int], num_shards: int) -> list[int]:
        self.shard_files(shards[0], num_shards)  # checks there are enough files
        return [i for s in shards for i in range(s, len(self.files), num_shards)]

    def unigram_counts(self, shards: list[int], num_shards: int) -> np.ndarray | None:
        """prepared: the manifest's counts of these shards' files; stream: None."""
        if not self.is_prepared:
            return None
        return prepared.unigram_counts(self.directory, self._file_indices(shards, num_shards))

    def document_count(self, shards: list[int], num_shards: int) -> int:
        """prepared: the documents of these shards' files (the manifest's counts)."""
        return sum(self.file_documents[i] for i in self._file_indices(shards, num_shards))


def open_source(spec: str, tokenizer: Tokenizer) -> Source:
    """A :class:`Source` of ``stream:GLOBS`` or ``prepared:DIR``, its tokenizer checked."""
    if spec.startswith(PREPARED):
        directory = spec[len(PREPARED):].rstrip("/")
        manifest = prepared.read_manifest(directory)
        prepared.check_tokenizer(directory, manifest, tokenizer)
        return Source(spec, tuple(prepared.shard_files(directory, manifest)), tokenizer,
                      directory, tuple(s["documents"] for s in manifest["shards"]))
    if not spec.startswith(STREAM) or not spec[len(STREAM):].strip(", "):
        raise ValueError(f"corpus {spec!r}: use 'stream:GLOB[,GLOB…]' or 'prepared:DIR'")
    return Source(spec, tuple(sources.expand_paths(spec[len(STREAM):])), tokenizer)


def held_out(path: str, index: int, eval_fraction: float) -> bool:
    """Whether document ``index`` of file ``path`` is an eval document (a hash of the file's
    name and the index below ``eval_fraction``: stable across epochs, hosts and moves)."""
    if eval_fraction <= 0:
        return False
    digest = hashlib.blake2b(f"{os.path.basename(path)}\0{index}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "little") / 2.0**64 < eval_fraction


def eval_documents(source: Source, shard: int, num_shards: int, eval_fraction: float,
                   limit: int, skipped: Skipped) -> list[list[np.ndarray]]:
    """The shard's held-out documents, tokenised, read from the start of its files (in file
    order) until ``limit`` are found or ``EVAL_SCAN × limit`` documents were read: a bounded
    read, whatever the corpus size."""
    found, read = [], 0
    for path in source.shard_files(shard, num_shards):
        def keep(i, path=path):
            return held_out(path, i, eval_fraction)
        for i, doc in enumerate(source.documents(path, 0, Skipped(), keep)):
            read += 1
            if keep(i):
                found.append(doc)
            if len(found) >= limit or read >= EVAL_SCAN * limit:
                return source.tokenize(found, skipped)
    return source.tokenize(found, skipped)


@dataclasses.dataclass(frozen=True)
class ChunkStart:
    """Where a chunk starts: ``epoch``, the ``file``-th file of its order, document ``doc`` of
    that file, and the chunk's index ``chunk`` within the epoch."""

    epoch: int = 0
    file: int = 0
    doc: int = 0
    chunk: int = 0


def _epoch_order(seed: int, epoch: int, shard: int, n: int) -> np.ndarray:
    return np.random.default_rng([_CHUNK_TAG, int(seed) & _U64, epoch, shard]).permutation(n)


def chunk_rng(seed: int, start: ChunkStart, shard: int) -> np.random.Generator:
    """The rng of one chunk's instances and their shuffle: ``(seed, epoch, chunk, shard)``."""
    return np.random.default_rng([_CHUNK_TAG, int(seed) & _U64, start.epoch, start.chunk, shard])


def iter_chunks(source: Source, shard: int, num_shards: int, seed: int, eval_fraction: float,
                chunk_documents: int, start: ChunkStart, skipped: Skipped
                ) -> Iterator[tuple[ChunkStart, list]]:
    """``(its start, its raw train documents)`` for each chunk from ``start`` on, forever."""
    files = source.shard_files(shard, num_shards)
    epoch, first = start.epoch, start
    while True:
        order = _epoch_order(seed, epoch, shard, len(files))
        chunk, docs, begun = first.chunk, [], None
        for f in range(first.file, len(files)):
            path, skip = files[order[f]], first.doc if f == first.file else 0
            for i, doc in enumerate(source.documents(path, skip, skipped), start=skip):
                if begun is None:
                    begun, docs, count = ChunkStart(epoch, f, i, chunk), [], 0
                count += 1
                if not held_out(path, i, eval_fraction):
                    docs.append(doc)
                if count == chunk_documents:
                    yield begun, docs
                    begun, chunk = None, chunk + 1
        if begun is not None:
            yield begun, docs
        epoch, first = epoch + 1, ChunkStart(epoch + 1)


class ChunkCursor:
    """One source's rows for one data shard, handed out in any amounts, with a resumable state.

    ``build(train documents (tokenised), rng)`` turns a chunk into rows: a dict of equally long
    arrays (the objective's unmasked instances, already shuffled).
    """

    def __init__(self, source: Source, build: Callable, *, shard: int, num_shards: int,
                 seed: int, eval_fraction: float, chunk_documents: int,
                 state: dict | None = None):
        state = dict(state or {})
        self._offset = int(state.pop("offset", 0))
        self._source, self._build, self._shard, self._seed = source, build, shard, seed
        self.skipped = Skipped()
        self._chunks = iter_chunks(source, shard, num_shards, seed, eval_fraction,
                                   chunk_documents, ChunkStart(**state), self.skipped)
        self._rows, self._start, self._empty = None, None, 0
        self._next_chunk(skip=self._offset)

    def _next_chunk(self, skip: int = 0) -> None:
        while True:
            start, raw = next(self._chunks)
            if self._start is not None and start.epoch != self._start.epoch:
                self._empty = self._empty + 1 if self._epoch_rows == 0 else 0
                if self._empty >= 3:
                    raise ValueError(f"corpus {self._source.spec!r}, data shard {self._shard}: "
                                     "its documents give no instance; they are too short for "
                                     "the objective: use longer documents")
            if self._start is None or start.epoch != self._start.epoch:
                self._epoch_rows = 0
            docs = self._source.tokenize(raw, self.skipped)
            rows = self._build(docs, chunk_rng(self._seed, start, self._shard))
            self._start, self._rows, self._offset = start, rows, skip
            n = len(next(iter(rows.values())))
            self._epoch_rows += n
            if skip < n or (skip == n and n):
                return
            skip = 0

    def take(self, n: int) -> dict[str, np.ndarray]:
        """The next ``n`` rows (from as many chunks as it takes)."""
        parts = []
        while n:
            size = len(next(iter(self._rows.values())))
            if self._offset >= size:
                self._next_chunk()
                continue
            k = min(n, size - self._offset)
            parts.append({k_: v[self._offset:self._offset + k] for k_, v in self._rows.items()})
            self._offset += k
            n -= k
        if len(parts) == 1:
            return parts[0]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def state(self) -> dict:
        """``{epoch, file, doc, chunk, offset}``: where the next row comes from (module
        docstring)."""
        return {**dataclasses.asdict(self._start), "offset": self._offset}
