"""The pretraining corpus: read, tokenised, split into train/eval, one data shard at a time.

``load_corpus(options, process_index=i, process_count=n)`` reads only this process's data shards
of ``options.corpus`` (``sources.read_shard_documents``), tokenises them and keeps a held-out
eval part; the result is cached and shared by every pretraining pipeline (``data/pipeline.py``,
``clm.py``, ``plm.py``).

Bad input is skipped and counted where skipping is right (``data.skipped``), and reported once per
load: lines that are not UTF-8, over-long lines (split), sentences that tokenise to nothing and
empty files; per sentence task, :func:`task_documents` skips documents too short for it. When too
little is left, the error names the corpus, what was skipped and what to do.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from absl import logging

from data import features, sentence_order, sources
from data.options import CorpusOptions, InstanceOptions
from data.skipped import Reason, Skipped
from data.text_files import Document, origin
from data.tokenizer import Tokenizer

_SPECIAL_PSEUDO_COUNT = 1e-6
_TASK_NAMES = {"nsp": "NSP", "sop": "SOP", "order": "order"}
EMPTY_SENTENCE = Reason(
    "sentence that tokenises to nothing was dropped",
    "sentences that tokenise to nothing were dropped",
    "they hold only characters the tokenizer removes (control characters, odd whitespace)")


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
      source: the corpus string it was read from (for messages).
    """

    tokenizer: Tokenizer
    shards: dict[int, CorpusShard]
    unigram_counts: np.ndarray
    source: str = ""

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


def tokenize_documents(tokenizer: Tokenizer, documents: list[list[str]],
                       skipped: Skipped | None = None) -> list[Document]:
    """Encodes all sentences in one batched call; drops sentences and documents left empty.

    Args:
      tokenizer: the tokenizer.
      documents: lists of sentence strings (a ``text_files.Document`` keeps its ``origin``).
      skipped: counts the sentences dropped because they tokenise to nothing.

    Returns:
      Documents of int32 [len] arrays, every array non-empty, every document non-empty, each a
      ``text_files.Document`` with the origin of the document it came from.
    """
    ids = tokenizer.encode([s for doc in documents for s in doc])
    out, start = [], 0
    for doc in documents:
        sentences = []
        for i, x in enumerate(ids[start:start + len(doc)]):
            if x:
                sentences.append(np.asarray(x, np.int32))
            elif skipped is not None:
                skipped.add(EMPTY_SENTENCE, f"{origin(doc)} sentence {i + 1}")
        start += len(doc)
        if sentences:
            out.append(Document(sentences, origin=origin(doc)))
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
                shard: int, num_shards: int, skipped: Skipped) -> CorpusShard:
    """Reads and tokenises one shard's documents only, and splits them into train and eval."""
    mine = Skipped()
    docs = tokenize_documents(tok, sources.read_shard_documents(
        corpus, shard, num_shards, tfds_data_dir=tfds_data_dir, skipped=mine), mine)
    skipped.merge(mine)
    if len(docs) - max(1, round(len(docs) * eval_fraction)) < 2:
        after = f" after what was skipped ({mine.summary()})" if mine.count() else ""
        if num_shards > 1:
            raise ValueError(
                f"data shard {shard} of {num_shards} has {len(docs)} documents{after}; with "
                f"eval_fraction={eval_fraction} that leaves fewer than 2 for training and 1 for "
                "eval. Use fewer data.num_shards, more corpus files (a shard is "
                "files[shard::num_shards] when there are at least num_shards files), more "
                "documents, or a smaller eval_fraction")
        raise ValueError(
            f"corpus {corpus!r} has {len(docs)} documents{after}; with eval_fraction="
            f"{eval_fraction} that leaves fewer than 2 for training and 1 for eval. Use a larger "
            "corpus (a blank line separates documents) or a smaller --config.data.eval_fraction")
    train_idx, eval_idx = split_documents(len(docs), eval_fraction)
    return CorpusShard(train_docs=[docs[i] for i in train_idx],
                       eval_docs=[docs[i] for i in eval_idx])


@functools.lru_cache(maxsize=4)
def _load_corpus(corpus: str, tokenizer: str, tfds_data_dir: str, eval_fraction: float,
                 shards: tuple[int, ...], num_shards: int) -> PretrainingCorpus:
    if sources.shards_share_files(corpus, num_shards):
        logging.info("corpus %r has fewer files than data.num_shards=%d: every process reads all "
                     "of them but tokenises only its shards' documents (dealt round-robin)",
                     corpus, num_shards)
    tok = Tokenizer.load(tokenizer)
    skipped = Skipped()
    loaded = {s: _load_shard(tok, corpus, tfds_data_dir, eval_fraction, s, num_shards, skipped)
              for s in shards}
    skipped.warn(f"corpus {corpus!r}")
    counts = sum(unigram_counts(x.train_docs, tok.vocab_size) for x in loaded.values())
    return PretrainingCorpus(tokenizer=tok, shards=loaded, unigram_counts=counts, source=corpus)


def load_corpus(options: CorpusOptions, *, process_index: int = 0,
                process_count: int = 1) -> PretrainingCorpus:
    """Reads, tokenises and splits this process's data shards of ``options.corpus`` (cached).

    Args:
      options: which corpus and tokenizer, the held-out fraction and the number of shards.
      process_index, process_count: this process and how many there are; they pick the shards
        (``shard_layout``), whose content does not depend on them.

    Returns:
      The cached :class:`PretrainingCorpus`; treat it as read-only.
    """
    shards, num_shards = owned_shards(options.num_shards, process_index, process_count)
    return _load_corpus(options.corpus, options.tokenizer, options.tfds_data_dir or "",
                        float(options.eval_fraction), tuple(shards), num_shards)


def owned_shards(num_shards: int, process_index: int,
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


def _too_short(task: str, options: InstanceOptions) -> tuple[int, int, Reason]:
    """``(sentences, tokens, reason)``: what a document needs for ``task``, and why."""
    sentences, tokens = sentence_order.document_minimum(task, options)
    if sentences > 1:
        need = f"fewer than {sentences} sentences"
        why = f"{_TASK_NAMES[task]} needs a sentence that follows another"
        fix = ("give every document at least 2 sentences, one per line, with blank lines only "
               "between documents")
    else:
        need = f"fewer than {tokens} tokens"
        why = f"{_TASK_NAMES[task]} needs {tokens} segments"
        fix = "such documents hold almost no text; join them to their neighbours to keep it"
    return sentences, tokens, Reason(f"document with {need} was skipped ({why})",
                                     f"documents with {need} were skipped ({why})", fix)


@functools.lru_cache(maxsize=32)
def _task_documents(corpus: PretrainingCorpus, shard: int, split: str, task: str,
                    sentences: int, tokens: int, reason: Reason) -> list:
    docs = getattr(corpus.shards[shard], f"{split}_docs")
    kept, skipped = [], Skipped()
    for doc in docs:
        if len(doc) >= sentences and sum(len(s) for s in doc) >= tokens:
            kept.append(doc)
        else:
            skipped.add(reason, origin(doc))
    where = f"corpus {corpus.source!r}"
    if list(corpus.shards) != [0]:
        where += f", data shard {shard}"
    if not kept:
        raise ValueError(
            f"{where}: none of its {len(docs)} {split} documents is long enough for "
            f"{_TASK_NAMES[task]}: {skipped.summary()}. Fix: {reason.fix}"
            + ("; or raise --config.data.eval_fraction" if split == "eval" else "")
            + f", or pretrain without {task}")
    skipped.warn(f"{where}, {split} split")
    return kept


def task_documents(corpus: PretrainingCorpus, shard: int, split: str, task: str,
                   options: InstanceOptions) -> list:
    """The ``split`` (``"train"``/``"eval"``) documents of ``shard`` long enough for ``task``
    (built with ``options``).

    The others are skipped, counted and reported once (per corpus, shard, split and task).

    Raises:
      ValueError: when none is left, naming the corpus, the rule and the fix.
    """
    sentences, tokens, reason = _too_short(task, options)
    return _task_documents(corpus, shard, split, task, sentences, tokens, reason)
