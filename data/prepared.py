"""Pre-tokenised corpus shards: TFRecord files of token ids, a manifest and unigram counts.

``launch.prepare_data`` tokenises a corpus once (:func:`prepare`) into ``DIR``:

* ``shard-00000-of-00008.tfrecord`` …: one ``tf.train.Example`` per document, int64 ``tokens``
  (its sentences back to back) and int64 ``sentence_lengths``; document ``i`` of the corpus goes
  to file ``i % N``, so files are balanced whatever the source's layout;
* ``unigram_counts.npy``: int64 [N, V], row ``i`` the token counts of file ``i`` (a data shard
  of a run sums the rows of the files it reads; the corpus total is the sum of all rows);
* ``manifest.json``: format version, the tokenizer (path, sha256 of its model, vocabulary size),
  per file its document, sentence and token counts, the source files and the command's arguments.

Pretraining reads it as ``--config.data.corpus=prepared:DIR`` (``data.streaming``): documents
come from the TFRecords through ``tf.data`` (so ``gs://`` works as for any TFRecord) instead of
being tokenised, and the run's tokenizer must be the one the manifest names (its hash checked).
Writing streams: a batch of documents at a time, whatever the corpus size.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow as tf

from data import corpus as corpus_lib
from data import paths, sources, text_files
from data.skipped import Skipped
from data.tokenizer import Tokenizer

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
COUNTS = "unigram_counts.npy"
_BATCH_DOCUMENTS = 1024
_READ_BATCH = 256  # records read and parsed at once (iter_documents)


def tokenizer_sha256(tok: Tokenizer) -> str:
    """sha256 of the tokenizer's serialised model: what a prepared corpus was tokenised with."""
    return hashlib.sha256(tok.sp.serialized_model_proto()).hexdigest()


def shard_name(index: int, count: int) -> str:
    return f"shard-{index:05d}-of-{count:05d}.tfrecord"


def read_manifest(directory: str) -> dict:
    """The manifest of a prepared corpus; a one-line ValueError when there is none."""
    path = os.path.join(directory, MANIFEST)
    if not tf.io.gfile.exists(path):
        raise ValueError(f"prepared:{directory} has no {MANIFEST}; write the directory with "
                         "`python -m launch.prepare_data --corpus=… --output=DIR` first")
    with tf.io.gfile.GFile(path) as f:
        manifest = json.load(f)
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"prepared:{directory} has format version "
                         f"{manifest.get('format_version')}, this pretrax reads "
                         f"{FORMAT_VERSION}; re-run launch.prepare_data")
    return manifest


def shard_files(directory: str, manifest: dict) -> list[str]:
    """The TFRecord files of a prepared corpus, in manifest order."""
    return [os.path.join(directory, s["file"]) for s in manifest["shards"]]


def check_tokenizer(directory: str, manifest: dict, tok: Tokenizer) -> None:
    """Raises a one-line ValueError when ``tok`` is not the tokenizer the shards were made with."""
    want = manifest["tokenizer"]
    if tokenizer_sha256(tok) != want["sha256"]:
        raise ValueError(f"prepared:{directory} was tokenised with {want['path']!r} (sha256 "
                         f"{want['sha256'][:12]}…), not with this run's tokenizer {tok.name!r}; "
                         f"pass --config.data.tokenizer={want['path']} or re-run "
                         "launch.prepare_data with this tokenizer")


def unigram_counts(directory: str, files: list[int]) -> np.ndarray:
    """int64 [V]: the summed token counts of the files with these indices."""
    with tf.io.gfile.GFile(os.path.join(directory, COUNTS), "rb") as f:
        counts = np.load(f, allow_pickle=False)
    return counts[files].sum(axis=0).astype(np.int64)


def iter_documents(path: str, skip: int = 0, keep: Callable[[int], bool] | None = None
                   ) -> Iterator[list[np.ndarray] | None]:
    """The documents of one TFRecord file from document ``skip`` on (skipped records are read,
    not parsed), each a list of int32 sentence arrays; with ``keep``, a document whose index
    ``keep`` refuses is yielded as None, unparsed (the eval scan parses only held-out ones).

    Records are read and parsed ``_READ_BATCH`` at a time: per-record tf.data iteration costs
    about a millisecond of Python, which dominated a streamed run's start-up."""
    spec = {"tokens": tf.io.RaggedFeature(tf.int64),
            "sentence_lengths": tf.io.RaggedFeature(tf.int64)}
    index = skip
    records_ds = tf.data.TFRecordDataset(path).skip(skip).batch(_READ_BATCH)
    for records in records_ds.as_numpy_iterator():
        wanted = [j for j in range(len(records)) if keep is None or keep(index + j)]
        docs: list = [None] * len(records)
        if wanted:
            parsed = tf.io.parse_example([records[j] for j in wanted], spec)
            tokens, lengths = parsed["tokens"], parsed["sentence_lengths"]
            values, rows = tokens.flat_values.numpy().astype(np.int32), tokens.row_splits.numpy()
            sizes, size_rows = lengths.flat_values.numpy(), lengths.row_splits.numpy()
            for k, j in enumerate(wanted):
                doc_tokens = values[rows[k]:rows[k + 1]]
                ends = np.cumsum(sizes[size_rows[k]:size_rows[k + 1]]).tolist()
                docs[j] = [doc_tokens[a:b] for a, b in zip([0] + ends[:-1], ends, strict=True)]
        yield from docs
        index += len(records)


def _example(doc: list[np.ndarray]) -> bytes:
    feature = {"tokens": tf.train.Feature(int64_list=tf.train.Int64List(
                   value=np.concatenate(doc).tolist())),
               "sentence_lengths": tf.train.Feature(int64_list=tf.train.Int64List(
                   value=[len(s) for s in doc]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _tfds_documents(corpus: str, tfds_data_dir: str) -> Iterator[list[str]]:
    """A TFDS corpus one document at a time (``sources.read_tfds_documents`` holds them all)."""
    return (sentences for _, sentences in
            sources.tfds_texts(corpus, tfds_data_dir, flag="--tfds_data_dir"))


def source_documents(corpus: str, tfds_data_dir: str, skipped: Skipped
                     ) -> tuple[list[str], Iterator[tuple[list[str], int]]]:
    """``(source files, iterator of (document, bytes read so far))`` of a corpus string, lazily."""
    if corpus.startswith("tfds:"):
        return [corpus], ((d, 0) for d in _tfds_documents(corpus, tfds_data_dir))
    files = sources.corpus_files(corpus)

    def docs():
        done = 0
        for path in files:
            lines = ((f"{path}:{n}", t) for n, t in text_files.iter_lines(path, skipped))
            for doc in text_files.iter_documents(lines, skipped):
                yield doc, done
            done += paths.stat(path)[1]
    return files, docs()


def _batches(items: Iterator, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _progress_line(documents: int, tokens: int, text_bytes: int, files_bytes: int,
                   total_bytes: int, seconds: float) -> str:
    """``… documents, … M tokens, … MB of text (… MB/s)``, and once a whole file is done, the
    time left estimated from the (compressed) bytes of the files finished so far."""
    line = (f"{documents} documents, {tokens / 1e6:.1f} M tokens, {text_bytes / 1e6:.0f} MB of "
            f"text ({text_bytes / 1e6 / max(seconds, 1e-9):.1f} MB/s)")
    if files_bytes and total_bytes:
        line += f", ~{(total_bytes - files_bytes) / files_bytes * seconds / 60:.1f} min left"
    return line


def prepare(corpus: str, tokenizer: str, output: str, num_shards: int, *,
            tfds_data_dir: str = "", arguments: dict | None = None,
            progress: Callable[[str], None] = print) -> dict:
    """Tokenises ``corpus`` into ``num_shards`` TFRecord files under ``output`` (module
    docstring); returns the manifest. Memory holds one batch of documents and the counts."""
    if num_shards < 1:
        raise ValueError(f"--num_shards={num_shards}: use at least 1 (at least as many as the "
                         "data shards of the runs that will read it)")
    tok = Tokenizer.load(tokenizer)
    tf.io.gfile.makedirs(output)
    skipped = Skipped()
    files, docs = source_documents(corpus, tfds_data_dir, skipped)
    total_bytes = sum(paths.stat(p)[1] for p in files) if files != [corpus] else 0
    writers = [tf.io.TFRecordWriter(os.path.join(output, shard_name(i, num_shards)))
               for i in range(num_shards)]
    counts = np.zeros((num_shards, tok.vocab_size), np.int64)
    stats = np.zeros((num_shards, 3), np.int64)  # documents, sentences, tokens
    start, index, last, text_bytes = time.perf_counter(), 0, 0.0, 0
    try:
        for batch in _batches(docs, _BATCH_DOCUMENTS):
            done = batch[-1][1]
            text_bytes += sum(len(s) for d, _ in batch for s in d)
            for doc in corpus_lib.tokenize_documents(tok, [d for d, _ in batch], skipped):
                shard = index % num_shards
                writers[shard].write(_example(doc))
                tokens = np.concatenate(doc)
                counts[shard] += np.bincount(tokens, minlength=tok.vocab_size)[:tok.vocab_size]
                stats[shard] += (1, len(doc), len(tokens))
                index += 1
            now = time.perf_counter()
            if now - last > 5:
                last = now
                progress(_progress_line(index, int(stats[:, 2].sum()), text_bytes, done,
                                        total_bytes, now - start))
    finally:
        for w in writers:
            w.close()
    skipped.warn(f"corpus {corpus!r}")
    if not index:
        raise ValueError(f"corpus {corpus!r} holds no document; check --corpus")
    with tf.io.gfile.GFile(os.path.join(output, COUNTS), "wb") as f:
        np.save(f, counts)
    manifest = {
        "format_version": FORMAT_VERSION,
        "tokenizer": {"path": tokenizer, "sha256": tokenizer_sha256(tok),
                      "vocab_size": tok.vocab_size},
        "shards": [{"file": shard_name(i, num_shards), "documents": int(s[0]),
                    "sentences": int(s[1]), "tokens": int(s[2])} for i, s in enumerate(stats)],
        "source_files": files, "unigram_counts": COUNTS, "arguments": arguments or {}}
    with tf.io.gfile.GFile(os.path.join(output, MANIFEST), "w") as f:
        json.dump(manifest, f, indent=1)
    progress(f"wrote {index} documents, {int(stats[:, 2].sum())} tokens into {num_shards} "
             f"files in {output} ({(time.perf_counter() - start) / 60:.1f} min)")
    return manifest
