"""BERT sentence-pair instances: ``[CLS] A [SEP] B [SEP]`` with a next-sentence label.

The instance logic of BERT's ``create_pretraining_data`` (Devlin et al., 2019), written afresh with
NumPy. For each document: pick a target length (usually the maximum, sometimes short so that
fine-tuning on short inputs is not out of distribution), gather whole sentences until it is
reached, split them at a random point into A and B, and half the time replace B with text from a
random other document (the "not next" class). Pure NumPy; all randomness comes from the ``rng``
argument, so one seed gives one epoch.
"""

from __future__ import annotations

import numpy as np

from data import features

_NUM_SPECIALS_IN_PAIR = 3  # [CLS], [SEP], [SEP]
IS_NEXT, IS_RANDOM = 0, 1


def truncate_pair(a: np.ndarray, b: np.ndarray, max_tokens: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Shortens a pair to ``max_tokens`` by trimming the longer side, randomly at front or back.

    Equivalent in distribution to BERT's one-token-at-a-time loop (remove from the longer side,
    ties go to B; front or back by a fair coin) but costs O(1) random draws per side, which matters
    because a single long sentence can exceed the budget by hundreds of tokens.

    Args:
      a: int32 [La] tokens of sentence A.
      b: int32 [Lb] tokens of sentence B.
      max_tokens: the budget for ``La + Lb``.
      rng: the randomness source.

    Returns:
      ``(a, b)`` trimmed so that ``len(a) + len(b) <= max_tokens``.
    """
    la, lb = len(a), len(b)
    excess = la + lb - max_tokens
    if excess <= 0:
        return a, b
    gap = min(abs(la - lb), excess)
    cut_a, cut_b = (gap, 0) if la > lb else (0, gap)
    rest = excess - gap
    # Once equal, removals alternate starting with B (BERT trims B when lengths tie).
    cut_a, cut_b = cut_a + rest // 2, cut_b + rest - rest // 2
    front_a, front_b = rng.binomial(cut_a, 0.5), rng.binomial(cut_b, 0.5)
    return a[front_a:la - (cut_a - front_a)], b[front_b:lb - (cut_b - front_b)]


def _random_b(docs: list[list[np.ndarray]], doc_index: int, target: int,
              rng: np.random.Generator) -> list[np.ndarray]:
    """Sentences from a random other document, from a random start, until ``target`` tokens.

    With a single document there is no other one; it then draws from itself (BERT does the same
    after failing to find another).
    """
    other = int(rng.integers(len(docs) - 1)) if len(docs) > 1 else doc_index
    if len(docs) > 1 and other >= doc_index:
        other += 1
    doc = docs[other]
    taken, length = [], 0
    for sentence in doc[int(rng.integers(len(doc))):]:
        taken.append(sentence)
        length += len(sentence)
        if length >= target:
            break
    return taken


def _document_pairs(docs: list[list[np.ndarray]], doc_index: int, max_tokens: int,
                    rng: np.random.Generator, short_seq_prob: float, nsp_random_prob: float):
    """Yields ``(a, b, nsp_label)`` for one document; see :func:`make_instances`."""
    doc = docs[doc_index]
    target = max_tokens
    if rng.random() < short_seq_prob:
        target = int(rng.integers(2, max_tokens + 1))
    chunk, length, i = [], 0, 0
    while i < len(doc):
        chunk.append(doc[i])
        length += len(doc[i])
        if i == len(doc) - 1 or length >= target:
            a_end = int(rng.integers(1, len(chunk))) if len(chunk) >= 2 else 1
            a = np.concatenate(chunk[:a_end])
            if len(chunk) == 1 or rng.random() < nsp_random_prob:
                b = np.concatenate(_random_b(docs, doc_index, target - len(a), rng))
                label = IS_RANDOM
                i -= len(chunk) - a_end  # The unused sentences start the next chunk.
            else:
                b = np.concatenate(chunk[a_end:])
                label = IS_NEXT
            yield (*truncate_pair(a, b, max_tokens, rng), label)
            chunk, length = [], 0
        i += 1


def make_instances(docs: list[list[np.ndarray]], rng: np.random.Generator, *,
                   max_seq_length: int, short_seq_prob: float = 0.1,
                   nsp_random_prob: float = 0.5) -> dict[str, np.ndarray]:
    """Cuts sentence-pair instances from tokenised documents, in document order.

    Args:
      docs: documents, each a list of int32 [len] token arrays, one per sentence; every sentence
        must be non-empty (``data.pipeline`` drops sentences that tokenise to nothing).
      rng: the only randomness source.
      max_seq_length: ``L``, the padded length, [CLS] and both [SEP]s included.
      short_seq_prob: probability that a document targets a random length in ``[2, L-3]``.
      nsp_random_prob: probability that B comes from another document.

    Returns:
      ``token_ids`` int32 [n, L]: ``[CLS] A [SEP] B [SEP]``, 0-padded;
      ``type_ids`` int32 [n, L]: 1 on B and its [SEP], else 0;
      ``nsp_labels`` int32 [n]: 0 when B follows A in its document, 1 when B is random.
    """
    max_tokens = max_seq_length - _NUM_SPECIALS_IN_PAIR
    if max_tokens < 2:
        raise ValueError(f"max_seq_length={max_seq_length} leaves no room for two sentences")
    pairs = []
    for doc_index in range(len(docs)):
        pairs.extend(_document_pairs(docs, doc_index, max_tokens, rng, short_seq_prob,
                                     nsp_random_prob))
    return _pack(pairs, max_seq_length)


def _pack(pairs: list[tuple[np.ndarray, np.ndarray, int]],
          max_seq_length: int) -> dict[str, np.ndarray]:
    """Lays ``(a, b, label)`` triples out as padded ``[CLS] A [SEP] B [SEP]`` arrays."""
    n = len(pairs)
    token_ids = np.zeros((n, max_seq_length), np.int32)
    type_ids = np.zeros((n, max_seq_length), np.int32)
    nsp_labels = np.zeros((n,), np.int32)
    for row, (a, b, label) in enumerate(pairs):
        la, lb = len(a), len(b)
        token_ids[row, 0] = features.CLS_ID
        token_ids[row, 1:1 + la] = a
        token_ids[row, 1 + la] = features.SEP_ID
        token_ids[row, 2 + la:2 + la + lb] = b
        token_ids[row, 2 + la + lb] = features.SEP_ID
        type_ids[row, 2 + la:3 + la + lb] = 1
        nsp_labels[row] = label
    return {"token_ids": token_ids, "type_ids": type_ids, "nsp_labels": nsp_labels}
