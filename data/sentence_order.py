"""Sentence-structure instances: sentence-order prediction and shuffled-segment order recovery.

* SOP (ALBERT, Lan et al., 2020): ``[CLS] A [SEP] B [SEP]`` where A and B are two consecutive
  segments of one document, swapped half the time (``sop_labels``: 0 = in order, 1 = swapped).
  Both segments always come from the same document, so topic gives nothing away (unlike NSP).
* Order recovery (ERNIE 2.0's sentence reordering, Sun et al., 2020): a passage cut into k
  segments (k uniform in ``[min_segments, max_segments]``), shuffled, laid out as
  ``[CLS] s1 [SEP] s2 [SEP] … sk [SEP]``; ``order_labels`` is the class of the permutation that
  was applied (:func:`permutation_to_class`), one class per permutation of every k up to the
  maximum: ``Σ_k k!`` classes (9 for k ≤ 3).

Passages are gathered as BERT's ``create_pretraining_data`` gathers sentence pairs: per document a
target length (the budget, or with ``short_seq_prob`` a shorter random one), and whole consecutive
sentences until it is reached. SOP cuts its two segments at a sentence boundary (inside the text
when a passage has one sentence); order recovery cuts at random token boundaries, as ERNIE 2.0
splits a paragraph "randomly into 1 to m segments". Type ids alternate 0/1 by segment, so a
2-segment instance is laid out exactly like a BERT sentence pair. Pure NumPy; all randomness comes
from the ``rng`` argument.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

from data import features, sentence_pairs
from data.options import InstanceOptions
from data.sentence_pairs import truncate_pair

IN_ORDER, SWAPPED = 0, 1
SENTENCE_TASKS = ("nsp", "sop", "order")


def num_order_classes(max_segments: int) -> int:
    """``Σ_{k=1..max_segments} k!``: the classes of order recovery with up to that many segments."""
    if max_segments < 1:
        raise ValueError(f"max_segments={max_segments} must be at least 1")
    return sum(math.factorial(k) for k in range(1, max_segments + 1))


def permutation_to_class(perm: Sequence[int]) -> int:
    """The class of a permutation of ``range(k)``: permutations of fewer segments first, then
    lexicographic rank (Lehmer code) among the k! permutations of k segments.

    ``perm[j]`` is the original index of the segment shown at position j; the identity of any k
    is "not shuffled". Classes do not depend on the maximum k: ``[0]`` → 0, ``[0, 1]`` → 1,
    ``[1, 0]`` → 2, ``[0, 1, 2]`` → 3, …, ``[2, 1, 0]`` → 8.

    Raises:
      ValueError: when ``perm`` is not a permutation of ``range(len(perm))``.
    """
    k = len(perm)
    if k < 1 or sorted(perm) != list(range(k)):
        raise ValueError(f"{list(perm)} is not a permutation of range({k})")
    rank = 0
    for i, p in enumerate(perm):
        rank += sum(q < p for q in perm[i + 1:]) * math.factorial(k - 1 - i)
    return num_order_classes(k - 1) + rank if k > 1 else rank


def class_to_permutation(label: int) -> tuple[int, ...]:
    """The permutation of :func:`permutation_to_class`'s class ``label`` (its inverse).

    Raises:
      ValueError: for a negative label.
    """
    if label < 0:
        raise ValueError(f"order class {label} is negative")
    k = 1
    while label >= math.factorial(k):
        label -= math.factorial(k)
        k += 1
    remaining, perm = list(range(k)), []
    for i in range(k):
        digit, label = divmod(label, math.factorial(k - 1 - i))
        perm.append(remaining.pop(digit))
    return tuple(perm)


def _passages(doc: list[np.ndarray], max_tokens: int, short_seq_prob: float,
              rng: np.random.Generator) -> Iterator[list[np.ndarray]]:
    """Runs of consecutive sentences of ``doc``, each reaching one target length (drawn once per
    document, as BERT does), the last one possibly shorter."""
    target = max_tokens
    if rng.random() < short_seq_prob:
        target = int(rng.integers(2, max_tokens + 1))
    chunk, length = [], 0
    for sentence in doc:
        chunk.append(sentence)
        length += len(sentence)
        if length >= target:
            yield chunk
            chunk, length = [], 0
    if chunk:
        yield chunk


def _cut(passage: list[np.ndarray], k: int, max_tokens: int, rng: np.random.Generator, *,
         at_sentences: bool = True) -> list[np.ndarray] | None:
    """``passage`` cut into ``k`` consecutive non-empty segments of at most ``max_tokens`` in all.

    The text past ``max_tokens`` is dropped first. With ``at_sentences``, cuts fall on random
    sentence boundaries when there are enough of them, else (and without it) at random token
    boundaries. None when too short for k.
    """
    tokens = np.concatenate(passage)[:max_tokens]
    if len(tokens) < k:
        return None
    ends = np.cumsum([len(s) for s in passage])[:-1]
    bounds = ends[ends < len(tokens)]
    if not at_sentences or len(bounds) < k - 1:
        bounds = np.arange(1, len(tokens))
    cuts = np.sort(rng.choice(bounds, k - 1, replace=False))
    return np.split(tokens, cuts)


def _sop_instances(docs, max_tokens: int, short_seq_prob: float, swap_prob: float,
                   rng: np.random.Generator) -> Iterator[tuple[list[np.ndarray], int]]:
    for doc in docs:
        for passage in _passages(doc, max_tokens, short_seq_prob, rng):
            # Cut into A and B before truncating, so A and B are whole sentences when possible.
            segments = _cut(passage, 2, sum(len(s) for s in passage), rng)
            if segments is None:
                continue  # a one-token passage cannot make two segments
            a, b = truncate_pair(segments[0], segments[1], max_tokens, rng)
            if rng.random() < swap_prob:
                yield [b, a], SWAPPED
            else:
                yield [a, b], IN_ORDER


def mid_sentence(passage: list[np.ndarray], max_tokens: int, rng: np.random.Generator
                 ) -> list[np.ndarray]:
    """``passage`` starting inside its first sentence and ending inside its last (as one piece).

    A random 1 … len−1 tokens of the first sentence are dropped (none of a one-token sentence);
    past ``max_tokens`` the text would be cut mid-sentence anyway, else a random 1 … len−1
    tokens of the last sentence go too. Two draws from ``rng`` per passage.
    """
    first, last = len(passage[0]), len(passage[-1])
    start = int(rng.integers(1, first)) if first > 1 else 0
    tokens = np.concatenate(passage)[start:]
    drop = int(rng.integers(1, last)) if last > 1 else 0
    if len(tokens) <= max_tokens and drop < len(tokens):
        tokens = tokens[:len(tokens) - drop]
    return [tokens]


def _order_instances(docs, max_seq_length: int, short_seq_prob: float, min_segments: int,
                     max_segments: int, rng: np.random.Generator, mid: bool = False
                     ) -> Iterator[tuple[list[np.ndarray], int]]:
    max_tokens = max_seq_length - 1 - max_segments  # [CLS] and one [SEP] per segment
    for doc in docs:
        for passage in _passages(doc, max_tokens, short_seq_prob, rng):
            if mid:
                passage = mid_sentence(passage, max_tokens, rng)
            k = int(rng.integers(min_segments, max_segments + 1))
            # ERNIE 2.0 splits the paragraph at random: cuts anywhere, not only between
            # sentences (whole sentences would leave a small model nothing but discourse to go on).
            segments = _cut(passage, k, max_tokens, rng, at_sentences=False)
            if segments is None:
                continue
            perm = rng.permutation(k)
            yield [segments[j] for j in perm], permutation_to_class(perm.tolist())


def _pack(instances, max_seq_length: int, label_key: str) -> dict[str, np.ndarray]:
    """Lays ``(segments, label)`` out as padded ``[CLS] s1 [SEP] s2 [SEP] …`` arrays; segment j
    and its [SEP] get type id ``j % 2``."""
    instances = list(instances)
    n = len(instances)
    token_ids = np.zeros((n, max_seq_length), np.int32)
    type_ids = np.zeros((n, max_seq_length), np.int32)
    labels = np.zeros((n,), np.int32)
    for row, (segments, label) in enumerate(instances):
        token_ids[row, 0] = features.CLS_ID
        pos = 1
        for j, segment in enumerate(segments):
            end = pos + len(segment)
            token_ids[row, pos:end] = segment
            token_ids[row, end] = features.SEP_ID
            type_ids[row, pos:end + 1] = j % 2
            pos = end + 1
        labels[row] = label
    return {"token_ids": token_ids, "type_ids": type_ids, label_key: labels}


def make_sop_instances(docs: list[list[np.ndarray]], rng: np.random.Generator, *,
                       max_seq_length: int, short_seq_prob: float = 0.1,
                       swap_prob: float = 0.5) -> dict[str, np.ndarray]:
    """Sentence-order instances from tokenised documents, in document order.

    Args:
      docs: documents, each a list of non-empty int32 [len] sentence arrays.
      rng: the only randomness source.
      max_seq_length: ``L``, [CLS] and both [SEP]s included.
      short_seq_prob: probability that a document targets a random shorter length.
      swap_prob: probability that the two segments are swapped.

    Returns:
      ``token_ids``, ``type_ids`` int32 [n, L] (``[CLS] A [SEP] B [SEP]``, type 1 on B and its
      [SEP]); ``sop_labels`` int32 [n]: 0 = A then B as in the document, 1 = swapped.
    """
    if max_seq_length - 3 < 2:
        raise ValueError(f"max_seq_length={max_seq_length} leaves no room for two segments")
    return _pack(_sop_instances(docs, max_seq_length - 3, short_seq_prob, swap_prob, rng),
                 max_seq_length, "sop_labels")


def make_order_instances(docs: list[list[np.ndarray]], rng: np.random.Generator, *,
                         max_seq_length: int, short_seq_prob: float = 0.1,
                         min_segments: int = 1, max_segments: int = 3,
                         mid_sentence: bool = False) -> dict[str, np.ndarray]:
    """Shuffled-segment instances from tokenised documents, in document order.

    Args:
      docs: documents, each a list of non-empty int32 [len] sentence arrays.
      rng: the only randomness source.
      max_seq_length: ``L``, [CLS] and every [SEP] included.
      short_seq_prob: probability that a document targets a random shorter length.
      min_segments, max_segments: k is drawn uniformly from this range for every passage.
      mid_sentence: passages start and end inside a sentence (:func:`mid_sentence`), so the
        accuracy is not the shortcut of spotting the segment with the capital or the full stop.

    Returns:
      ``token_ids``, ``type_ids`` int32 [n, L]; ``order_labels`` int32 [n] in
      ``[0, num_order_classes(max_segments))``: the class of ``perm`` where the segment at
      position j is the passage's segment ``perm[j]``.
    """
    if not 1 <= min_segments <= max_segments:
        raise ValueError(f"need 1 <= min_segments={min_segments} <= max_segments={max_segments}")
    if max_seq_length - 1 - max_segments < max_segments:
        raise ValueError(f"max_seq_length={max_seq_length} leaves no room for {max_segments} "
                         "segments")
    return _pack(_order_instances(docs, max_seq_length, short_seq_prob, min_segments,
                                  max_segments, rng, mid_sentence), max_seq_length,
                 "order_labels")


def sentence_task(objectives: Sequence[str]) -> str:
    """The one sentence-level task among ``objectives`` (``nsp``, ``sop`` or ``order``).

    A run has at most one, because each builds its own kind of instance; without one (MLM alone)
    the instances are SOP's, whose labels are then simply not in the batch.

    Raises:
      ValueError: for two sentence tasks, or a name that is neither one nor ``mlm``.
    """
    unknown = [n for n in objectives if n not in (*SENTENCE_TASKS, "mlm")]
    tasks = [n for n in objectives if n in SENTENCE_TASKS]
    if unknown or len(tasks) > 1:
        raise ValueError(f"pretraining objectives {list(objectives)}: use 'mlm' and at most one "
                         f"of {SENTENCE_TASKS} (each builds its own kind of instance)")
    return tasks[0] if tasks else "sop"


def document_minimum(task: str, options: InstanceOptions) -> tuple[int, int]:
    """``(sentences, tokens)``: the least a tokenised document needs to give ``task`` instances.

    NSP needs 2 sentences (a document of one sentence could only ever give "random next"
    instances, which skew the labels); SOP needs 2 tokens (cut into A and B, inside a sentence if
    need be); order needs ``order_min_segments`` tokens, one per segment.
    """
    if task == "nsp":
        return 2, 2
    if task == "sop":
        return 1, 2
    if task == "order":
        return 1, max(1, options.order_min_segments)
    raise ValueError(f"unknown sentence task {task!r}; known: {SENTENCE_TASKS}")


def make_instances(task: str, docs: list[list[np.ndarray]], options: InstanceOptions,
                   rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Instances of ``task`` (``nsp``, ``sop`` or ``order``) built with ``options``.

    Args:
      task: the sentence task.
      docs: tokenised documents (lists of non-empty int32 sentence arrays).
      options: ``max_seq_length``, ``short_seq_prob``, and per task ``nsp_random_prob``,
        ``sop_swap_prob``, or ``order_min_segments`` and ``order_max_segments``.
      rng: the only randomness source.

    Returns:
      ``token_ids``, ``type_ids`` int32 [n, L] and ``{task}_labels`` int32 [n].
    """
    common = dict(max_seq_length=options.max_seq_length, short_seq_prob=options.short_seq_prob)
    if task == "nsp":
        return sentence_pairs.make_instances(docs, rng, nsp_random_prob=options.nsp_random_prob,
                                             **common)
    if task == "sop":
        return make_sop_instances(docs, rng, swap_prob=options.sop_swap_prob, **common)
    if task == "order":
        return make_order_instances(docs, rng, min_segments=options.order_min_segments,
                                    max_segments=options.order_max_segments,
                                    mid_sentence=options.order_mid_sentence, **common)
    raise ValueError(f"unknown sentence task {task!r}; known: {SENTENCE_TASKS}")
