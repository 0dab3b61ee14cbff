"""XLNet permutation-LM input: sentence pairs → factorisation orders and targets → batches.

Per sequence, as XLNet's ``data_utils`` (Yang et al., 2019), written afresh with NumPy:

* layout ``<pad>… A <sep> B <sep> <cls>``: padding on the left, so <cls> is always the last
  token; ``type_ids`` A = 0, B = 1, <cls> = 2 (XLNet's own segment id; only "same or different
  segment" reaches the model), padding 0;
* targets: spans of 1..``max_span`` words (length n with probability ∝ 1/n), each placed in a
  window of ``n·K`` tokens, until about L/K tokens (partial prediction: K = ``plm_k``, at most
  P = ``max_predictions_per_seq``), topped up with single tokens as XLNet does;
* order: every non-target word comes first (all see each other); the targets and the functional
  tokens <sep>/<cls> follow in a permutation within blocks of ``perm_size`` (the same shuffle in
  every block, blocks left to right). So the targets are the last ~1/K of the factorisation order;
* ``can_attend`` [L, L] (content stream): j is not later than i in the order, i itself included
  (XLNet's ``perm_mask`` negated, the diagonal added), never a padding key. The query stream's
  mask is ``can_attend`` without the diagonal; the model derives it (``lm.relative_attention
  .stream_masks``), so the batch carries one mask;
* ``plm_target_mapping`` [P, L] one-hot rows of the targets in position order,
  ``plm_targets``/``plm_weights`` [P], unused rows zero.

Everything is built on the caller's thread with NumPy (no Python inside tf.data). Instance ``i``
of a shard's stream is a pure function of ``(seed, shard, i)``: the sentence pairs come from
``data.pipeline``'s epoch stream, the order and targets from a generator seeded with those
numbers, so ``start_position`` resumes exactly.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from data import features, pipeline
from data.options import CorpusOptions, PlmOptions
from data.pcg64_streams import RowStreams, seeded_states

TYPE_CLS = 2
_TRAIN, _EVAL = 0, 1
_U64 = (1 << 64) - 1


def to_xlnet_layout(token_ids: np.ndarray, type_ids: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``[CLS] A [SEP] B [SEP] pad…`` rows → ``pad… A [SEP] B [SEP] [CLS]``.

    Args:
      token_ids, type_ids: int32 [n, L] from ``data.sentence_pairs.make_instances``.

    Returns:
      ``(token_ids, type_ids)`` int32 [n, L], types A = 0, B = 1, <cls> = 2, padding 0.
    """
    length = token_ids.shape[1]
    body_n1 = (token_ids != features.PAD_ID).sum(axis=1, keepdims=True) - 1  # A [SEP] B [SEP]
    # Column c < L - 1 holds source token c + 1 - (L - 1 - body): right-aligned before <cls>.
    source_nl = np.arange(length - 1)[None, :] + 1 - (length - 1 - body_n1)
    kept_nl = source_nl >= 1
    source_nl = np.where(kept_nl, source_nl, 0)
    tokens, types = np.full_like(token_ids, features.PAD_ID), np.zeros_like(type_ids)
    tokens[:, :-1] = np.where(kept_nl, np.take_along_axis(token_ids, source_nl, 1), features.PAD_ID)
    types[:, :-1] = np.where(kept_nl, np.take_along_axis(type_ids, source_nl, 1), 0)
    tokens[:, -1], types[:, -1] = features.CLS_ID, TYPE_CLS
    return tokens, types


def _span_length_probs(max_span: int) -> np.ndarray:
    p = 1.0 / np.arange(1, max_span + 1)
    return p / p.sum()


def sample_targets(is_word: np.ndarray, is_start: np.ndarray, goal: int, k: float,
                   max_span: int, rng: np.random.Generator) -> np.ndarray:
    """XLNet's span sampling: which positions to predict.

    Args:
      is_word: bool [L], real non-special tokens (the only candidates).
      is_start: bool [L], tokens that begin a word (spans start and end on them).
      goal: how many tokens to predict.
      k: K; each span of n words sits in a window of about n·K tokens.
      max_span: longest span in words.
      rng: randomness.

    Returns:
      bool [L] with at most ``goal`` True, all on ``is_word``.
    """
    length = len(is_word)
    is_target = np.zeros(length, bool)
    probs, count = _span_length_probs(max_span), 0
    cur = int(np.argmax(is_word)) if is_word.any() else length
    while cur < length and count < goal:
        n = min(int(rng.choice(max_span, p=probs)) + 1, goal - count)
        context = max(int(round(n * (k - 1))), 1)
        left = int(rng.integers(context))
        beg = cur + left
        while beg < length and not (is_word[beg] and is_start[beg]):
            beg += 1
        end, words = beg + 1, 1
        if beg >= length:
            break
        while end < length and is_word[end] and (not is_start[end] or words < n):
            words += int(is_start[end])
            end += 1
        is_target[beg:end] = True
        count += end - beg
        cur = end + context - left
    picked = np.flatnonzero(is_target)
    is_target[picked[goal:]] = False  # a multi-piece word may overshoot
    free = np.flatnonzero(is_word & ~is_target)
    top_up = goal - min(count, goal)
    is_target[rng.choice(free, min(top_up, len(free)), replace=False)] = True
    return is_target


def block_permutation(length: int, perm_size: int, rng: np.random.Generator) -> np.ndarray:
    """int [L]: each position's rank in the order; one shuffle of ``perm_size`` offsets applied
    to every block, blocks in sequence (XLNet's ``_local_perm``)."""
    if length % perm_size:
        raise ValueError(f"max_seq_length {length} is not a multiple of perm_size {perm_size}")
    shuffle = rng.permutation(perm_size)
    return (np.arange(0, length, perm_size)[:, None] + shuffle[None, :]).reshape(-1)


def masks_from_order(rank: np.ndarray, is_target: np.ndarray, is_func: np.ndarray,
                     is_real: np.ndarray) -> np.ndarray:
    """The content stream's ``can_attend`` bool [..., L, L] (row i may attend column j).

    Non-target real tokens come first in the order and see each other; targets and functional
    tokens are ordered by ``rank``. Row i sees j when j comes before i, and itself; a target
    never sees itself in the query stream (the model drops the diagonal). Padding is never seen.

    Args:
      rank: int [..., L], each position's place in the order.
      is_target, is_func, is_real: bool [..., L].
    """
    length = rank.shape[-1]
    small = np.int16 if length < np.iinfo(np.int16).max else np.int32  # halves the compares
    permuted = is_target | is_func
    order = np.where(permuted, rank, -1).astype(small)  # the context shares place -1
    self_order = np.where(is_target, order, order + 1)
    key = np.where(is_real, order, length + 1).astype(small)  # padding: after everything
    # i sees j iff self_order[i] > key[j]. Rows outside the permuted set have self_order 0, so
    # they are all the same row (the real context); only the ~L/K permuted rows are compared.
    out = np.empty(rank.shape + (length,), bool)
    out[...] = (key < 0)[..., None, :]
    where = np.nonzero(permuted)
    out[where] = self_order[where][:, None] > key[where[:-1]]
    out.reshape(rank.shape[:-1] + (length * length,))[..., ::length + 1] = True
    return out


def _token_kinds(token_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(is_real, is_func, is_word)`` bool [..., L]: not padding; <sep>/<cls>; predictable."""
    is_real = token_ids != features.PAD_ID
    is_func = (token_ids == features.SEP_ID) | (token_ids == features.CLS_ID)
    return is_real, is_func, is_real & (token_ids >= features.NUM_SPECIAL_IDS)


def _goals(is_word: np.ndarray, options: PlmOptions) -> np.ndarray:
    """int64 [...]: tokens to predict, about 1/K of the words, 1 to P."""
    goal = np.round(is_word.sum(-1) / options.plm_k)  # half to even, as Python's round
    return np.clip(goal, 1, options.instances.max_predictions_per_seq).astype(np.int64)


def _prediction_rows(token_ids: np.ndarray, is_target: np.ndarray,
                     predictions: int) -> dict[str, np.ndarray]:
    """``plm_target_mapping`` [B, P, L], ``plm_targets``/``plm_weights`` [B, P] of the targets
    (bool [B, L], at most P a row) in position order, unused rows zero."""
    n, length = token_ids.shape
    rows, positions = np.nonzero(is_target)  # row-major: each row's targets in order
    counts = is_target.sum(1)
    slot = np.arange(rows.size) - np.repeat(np.cumsum(counts) - counts, counts)
    mapping = np.zeros((n, predictions, length), np.float32)
    mapping[rows, slot, positions] = 1.0
    targets = np.zeros((n, predictions), np.int32)
    targets[rows, slot] = token_ids[rows, positions]
    weights = np.zeros((n, predictions), np.float32)
    weights[rows, slot] = 1.0
    return {"plm_target_mapping": mapping, "plm_targets": targets, "plm_weights": weights}


def plm_example(token_ids: np.ndarray, is_start_v: np.ndarray, options: PlmOptions,
                rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Order, masks and targets of one sequence in XLNet layout (see the module docstring); the
    one-row reference that :func:`plm_batch` reproduces for many rows at once."""
    length, predictions = len(token_ids), options.instances.max_predictions_per_seq
    is_real, is_func, is_word = _token_kinds(token_ids)
    is_target = sample_targets(is_word, is_start_v[token_ids], int(_goals(is_word, options)),
                               options.plm_k, options.plm_max_span, rng)
    rank = block_permutation(length, options.perm_size or length, rng)
    out = _prediction_rows(token_ids[None], is_target[None], predictions)
    return {"can_attend": masks_from_order(rank, is_target, is_func, is_real),
            **{k: v[0] for k, v in out.items()}}


def _span_tables(is_word: np.ndarray, is_start: np.ndarray) -> dict[str, np.ndarray]:
    """Lookups that replace :func:`sample_targets`' token-by-token scans, int [B, L + 1]:

    * ``next_start[i]``: the first word start at or after i (L if none);
    * ``next_gap[i]``: the first non-word token after i (L if none);
    * ``rank[i]``: how many word starts precede i; ``start[r]``: the r-th word start (L if none).
    """
    n, length = is_word.shape
    starts = is_word & is_start
    column = np.arange(length + 1)
    padded = np.zeros((n, 1), bool)

    def first_at_or_after(flag):
        at = np.where(np.concatenate([flag, ~padded], 1), column, length)
        return np.minimum.accumulate(at[:, ::-1], axis=1)[:, ::-1]

    rank = np.concatenate([padded, starts], 1).cumsum(1)
    start = np.full((n, length + 1), length)
    rows, cols = np.nonzero(starts)
    start[rows, rank[rows, cols]] = cols
    gap = first_at_or_after(~is_word)
    return {"next_start": first_at_or_after(starts), "rank": rank, "start": start,
            "next_gap": np.concatenate([gap[:, 1:], gap[:, -1:]], 1)}


def _sample_spans(streams: RowStreams, is_word: np.ndarray, is_start: np.ndarray,
                  goal: np.ndarray, options: PlmOptions) -> np.ndarray:
    """:func:`sample_targets`' span loop for every row at once, in lockstep (one step = one span
    of each row still going), drawing what each row's own generator would: bool [B, L] of the
    spans, before the truncation to ``goal`` and the top-up."""
    n, length = is_word.shape
    k, max_span = options.plm_k, options.plm_max_span
    cdf = _span_length_probs(max_span).cumsum()  # as Generator.choice(p=…) does
    cdf /= cdf[-1]
    context_of = np.array([1] + [max(int(round(w * (k - 1))), 1) for w in range(1, max_span + 1)])
    t = _span_tables(is_word, is_start)
    cur = np.where(is_word.any(1), is_word.argmax(1), length)
    count = np.zeros(n, np.int64)
    edges = np.zeros((n, length + 1), np.int8)  # +1 at each span's start, -1 after its end
    live = np.flatnonzero(cur < length)
    while live.size:
        words = np.minimum(np.searchsorted(cdf, streams.uniform(live), side="right") + 1,
                           goal[live] - count[live])
        context = context_of[words]
        left = streams.integers(live, context)
        beg = t["next_start"][live, np.minimum(cur[live] + left, length)]
        placed = beg < length  # else the row is done
        live, beg, words, context, left = (x[placed] for x in (live, beg, words, context, left))
        after = t["start"][live, np.minimum(t["rank"][live, beg] + words, length)]
        end = np.minimum(t["next_gap"][live, beg], after)
        edges[live, beg], edges[live, end] = 1, -1
        count[live] += end - beg
        cur[live] = end + context - left
        live = live[(cur[live] < length) & (count[live] < goal[live])]
    return edges.cumsum(1, dtype=np.int16)[:, :length] > 0


def _top_up_and_shuffle(streams: RowStreams, is_word: np.ndarray, is_target: np.ndarray,
                        goal: np.ndarray, perm_size: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sample_targets`' ending and :func:`block_permutation`'s shuffle, row by row with
    each row's generator (NumPy's own ``choice`` and ``permutation``: cheap, few calls).

    Returns:
      ``(is_target bool [B, L], shuffle int [B, perm_size])``.
    """
    is_target = is_target & (is_target.cumsum(1) <= goal[:, None])  # a long last word overshoots
    short = goal - is_target.sum(1)
    shuffles = np.empty((len(goal), perm_size), np.int64)
    for row in range(len(goal)):
        rng = streams.generator(row)
        if short[row]:
            free = np.flatnonzero(is_word[row] & ~is_target[row])
            if free.size:  # (choice of 0 draws nothing)
                is_target[row, rng.choice(free, min(short[row], free.size), replace=False)] = True
        shuffles[row] = rng.permutation(perm_size)
    return is_target, shuffles


def plm_batch(token_ids: np.ndarray, type_ids: np.ndarray, positions: np.ndarray,
              options: PlmOptions, is_start_v: np.ndarray,
              seed_key: tuple[int, ...]) -> dict[str, np.ndarray]:
    """A ``plm`` batch from BERT-layout pairs; row r's randomness is seeded by
    ``(*seed_key, positions[r])``, its position in the stream. Equal to :func:`plm_example` on
    each row with ``np.random.default_rng([*seed_key, positions[r]])``, built for all rows at
    once (module docstring)."""
    tokens, types = to_xlnet_layout(token_ids, type_ids)
    length, predictions = tokens.shape[1], options.instances.max_predictions_per_seq
    perm_size = options.perm_size or length
    if length % perm_size:
        raise ValueError(f"max_seq_length {length} is not a multiple of perm_size {perm_size}")
    is_real, is_func, is_word = _token_kinds(tokens)
    goal = _goals(is_word, options)
    # A span takes at most one 64-bit output for its length and one for its offset.
    entropy = np.column_stack([np.broadcast_to(np.array(seed_key, np.uint64), (len(tokens),
                                                                                len(seed_key))),
                               np.asarray(positions).astype(np.uint64)])
    streams = RowStreams(seeded_states(entropy), width=2 * predictions + 4)
    is_target = _sample_spans(streams, is_word, is_start_v[tokens], goal, options)
    is_target, shuffles = _top_up_and_shuffle(streams, is_word, is_target, goal, perm_size)
    blocks = np.arange(0, length, perm_size)
    rank = (blocks[None, :, None] + shuffles[:, None, :]).reshape(len(tokens), length)
    batch = {"token_ids": tokens, "type_ids": types,
             "can_attend": masks_from_order(rank, is_target, is_func, is_real),
             **_prediction_rows(tokens, is_target, predictions)}
    return {k: batch[k] for k in features.FEATURES["plm"]}


def _word_starts(corpus: pipeline.PretrainingCorpus, options: PlmOptions) -> np.ndarray:
    if options.instances.whole_word_masking:
        return corpus.tokenizer.is_word_start()
    return np.ones(corpus.vocab_size, bool)  # every piece may start or end a span


def _shard_batches(chunks, options: PlmOptions, key: tuple[int, ...], rows: int,
                   is_start_v) -> Iterator[dict[str, np.ndarray]]:
    """Batches of ``rows`` from chunks ``(token_ids, type_ids, nsp_labels, positions)``."""
    for token_ids, type_ids, _, positions in chunks:
        for i in range(0, len(positions), rows):
            part = slice(i, i + rows)
            yield plm_batch(token_ids[part], type_ids[part], positions[part], options,
                            is_start_v, key)


def make_dataset(corpus_options: CorpusOptions, options: PlmOptions, split: str, *,
                 batch_size: int, seed: int, process_index: int = 0, process_count: int = 1,
                 start_position: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Permutation-LM batches for one process; the ``data.pipeline.make_dataset`` contract.

    Args:
      corpus_options: the corpus, its tokenizer, held-out fraction and data shards.
      options: ``instances`` (BERT's pairs: ``max_seq_length`` L, ``max_predictions_per_seq`` P,
        ``short_seq_prob``, ``nsp_random_prob``, ``whole_word_masking``: spans follow word
        starts) plus ``plm_k`` (K), ``plm_max_span`` and ``perm_size`` (0 = L).
      split: ``"train"`` (infinite) or ``"eval"`` (one fixed pass).
      batch_size: B per process.
      seed: the run's data seed.
      process_index, process_count: this process and how many there are.
      start_position: train only: instances already consumed (steps × B).

    Returns:
      An iterator of dicts with the keys, shapes and dtypes of ``features.shapes("plm", …)``.
    """
    shards, rows = pipeline.checked_layout(corpus_options, split, batch_size, start_position,
                                           process_index, process_count)
    corpus = pipeline.load_corpus(corpus_options, process_index=process_index,
                                  process_count=process_count)
    is_start_v = _word_starts(corpus, options)
    start = start_position // batch_size * rows
    # Sentence pairs: BERT's stream (reused, so both objectives read the corpus alike).
    if split == "train":
        chunks = {s: pipeline._train_epochs(corpus.shards[s].train_docs, options.instances, seed,
                                            s, rows, start) for s in shards}
    else:
        eval_rows = pipeline._eval_rows({s: x.eval_docs for s, x in corpus.shards.items()},
                                        options.instances, rows, seed, "nsp")
        chunks = {s: iter([x]) for s, x in eval_rows.items()}
    tag = _TRAIN if split == "train" else _EVAL
    streams = [_shard_batches(chunks[s], options, (tag, int(seed) & _U64, s), rows, is_start_v)
               for s in shards]
    if len(streams) == 1:
        return streams[0]
    return ({k: np.concatenate([b[k] for b in parts]) for k in parts[0]}
            for parts in zip(*streams, strict=False))
