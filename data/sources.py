"""Where pretraining text comes from: the embedded corpus, text files, or a TFDS dataset.

Every source is turned into the same thing: a list of documents, each a list of sentence strings,
the shape that BERT-style sentence-pair instances are cut from (see ``data/sentence_pairs.py``).

Corpus strings accepted by :func:`read_documents`:

* ``"embedded"``: the corpus shipped in ``data/corpora`` (no internet needed);
* a path, a glob, or a comma-separated list of them, local or remote (``gs://b/dir/*.txt.gz``,
  through ``data/paths.py``): one sentence per line, a blank line between documents, plain or
  gzipped UTF-8;
* ``"tfds:NAME[:FEATURE]"``: a prepared TFDS dataset whose text feature (default ``text``) holds one
  document per example, e.g. ``tfds:wikipedia/20230601.en:text``.

TensorFlow Datasets is imported only for ``tfds:`` corpora, so reading files stays light.

Bad input (``data/text_files.py`` reads one file): a binary, mostly non-UTF-8 or broken gzip file
is an error naming it; a line that is not UTF-8 is skipped, a line over 65536 characters split into
sentences, and a file without a sentence skipped unless no file has one. Skips are counted with
their ``path:line`` in a ``data.skipped.Skipped`` and reported once by whoever owns the read.

Data shards (:func:`read_shard_documents`): shard ``s`` of ``S`` is decided before anything is read,
so a host of a pod opens only its part of a large corpus: the files ``files[s::S]`` when there are
at least ``S`` files, the ``s``-th of ``tfds.even_splits("train", n=S)`` for TFDS, and otherwise
(a corpus of fewer files than shards, small by definition) every file is read and the documents
are dealt round-robin, ``documents[s::S]``. ``S = 1`` reads exactly what :func:`read_documents`
reads.
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Iterator

from data import paths, text_files, tfds_load
from data.skipped import Reason, Skipped
from data.text_files import Document

# Reading one file lives in data/text_files.py; these names are also this module's API.
iter_lines = text_files.iter_lines
read_text_file = text_files.read_text_file
split_sentences = text_files.split_sentences

_PACKAGE = __name__.rpartition(".")[0]
_TFDS_PREFIX = "tfds:"
_DEFAULT_TFDS_FEATURE = "text"
EMPTY_FILE = Reason("file without a sentence was skipped", "files without a sentence were skipped",
                    "remove empty files from --config.data.corpus")


def embedded_corpus_files() -> list[str]:
    """Paths of the shipped corpus files (``data/corpora/*.txt.gz``), sorted by name.

    Found through ``importlib.resources``, so they resolve from a source checkout or a plain
    (unzipped) pip install alike.
    """
    root = importlib.resources.files(_PACKAGE).joinpath("corpora")
    files = sorted(str(p) for p in root.iterdir() if p.name.endswith(".txt.gz"))
    if not files:
        raise ValueError(f"no *.txt.gz files in the embedded corpus directory {root}; "
                         "reinstall pretrax with its package data")
    return files


def expand_paths(spec: str) -> list[str]:
    """Expands a comma-separated list of paths and globs into file paths.

    Order is kept across the list; each glob's matches are sorted so runs are reproducible.

    Raises:
      ValueError: when the list is empty or a path or glob matches no file.
    """
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise ValueError(f"corpus {spec!r} names no files; pass a path, a glob, a comma-separated "
                         "list of them, 'embedded' or 'tfds:NAME[:FEATURE]'")
    files = []
    for part in parts:
        matches = paths.glob(part)
        if not matches:
            where = ("" if paths.is_remote(part) else
                     f" (relative paths are from the current directory {os.getcwd()!r})")
            raise ValueError(f"corpus path or glob {part!r} matches no file; check the "
                             f"path{where} or use 'embedded'")
        files.extend(matches)
    return files


def _no_sentences(paths: list[str], skipped: Skipped) -> str:
    shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
    why = f" ({skipped.summary()})" if skipped.count() else ""
    return (f"no sentences in {shown}{why}; a corpus file holds one sentence per line with a "
            "blank line between documents: check the files or --config.data.corpus")


def _parse_tfds(corpus: str) -> tuple[str, str]:
    """``"tfds:NAME[:FEATURE]"`` → ``(NAME, FEATURE)``."""
    name, _, feature = corpus[len(_TFDS_PREFIX):].partition(":")
    if not name:
        raise ValueError(f"corpus {corpus!r} lacks a dataset name; use 'tfds:NAME[:FEATURE]', "
                         "e.g. 'tfds:wikipedia/20230601.en:text'")
    return name, feature or _DEFAULT_TFDS_FEATURE


def tfds_texts(corpus: str, tfds_data_dir: str | None, *, split: str = "train",
               flag: str = "--config.data.tfds_data_dir") -> Iterator[tuple[int, list[str]]]:
    """``(example index, sentences)`` of each example of a ``tfds:NAME:FEATURE`` corpus with
    text, one at a time (``tfds_load.load_tfds``'s errors; ``flag`` names the data_dir flag)."""
    name, feature = _parse_tfds(corpus)
    texts, _ = tfds_load.load_tfds(name, split, tfds_data_dir, flag=flag, feature=feature)
    for i, text in enumerate(texts):
        sentences = text_files.split_long_line(text.decode("utf-8"))
        if sentences:
            yield i, sentences


def read_tfds_documents(corpus: str, *, tfds_data_dir: str | None = None,
                        split: str = "train") -> list[list[str]]:
    """Reads a prepared TFDS dataset: each example's text feature is one document.

    A dataset already prepared under ``tfds_data_dir`` (or TFDS's default directory) is read as
    is; otherwise TFDS tries to download and prepare it, which needs the internet.

    Raises:
      ValueError: for a malformed corpus string, an unknown feature, or no documents.
      RuntimeError: wrapping TFDS's own error when the dataset cannot be loaded or prepared.
    """
    name, feature = _parse_tfds(corpus)
    documents = [Document(sentences, origin=f"tfds:{name}[{split}]#{i}")
                 for i, sentences in tfds_texts(corpus, tfds_data_dir, split=split)]
    if not documents:
        raise ValueError(f"TFDS dataset {name!r} split {split!r} holds no text in {feature!r}")
    return documents


def read_documents(corpus: str, *, tfds_data_dir: str | None = None,
                   split: str = "train", skipped: Skipped | None = None) -> list[Document]:
    """Reads a corpus into documents of sentences.

    Args:
      corpus: ``"embedded"``, a path/glob/comma-separated list of them, or
        ``"tfds:NAME[:FEATURE]"`` (see the module docstring).
      tfds_data_dir: where prepared TFDS datasets live; None or "" for TFDS's default.
      split: the TFDS split to read; ignored for files.
      skipped: counts what was skipped (lines not UTF-8, files without a sentence) or split
        (over-long lines); None reports them here, once.

    Returns:
      Documents, each a non-empty :class:`Document` of stripped sentence strings, in corpus order
      (files in the given order, each glob's matches sorted).

    Raises:
      ValueError: for a glob matching nothing, a binary or mostly non-UTF-8 file, or a corpus
        without a sentence.
      RuntimeError: when a TFDS dataset is not available offline.
    """
    if corpus.startswith(_TFDS_PREFIX):
        return read_tfds_documents(corpus, tfds_data_dir=tfds_data_dir, split=split)
    return _read_files(corpus_files(corpus), skipped)


def _read_files(paths: list[str], skipped: Skipped | None = None) -> list[Document]:
    """The documents of ``paths``; a file without a sentence is skipped (and counted) unless no
    file has one, which is an error naming the files."""
    own = skipped is None
    skipped = Skipped() if own else skipped
    documents, empty = [], []
    for path in paths:
        found = read_text_file(path, skipped)
        if not found:
            empty.append(path)
        documents.extend(found)
    if not documents:
        raise ValueError(_no_sentences(paths, skipped))
    for path in empty:
        skipped.add(EMPTY_FILE, path)
    if own:
        skipped.warn(f"corpus {', '.join(paths[:3])}{' …' if len(paths) > 3 else ''}")
    return documents


def shards_share_files(corpus: str, num_shards: int) -> bool:
    """Whether data shards must read every file (fewer files than shards) to deal documents.

    False for ``tfds:`` corpora, whose shards are TFDS splits, and for ``num_shards == 1``.
    """
    if corpus.startswith(_TFDS_PREFIX):
        return False
    return len(corpus_files(corpus)) < num_shards


def read_shard_documents(corpus: str, shard: int, num_shards: int, *,
                         tfds_data_dir: str | None = None,
                         skipped: Skipped | None = None) -> list[Document]:
    """Reads the documents of data shard ``shard`` of ``num_shards``, and as little else as it can.

    Membership depends only on the corpus, ``shard`` and ``num_shards`` (never on how many
    processes read), so a shard holds the same documents on 1 host or many. See the module
    docstring for the three cases.

    Args:
      corpus: as for :func:`read_documents`.
      shard: which shard, ``0 <= shard < num_shards``.
      num_shards: ``S``, how many shards the corpus is cut into.
      tfds_data_dir, skipped: as for :func:`read_documents`.

    Returns:
      The shard's documents in corpus order; for ``num_shards == 1`` exactly
      ``read_documents(corpus)``.

    Raises:
      ValueError: for a shard outside ``[0, num_shards)``, and as :func:`read_documents`.
      RuntimeError: as :func:`read_documents`.
    """
    if not 0 <= shard < num_shards:
        raise ValueError(f"data shard {shard} is not in [0, {num_shards})")
    if corpus.startswith(_TFDS_PREFIX):
        if num_shards == 1:
            return read_tfds_documents(corpus, tfds_data_dir=tfds_data_dir)
        import tensorflow_datasets as tfds  # Heavy; only tfds: corpora pay for it.
        split = tfds.even_splits("train", n=num_shards)[shard]
        try:
            return read_tfds_documents(corpus, tfds_data_dir=tfds_data_dir, split=split)
        except RuntimeError as err:  # An empty sub-split fails to load, like a missing dataset.
            raise RuntimeError(f"data shard {shard} of {num_shards}: if the dataset has fewer than "
                               f"{num_shards} train examples, use fewer data.num_shards. {err}"
                               ) from err
    files = corpus_files(corpus)
    if len(files) >= num_shards:
        return _read_files(files[shard::num_shards], skipped)
    return _read_files(files, skipped)[shard::num_shards]


def corpus_files(corpus: str) -> list[str]:
    """File paths of a file-based corpus string (``"embedded"`` or paths/globs).

    Raises:
      ValueError: for a ``tfds:`` corpus, which has no files to hand to a tokenizer trainer.
    """
    if corpus.startswith(_TFDS_PREFIX):
        raise ValueError("a tfds: corpus has no files; export its text to files first")
    return embedded_corpus_files() if corpus == "embedded" else expand_paths(corpus)
