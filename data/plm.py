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

Instance ``i`` of a shard's stream is a pure function of ``(seed, shard, i)``: the sentence pairs
come from ``data.pipeline``'s epoch stream, the order and targets from the generator
``np.random.default_rng([tag, seed, shard, i])``, so ``start_position`` resumes exactly.

How it is built: on the caller's thread, in NumPy, for many rows at once, and bit for bit what
the per-row code it replaced built (:func:`plm_example` on each row; ``tests/data/test_plm.py``
keeps that code as the reference):

* :func:`plm_batches` samples targets and orders for about ``_SAMPLE_ROWS`` pairs at once
  (``data/plm_sampling.py``: the span loop in lockstep over the rows, on draws that
  ``data/pcg64_streams.py`` reproduces from the rows' generators; each row's ``shuffle`` is
  NumPy's own) and keeps plans: per sequence, the few distinct rows of its mask (the rows outside
  the permuted set are all one row) and its targets' positions;
* each batch is then filled from the plans: the distinct rows compared once and copied into place
  (``np.take``), the one-hot target rows scattered into zeros. The two large outputs (at B = 32,
  L = 512, P = 85: an 8 MB mask and 5.6 MB of one-hot rows) come from a stream's pool
  (:class:`_Outputs`): an array the consumer has let go of is written again (warm pages, and its
  one-hot rows cleared by undoing the last batch's ones), where a fresh one costs as much again
  as filling it. A consumer that keeps its batches gets fresh arrays, as before.

Why NumPy and not tf.data ops: the draws must stay those of the rows' NumPy generators (the
same batches, exact resumption), which TF's random ops cannot make; and the one large
deterministic part, the [B, L, L] mask, was slower in TF when measured (256 rows at L = 512, one
core: a broadcast compare 21 ms, XLA-compiled 11.6 ms with its copy out, :func:`masks_from_order`
6.9 ms). The per-row code took about 0.45 ms of CPU a row at XLNet-base's shapes; this takes
about 45 µs, a third of it writing the outputs (436 KB a row), a third the rows' permutations
and generators: docs/performance.md has the figures.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from data import features, pipeline, plm_sampling
from data.options import CorpusOptions, PlmOptions
from data.plm_sampling import block_permutation, sample_targets

TYPE_CLS = 2
_TRAIN, _EVAL = 0, 1
_U64 = (1 << 64) - 1
_MASK_ROWS = 32  # sequences per chunk of masks_from_order (measured: 16 and 32 alike)
# Pairs sampled at once by plm_batches (measured at L = 512: 512 and 1,024 alike, 2,048 slower).
_SAMPLE_ROWS = 1024


def to_xlnet_layout(token_ids: np.ndarray, type_ids: np.ndarray
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``[CLS] A [SEP] B [SEP] pad…`` rows → ``pad… A [SEP] B [SEP] [CLS]``.

    Args:
      token_ids, type_ids: int32 [n, L] from ``data.sentence_pairs.make_instances``.

    Returns:
      ``(token_ids, type_ids)`` int32 [n, L], types A = 0, B = 1, <cls> = 2, padding 0.
    """
    n, length = token_ids.shape
    body = np.maximum((token_ids != features.PAD_ID).sum(axis=1) - 1, 0)  # A [SEP] B [SEP]
    out = []
    for ids, fill in ((token_ids, features.PAD_ID), (type_ids, 0)):
        # Row r is the window at `body` of (L - 1 fillers, then the row without [CLS]).
        source = np.concatenate([np.full((n, length - 1), fill, ids.dtype), ids[:, 1:]], 1)
        shifted = np.empty_like(ids)
        shifted[:, :-1] = sliding_window_view(source, length - 1, axis=1)[np.arange(n), body]
        out.append(shifted)
    out[0][:, -1], out[1][:, -1] = features.CLS_ID, TYPE_CLS
    return out[0], out[1]


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
    length, lead = rank.shape[-1], rank.shape[:-1]
    plan = _mask_plan(*(x.reshape(-1, length) for x in (rank, is_target, is_func, is_real)))
    return _masks(plan, slice(None)).reshape(lead + (length, length))


def _mask_plan(rank: np.ndarray, is_target: np.ndarray, is_func: np.ndarray,
               is_real: np.ndarray) -> dict[str, np.ndarray]:
    """The few distinct rows of each sequence's mask, as :func:`_masks` needs them.

    Row i sees j iff ``key[j]`` (the context -1, padding after everything) is below i's own
    place (its rank, + 1 off the targets). Outside the permuted set (targets, <sep>, <cls>) that
    place is 0, so those rows are all one row: a sequence has its permuted rows + 1 distinct
    rows. Returns ``key`` [n, L] and ``place`` [n, W] (the distinct rows' places; W - 1 = most
    permuted tokens in a row), and ``slot`` [n, L]: each row's distinct row (0 outside the set).
    """
    n, length = rank.shape
    small = np.int16 if length < np.iinfo(np.int16).max else np.int32  # halves the compares
    permuted = is_target | is_func  # (real tokens only)
    key = np.where(permuted, rank, np.where(is_real, -1, length + 1)).astype(small)
    flat = np.flatnonzero(permuted)  # row-major: each row's permuted positions in order
    rows = flat // length
    counts = np.bincount(rows, minlength=n)
    slot = np.zeros((n, length), small)
    slot.reshape(-1)[flat] = np.arange(1, flat.size + 1) - np.repeat(np.cumsum(counts) - counts,
                                                                     counts)
    place = np.zeros((n, int(counts.max(initial=0)) + 1), small)
    place.reshape(-1)[rows * place.shape[1] + slot.reshape(-1)[flat]] = (
        rank.reshape(-1)[flat] + ~is_target.reshape(-1)[flat])
    return {"key": key, "place": place, "slot": slot}


def _masks(plan: dict[str, np.ndarray], part: slice, out: np.ndarray | None = None
           ) -> np.ndarray:
    """``can_attend`` bool [b, L, L] of the rows ``part`` of a :func:`_mask_plan`: the distinct
    rows compared once, then copied into place (into ``out`` if given: every byte is written)."""
    key, place, slot = plan["key"][part], plan["place"][part], plan["slot"][part]
    (n, length), width = key.shape, place.shape[1]
    out = np.empty((n, length, length), bool) if out is None else out
    for start in range(0, n, _MASK_ROWS):  # chunks: the distinct rows stay in cache
        rows = slice(start, start + _MASK_ROWS)
        distinct = place[rows, :, None] > key[rows, None, :]
        source = slot[rows] + np.arange(len(distinct))[:, None] * width
        np.take(distinct.reshape(-1, length), source.reshape(-1), axis=0,
                out=out[rows].reshape(-1, length), mode="clip")  # ("raise" would buffer)
    out.reshape(n, -1)[:, ::length + 1] = True
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
    return _predictions(_prediction_plan(token_ids, is_target), slice(0, len(token_ids)),
                        predictions, token_ids.shape[1])


def _prediction_plan(token_ids: np.ndarray, is_target: np.ndarray) -> dict[str, np.ndarray]:
    """Every target's row, position, slot (its rank in the row) and token, row-major."""
    flat = np.flatnonzero(is_target)
    rows = flat // is_target.shape[1]
    counts = np.bincount(rows, minlength=len(is_target))
    return {"row": rows, "position": flat - rows * is_target.shape[1],
            "slot": np.arange(flat.size) - np.repeat(np.cumsum(counts) - counts, counts),
            "token": token_ids.reshape(-1)[flat]}


def _predictions(plan: dict[str, np.ndarray], part: slice, predictions: int, length: int,
                 outputs: _Outputs | None = None) -> dict[str, np.ndarray]:
    """The target rows of the sequences ``part`` (a slice with its start and stop) of a
    :func:`_prediction_plan`; the one-hot rows in a reused array of ``outputs`` if given."""
    n = part.stop - part.start
    lo, hi = np.searchsorted(plan["row"], [part.start, part.stop])
    flat = (plan["row"][lo:hi] - part.start) * predictions + plan["slot"][lo:hi]  # (row, slot)
    ones = flat * length + plan["position"][lo:hi]
    if outputs is None:
        mapping = np.zeros((n, predictions, length), np.float32)
    else:
        mapping = outputs.one_hot("plm_target_mapping", (n, predictions, length), ones)
    mapping.reshape(-1)[ones] = 1.0
    targets = np.zeros((n, predictions), np.int32)
    targets.reshape(-1)[flat] = plan["token"][lo:hi]
    weights = np.zeros((n, predictions), np.float32)
    weights.reshape(-1)[flat] = 1.0
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


def _sampled_rows(token_ids: np.ndarray, type_ids: np.ndarray, positions: np.ndarray,
                  options: PlmOptions, is_start_v: np.ndarray,
                  seed_key: tuple[int, ...]) -> dict[str, np.ndarray | dict]:
    """Every row's XLNet layout, targets and order, all rows at once, as plans that
    :func:`_batch_of` turns into batches."""
    tokens, types = to_xlnet_layout(token_ids, type_ids)
    is_real, is_func, is_word = _token_kinds(tokens)
    entropy = np.empty((len(tokens), len(seed_key) + 1), np.uint64)
    entropy[:, :-1], entropy[:, -1] = np.array(seed_key, np.uint64), positions
    is_target, rank = plm_sampling.targets_and_orders(is_word, is_start_v[tokens],
                                                      _goals(is_word, options), options, entropy)
    return {"token_ids": tokens, "type_ids": types,
            "masks": _mask_plan(rank, is_target, is_func, is_real),
            "predictions": _prediction_plan(tokens, is_target)}


class _Outputs:
    """A stream's large output arrays (the masks, the one-hot target rows), reused once nobody
    else holds them. Fresh 5 to 8 MB arrays each batch cost as much again as filling them (the
    allocator hands the pages back and they come back zeroed, page by page); a reused one is
    warm, and its one-hot rows are cleared by undoing the last batch's ones, not by zeroing it.

    "Nobody else holds it" is CPython's reference count: only this pool's list (and the count's
    own argument), so no batch, view or device copy in flight can see it change. A stream whose
    consumer keeps its batches gets fresh arrays, as before; the pool keeps at most ``_DEPTH``
    of each."""

    _DEPTH = 3

    def __init__(self):
        self._pool: dict[tuple, list[list]] = {}

    def _get(self, name: str, shape: tuple[int, ...], dtype) -> tuple[list, bool]:
        """An entry ``[array, state]`` of ``shape`` that only the pool holds, and whether it
        was reused (False: fresh, uninitialised)."""
        entries = self._pool.setdefault((name, shape), [])
        for i in range(len(entries)):
            if sys.getrefcount(entries[i][0]) == 2:  # the list and getrefcount's argument
                return entries[i], True
        entry = [np.empty(shape, dtype), None]
        if len(entries) < self._DEPTH:
            entries.append(entry)
        return entry, False

    def empty(self, name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An array to be written in full."""
        return self._get(name, shape, dtype)[0][0]

    def one_hot(self, name: str, shape: tuple[int, ...], ones: np.ndarray) -> np.ndarray:
        """float32 zeros of ``shape`` where the caller will set the flat indices ``ones``."""
        entry, reused = self._get(name, shape, np.float32)
        if reused:
            entry[0].reshape(-1)[entry[1]] = 0.0
        else:
            entry[0].fill(0.0)
        entry[1] = ones
        return entry[0]


def _batch_of(rows: dict[str, np.ndarray | dict], start: int, stop: int, predictions: int,
              outputs: _Outputs | None = None) -> dict[str, np.ndarray]:
    """The ``plm`` batch of rows ``start`` to ``stop`` of :func:`_sampled_rows` (its large
    arrays from ``outputs`` if given)."""
    part, length = slice(start, min(stop, len(rows["token_ids"]))), rows["token_ids"].shape[1]
    n = part.stop - part.start
    masks = None if outputs is None else outputs.empty("can_attend", (n, length, length), bool)
    batch = {"token_ids": rows["token_ids"][part].copy(),
             "type_ids": rows["type_ids"][part].copy(),
             "can_attend": _masks(rows["masks"], part, masks),
             **_predictions(rows["predictions"], part, predictions, length, outputs)}
    return {k: batch[k] for k in features.FEATURES["plm"]}


def plm_batch(token_ids: np.ndarray, type_ids: np.ndarray, positions: np.ndarray,
              options: PlmOptions, is_start_v: np.ndarray,
              seed_key: tuple[int, ...]) -> dict[str, np.ndarray]:
    """A ``plm`` batch from BERT-layout pairs; row r's randomness is seeded by
    ``(*seed_key, positions[r])``, its position in the stream. Equal to :func:`plm_example` on
    each row with ``np.random.default_rng([*seed_key, positions[r]])``, built for all rows at
    once (module docstring)."""
    rows = _sampled_rows(token_ids, type_ids, positions, options, is_start_v, seed_key)
    return _batch_of(rows, 0, len(positions), options.instances.max_predictions_per_seq)


def plm_batches(token_ids: np.ndarray, type_ids: np.ndarray, positions: np.ndarray,
                options: PlmOptions, is_start_v: np.ndarray, seed_key: tuple[int, ...],
                rows: int, outputs: _Outputs | None = None) -> Iterator[dict[str, np.ndarray]]:
    """:func:`plm_batch` of each ``rows`` consecutive pairs in turn. Targets and orders are
    sampled for about ``_SAMPLE_ROWS`` pairs at once (the sampling's cost is mostly per call);
    masks and target rows are made batch by batch, in ``outputs``' arrays (a stream's, kept
    from call to call) where the consumer has let go of them."""
    outputs = _Outputs() if outputs is None else outputs
    block = rows * max(1, _SAMPLE_ROWS // rows)
    for start in range(0, len(positions), block):
        part = slice(start, start + block)
        sampled = _sampled_rows(token_ids[part], type_ids[part], positions[part], options,
                                is_start_v, seed_key)
        for i in range(0, len(sampled["token_ids"]), rows):
            yield _batch_of(sampled, i, i + rows, options.instances.max_predictions_per_seq,
                            outputs)


def _word_starts(corpus: pipeline.PretrainingCorpus, options: PlmOptions) -> np.ndarray:
    if options.instances.whole_word_masking:
        return corpus.tokenizer.is_word_start()
    return np.ones(corpus.vocab_size, bool)  # every piece may start or end a span


def _shard_batches(chunks, options: PlmOptions, key: tuple[int, ...], rows: int,
                   is_start_v) -> Iterator[dict[str, np.ndarray]]:
    """Batches of ``rows`` from chunks ``(token_ids, type_ids, nsp_labels, positions)``."""
    outputs = _Outputs()
    for token_ids, type_ids, _, positions in chunks:
        yield from plm_batches(token_ids, type_ids, positions, options, is_start_v, key, rows,
                               outputs)


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
