"""Encoder-decoder pretraining objectives built in the input pipeline (numpy, seeded).

* **T5 span corruption** (Raffel et al., 2020): :func:`random_spans_noise_mask` has the semantics
  of T5's ``random_spans_noise_mask`` (``round(L * density)`` noise tokens, at least 1 and at
  most ``L - 1``; ``round(noise / mean_span)`` spans, at least 1; noise and non-noise lengths by a
  uniformly random segmentation; the row starts with non-noise and ends with noise). Inputs keep
  the non-noise tokens with sentinel ``i`` in place of the ``i``-th noise span; targets are
  sentinel ``i`` followed by span ``i``'s tokens, for every span; both end with EOS. Only the
  random stream differs from T5's (numpy's PCG64 instead of TF's stateless shuffle).
  :func:`span_corruption_batches` chunks the concatenated documents into ``tokens_length`` pieces
  (:func:`random_spans_helper`, T5's, so that inputs fill ``Ls`` and targets fit ``Lt``).
* **Sentence permutation** (BART's document rotation/permutation, generative form; Lewis et al.,
  2020): the encoder sees a window of a document's consecutive sentences in a random order
  (optionally with spans masked, one mask id per span as BART's text infilling); the decoder
  writes the window back in the original order. :func:`sentence_permutation_batches`.

Batches follow ``data.features.shapes("seq2seq", B=…, S=…, T=…)`` (``data/seq2seq_batches.py``).
Every random draw comes from ``np.random.default_rng([tag, seed, counter])``: the same seed gives
the same batches on every host and run. Documents are the token-id sentences of
``data.corpus.tokenize_documents``, e.g. of the monolingual corpora in
``data/corpora/seq2seq/`` (built by ``scripts/build_monolingual_bible.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from data.seq2seq_batches import pad_pairs

_SPAN_TAG, _PERMUTE_TAG = 0x5C, 0xB4
SENTINEL_PIECE = "<extra_id_{}>"  # T5's names; data/tokenizers/bible_es_en_8k has 100 of them


def sentinel_ids(tokenizer, count: int = 100) -> np.ndarray:
    """int32 [count]: the ids of ``<extra_id_0>``… in the tokenizer's vocabulary.

    Raises:
      ValueError: when the tokenizer lacks one (train it with ``--sentinels``).
    """
    ids = np.asarray([tokenizer.sp.piece_to_id(SENTINEL_PIECE.format(i)) for i in range(count)],
                     np.int32)
    unk = tokenizer.special_ids.unk
    if (ids == unk).any():
        raise ValueError(f"the tokenizer {tokenizer.name} has no {SENTINEL_PIECE.format(0)}… "
                         f"sentinels ({count} needed); train one with `python -m "
                         "launch.train_tokenizer --sentinels=100` or use "
                         "data/tokenizers/bible_es_en_8k.model")
    return ids


def random_spans_noise_mask(length: int, noise_density: float, mean_noise_span_length: float,
                            rng: np.random.Generator, rows: int = 1) -> np.ndarray:
    """bool [rows, length]: T5's noise mask, ``rows`` independent draws (see the module doc)."""
    if noise_density == 0.0:
        return np.zeros((rows, length), bool)
    orig_length, length = length, max(length, 2)
    num_noise = min(max(int(np.round(length * noise_density)), 1), length - 1)
    num_spans = max(int(np.round(num_noise / mean_noise_span_length)), 1)
    noise_lengths = _random_segmentation(num_noise, num_spans, rng, rows)
    nonnoise_lengths = _random_segmentation(length - num_noise, num_spans, rng, rows)
    interleaved = np.stack([nonnoise_lengths, noise_lengths], axis=2).reshape(rows, -1)
    starts = np.cumsum(interleaved, axis=1)[:, :-1]
    indicator = np.zeros((rows, length), np.int64)
    np.add.at(indicator, (np.repeat(np.arange(rows), starts.shape[1]), starts.reshape(-1)), 1)
    return (np.cumsum(indicator, axis=1) % 2 == 1)[:, :orig_length]


def _random_segmentation(num_items: int, num_segments: int, rng: np.random.Generator,
                         rows: int) -> np.ndarray:
    """int64 [rows, num_segments]: lengths summing to ``num_items``, each row a uniformly random
    composition (T5: ``num_segments - 1`` segment starts shuffled into ``num_items - 1`` slots)."""
    ranks = rng.random((rows, num_items - 1)).argsort(axis=1).argsort(axis=1)
    first = np.concatenate([np.zeros((rows, 1), np.int64), ranks < num_segments - 1], axis=1)
    segment = np.cumsum(first, axis=1)
    return (segment[:, :, None] == np.arange(num_segments)).sum(axis=1)


def _span_to_sentinel(tokens: np.ndarray, mask: np.ndarray, sentinels: np.ndarray) -> np.ndarray:
    """One row: tokens where ``mask`` is False; each masked span becomes its sentinel, in order."""
    first = mask & ~np.concatenate([[False], mask[:-1]])
    out = np.where(first, sentinels[np.maximum(np.cumsum(first) - 1, 0)], tokens)
    return out[~mask | first]


def span_corruption(tokens: np.ndarray, mask: np.ndarray, sentinels: np.ndarray,
                    eos_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) of one row under a noise mask, each ending with ``eos_id``."""
    inputs = _span_to_sentinel(tokens, mask, sentinels)
    targets = _span_to_sentinel(tokens, ~mask, sentinels)
    return (np.append(inputs, eos_id).astype(np.int32),
            np.append(targets, eos_id).astype(np.int32))


def random_spans_helper(inputs_length: int, noise_density: float = 0.15,
                        mean_noise_span_length: float = 3.0) -> tuple[int, int]:
    """T5's ``random_spans_helper``: ``(tokens_length, targets_length)`` such that a chunk of
    ``tokens_length`` raw tokens corrupts into exactly ``inputs_length`` input ids (EOS included)
    and ``targets_length`` target ids."""
    def lengths(tokens_length):
        num_noise = int(round(tokens_length * noise_density))
        num_spans = int(round(num_noise / mean_noise_span_length))
        return tokens_length - num_noise + num_spans + 1, num_noise + num_spans + 1

    tokens_length = inputs_length - 1
    while lengths(tokens_length + 1)[0] <= inputs_length:
        tokens_length += 1
    return tokens_length, lengths(tokens_length)[1]


def _token_chunks(documents, length: int, seed: int, endless: bool) -> Iterator[np.ndarray]:
    """Chunks of ``length`` ids of the documents concatenated; training reshuffles the document
    order each epoch (``[tag, seed, epoch]``) and carries a chunk across epoch ends."""
    flat = [np.concatenate(list(doc)) for doc in documents]
    pending, epoch = np.zeros(0, np.int32), 0
    while True:
        order = (np.random.default_rng([_SPAN_TAG, seed, epoch]).permutation(len(flat))
                 if endless else range(len(flat)))
        pending = np.concatenate([pending, *[flat[i] for i in order]])
        usable = len(pending) // length * length
        yield from pending[:usable].reshape(-1, length)
        pending, epoch = pending[usable:], epoch + 1
        if not endless:
            return


def span_corruption_batches(documents: Sequence[Sequence[np.ndarray]], *, batch_size: int,
                            inputs_length: int, sentinels: np.ndarray, eos_id: int, seed: int,
                            noise_density: float = 0.15, mean_noise_span_length: float = 3.0,
                            endless: bool = True) -> Iterator[dict[str, np.ndarray]]:
    """T5 span-corruption batches: ``Ls = inputs_length``, ``Lt`` from :func:`random_spans_helper`.

    Args:
      documents: tokenised documents (lists of int32 sentence arrays).
      batch_size: rows per batch.
      inputs_length: ``Ls`` (512 in T5); every row's inputs fill it exactly.
      sentinels: int32 ids of sentinel 0, 1, … (:func:`sentinel_ids`); at least as many as the
        spans of a row.
      eos_id: the EOS id closing inputs and targets.
      seed: chunk order and masks; the same seed gives the same batches.
      endless: True (training): epochs of reshuffled documents; False: one pass in order, the
        last partial batch dropped (eval).

    Returns:
      An iterator of ``features.shapes("seq2seq", B=batch_size, S=inputs_length, T=…)`` dicts.
    """
    tokens_length, targets_length = random_spans_helper(inputs_length, noise_density,
                                                        mean_noise_span_length)
    spans = max(int(round(round(tokens_length * noise_density) / mean_noise_span_length)), 1)
    if spans > len(sentinels):
        raise ValueError(f"rows of {tokens_length} tokens have {spans} noise spans but only "
                         f"{len(sentinels)} sentinels are given; give more or shorten Ls")
    chunks, counter = _token_chunks(documents, tokens_length, seed, endless), 0
    while True:
        rows = [c for _, c in zip(range(batch_size), chunks, strict=False)]
        if len(rows) < batch_size:
            return
        rng = np.random.default_rng([_SPAN_TAG, seed, 1, counter])
        masks = random_spans_noise_mask(tokens_length, noise_density, mean_noise_span_length,
                                        rng, batch_size)
        pairs = [span_corruption(r, m, sentinels, eos_id) for r, m in zip(rows, masks,
                                                                          strict=True)]
        yield pad_pairs(pairs, batch_size, inputs_length, targets_length)
        counter += 1


def sentence_windows(documents: Sequence[Sequence[np.ndarray]],
                     budget: int) -> list[list[np.ndarray]]:
    """Consecutive sentences of each document grouped greedily into windows of at most
    ``budget`` ids (a longer sentence is cut to ``budget`` and forms its own window)."""
    windows = []
    for doc in documents:
        current, size = [], 0
        for sentence in doc:
            sentence = sentence[:budget]
            if current and size + len(sentence) > budget:
                windows.append(current)
                current, size = [], 0
            current.append(sentence)
            size += len(sentence)
        if current:
            windows.append(current)
    return windows


def permute_sentences(window: Sequence[np.ndarray], rng: np.random.Generator, eos_id: int, *,
                      mask_id: int | None = None, noise_density: float = 0.0,
                      mean_noise_span_length: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets): the window's sentences shuffled (each span of the optional noise mask
    replaced by one ``mask_id``) and the window in order, each ending with ``eos_id``."""
    targets = np.concatenate(list(window))
    shuffled = np.concatenate([window[i] for i in rng.permutation(len(window))])
    if noise_density > 0:
        mask = random_spans_noise_mask(len(shuffled), noise_density, mean_noise_span_length,
                                       rng)[0]
        shuffled = _span_to_sentinel(shuffled, mask, np.full(len(shuffled), mask_id, np.int32))
    return (np.append(shuffled, eos_id).astype(np.int32),
            np.append(targets, eos_id).astype(np.int32))


def sentence_permutation_batches(documents: Sequence[Sequence[np.ndarray]], *, batch_size: int,
                                 source_length: int, target_length: int, eos_id: int, seed: int,
                                 mask_id: int | None = None, noise_density: float = 0.0,
                                 mean_noise_span_length: float = 3.0, endless: bool = True
                                 ) -> Iterator[dict[str, np.ndarray]]:
    """BART-style sentence-permutation batches (see the module doc).

    Windows hold at most ``min(Ls, Lt) - 1`` ids; training visits them in a new order each epoch
    (``[tag, seed, epoch]``) and permutes each window with its own draw. ``noise_density`` > 0
    (with ``mask_id``, e.g. ``features.MASK_ID``) also masks spans of the shuffled input.

    Returns:
      An iterator of ``features.shapes("seq2seq", B=batch_size, S=source_length,
      T=target_length)`` dicts; without ``endless``, one pass with the last partial batch
      padded (rows of weight 0).
    """
    if noise_density > 0 and mask_id is None:
        raise ValueError("span masking (noise_density > 0) needs mask_id, e.g. features.MASK_ID")
    windows = sentence_windows(documents, min(source_length, target_length) - 1)
    epoch = 0
    pending: list[int] = []
    counter = 0
    while True:
        if len(pending) < batch_size:
            if not endless and epoch:
                if not pending:
                    return
            else:
                order = (np.random.default_rng([_PERMUTE_TAG, seed, epoch]).permutation(
                    len(windows)) if endless else np.arange(len(windows)))
                pending += order.tolist()
                epoch += 1
                continue
        rng = np.random.default_rng([_PERMUTE_TAG, seed, 1, counter])
        pairs = [permute_sentences(windows[i], rng, eos_id, mask_id=mask_id,
                                   noise_density=noise_density,
                                   mean_noise_span_length=mean_noise_span_length)
                 for i in pending[:batch_size]]
        yield pad_pairs(pairs, batch_size, source_length, target_length)
        pending, counter = pending[batch_size:], counter + 1


def target_unigram_log_probs(batches: Sequence[dict[str, np.ndarray]],
                             vocab_size: int) -> np.ndarray:
    """float32 [V]: log unigram probabilities of the real target ids of ``batches`` (e.g.
    training batches), add-0.5 smoothed over the whole vocabulary (EOS and sentinels are
    targets too, so unlike ``data.corpus.unigram_log_probs_from_counts`` no id is left out)."""
    ids = np.concatenate([b["decoder_target_ids"][b["decoder_weights"] > 0] for b in batches])
    counts = np.bincount(ids, minlength=vocab_size).astype(np.float64) + 0.5
    return np.log(counts / counts.sum()).astype(np.float32)


def unigram_baseline_loss(batch: dict[str, np.ndarray], log_probs: np.ndarray) -> float:
    """The context-free baseline of the decoder's loss: mean ``-log p(target)`` over the real
    target tokens under a unigram distribution (nats/token), as the other objectives report."""
    weights = batch["decoder_weights"]
    total = -(log_probs[batch["decoder_target_ids"]] * weights).sum()
    return float(total / max(weights.sum(), 1.0))
