"""Encoder–decoder pretraining input: a corpus's documents → denoising batches (T5 span
corruption or BART sentence permutation, ``data/denoising.py``) for ``launch.pretrain``.

The same contract as the other in-memory pipelines (``data.clm.make_dataset``): each data shard
is its own stream, a pure function of (seed, shard, batch index), and a process's batch is the
concatenation of equal slices of its shards' streams (``pipeline.shard_layout``). Resuming at
``start_position`` replays the stream's chunking without the model: the next batch is exactly
the one an uninterrupted run would have drawn.

The unigram baseline scores the decoder's targets, sentinels and EOS included, under the target
distribution of the first :data:`BASELINE_BATCHES` training batches (``unigram_counts``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np

from data import denoising, pipeline
from data.options import CorpusOptions, DenoisingOptions

BASELINE_BATCHES = 50  # training batches whose targets give the unigram baseline's counts
_SHARD_STRIDE = 1 << 16  # a shard's stream seed: seed · stride + shard


def target_length(options: DenoisingOptions) -> int:
    """``Lt``: ``max_target_length``, or for 0 the objective's own (span corruption: T5's
    ``random_spans_helper`` for ``Ls``; sentence permutation: ``Ls``).

    Raises:
      ValueError: when span corruption's targets do not fit the given ``Lt``.
    """
    if options.denoising == "sentence_permutation":
        return options.max_target_length or options.max_seq_length
    _, needed = denoising.random_spans_helper(options.max_seq_length, options.noise_density,
                                              options.mean_noise_span_length)
    if options.max_target_length and options.max_target_length < needed:
        raise ValueError(f"data.max_target_length={options.max_target_length}: span corruption "
                         f"of {options.max_seq_length} source tokens makes {needed} target "
                         f"tokens; use {needed} (or 0 = the objective's own)")
    return options.max_target_length or needed


def _stream(docs, options: DenoisingOptions, tok, rows: int, seed: int, endless: bool):
    length = target_length(options)
    if options.denoising == "span_corruption":
        return denoising.span_corruption_batches(
            docs, batch_size=rows, inputs_length=options.max_seq_length,
            sentinels=denoising.sentinel_ids(tok), eos_id=tok.special_ids.eos, seed=seed,
            noise_density=options.noise_density,
            mean_noise_span_length=options.mean_noise_span_length, endless=endless)
    return denoising.sentence_permutation_batches(
        docs, batch_size=rows, source_length=options.max_seq_length, target_length=length,
        eos_id=tok.special_ids.eos, seed=seed, mask_id=tok.special_ids.mask,
        noise_density=options.permutation_noise_density,
        mean_noise_span_length=options.mean_noise_span_length, endless=endless)


def make_dataset(corpus_options: CorpusOptions, options: DenoisingOptions, split: str, *,
                 batch_size: int, seed: int, process_index: int = 0, process_count: int = 1,
                 start_position: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Denoising batches for one process.

    Args:
      corpus_options: the corpus, its tokenizer (with ``<extra_id_*>`` sentinels for span
        corruption, e.g. ``data/tokenizers/bible_es_en_8k.model``), held-out part and shards.
      options: the objective and ``Ls``/``Lt``.
      split: ``"train"`` (endless, reshuffled every epoch) or ``"eval"`` (the held-out documents
        once, in order).
      batch_size: ``B`` per process.
      seed: the run's data seed.
      process_index, process_count: pick this process's data shards.
      start_position: train only: rows this process already consumed (steps × B).

    Returns:
      An iterator of ``features.shapes("seq2seq", B=batch_size, S=Ls, T=target_length())``.
    """
    shards, rows = pipeline.checked_layout(corpus_options, split, batch_size, start_position,
                                           process_index, process_count)
    corpus = pipeline.load_corpus(corpus_options, process_index=process_index,
                                  process_count=process_count)
    streams = []
    for shard in shards:
        docs = getattr(corpus.shards[shard], f"{split}_docs")
        stream = _stream(docs, options, corpus.tokenizer, rows, seed * _SHARD_STRIDE + shard,
                         endless=split == "train")
        if split == "train":
            stream = itertools.islice(stream, start_position // batch_size, None)
        streams.append(stream)
    if len(streams) == 1:
        return streams[0]
    return ({k: np.concatenate([b[k] for b in parts]) for k in parts[0]}
            for parts in zip(*streams, strict=False))


def unigram_counts(corpus_options: CorpusOptions, options: DenoisingOptions, *, seed: int,
                   process_index: int = 0, process_count: int = 1) -> np.ndarray:
    """int64 [V]: the real target ids of this process's first ``BASELINE_BATCHES`` training
    batches (of 32 rows a shard), for :func:`unigram_log_probs_from_counts`."""
    corpus = pipeline.load_corpus(corpus_options, process_index=process_index,
                                  process_count=process_count)
    counts = np.zeros(corpus.tokenizer.vocab_size, np.int64)
    for shard in corpus.shards:
        stream = _stream(corpus.shards[shard].train_docs, options, corpus.tokenizer, 32,
                         seed * _SHARD_STRIDE + shard, endless=True)
        for b in itertools.islice(stream, BASELINE_BATCHES):
            ids = b["decoder_target_ids"][b["decoder_weights"] > 0]
            counts += np.bincount(ids, minlength=len(counts))[:len(counts)]
    return counts


def unigram_log_probs_from_counts(counts: np.ndarray) -> np.ndarray:
    """float32 [V]: add-0.5 smoothed log-probabilities over the whole vocabulary (sentinels and
    EOS are targets like any word; padding's id has weight 0)."""
    counts = np.asarray(counts, np.float64) + 0.5
    return np.log(counts / counts.sum()).astype(np.float32)
