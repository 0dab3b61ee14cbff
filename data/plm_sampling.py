"""XLNet's random choices for a sequence: which tokens to predict, and the factorisation order.

:func:`sample_targets` and :func:`block_permutation` are XLNet's ``data_utils`` for one sequence
(see ``data/plm.py``'s docstring), drawing from one ``np.random.Generator``.
:func:`targets_and_orders` gives the same for a whole batch, each row with its own generator, at
once:

* the span loop runs for all rows in lockstep (round s places every row's span s) on lookup
  tables of word starts and gaps instead of token-by-token scans;
* its draws come from ``data/pcg64_streams.py``, which reproduces the rows' generators in NumPy
  (a round is ``random()`` for the span's length, then ``integers(context)`` for its offset);
* the rare row whose draw NumPy would reject and redraw (probability about 10⁻⁸ a draw), or
  whose ``integers(1)`` draws nothing (K < 2.5), is redone as written, one row;
* each row's ending (the top-up ``choice``) and permutation (``shuffle``) are NumPy's own calls
  with the row's generator moved to where its rounds left it: one call each.
"""

from __future__ import annotations

import numpy as np

from data import pcg64_streams
from data.options import PlmOptions
from data.pcg64_streams import RowStreams


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


class _SpanTables:
    """Lookups that replace :func:`sample_targets`' token-by-token scans: per row, how many word
    starts (and non-word tokens) precede each position and where the r-th one is, flat int32
    [B·(L + 1)]; each method looks up one index per row (int [B], at most L)."""

    def __init__(self, is_word: np.ndarray, is_start: np.ndarray):
        n, self._length = is_word.shape
        self._row = np.arange(n) * (self._length + 1)
        self._starts_before, self._start = self._ranked(is_word & is_start)
        self._gaps_before, self._gap = self._ranked(~is_word)

    def _ranked(self, flag: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n, length = flag.shape
        before = np.zeros((n, length + 1), np.int32)
        np.cumsum(flag, 1, dtype=np.int32, out=before[:, 1:])
        before = before.reshape(-1)
        at = np.full(n * (length + 1), length, np.int32)
        flat = np.flatnonzero(flag)  # (faster than a 2-D nonzero)
        rows = flat // length
        at[rows * (length + 1) + before[flat + rows]] = flat - rows * length
        return before, at

    def next_start(self, i: np.ndarray) -> np.ndarray:
        """The first word start at or after i (L if none)."""
        return self._start[self._row + self._starts_before[self._row + i]]

    def span_end(self, beg: np.ndarray, words: np.ndarray) -> np.ndarray:
        """Just past ``words`` words from the word start ``beg``: the ``words``-th word start
        after it or the first non-word token after it, whichever comes first (L if none)."""
        after = np.minimum(self._starts_before[self._row + beg] + words, self._length)
        gap = self._gap[self._row + self._gaps_before[self._row + np.minimum(beg + 1,
                                                                            self._length)]]
        return np.minimum(self._start[self._row + after], gap)


def _sample_spans(streams: RowStreams, is_word: np.ndarray, is_start: np.ndarray,
                  goal: np.ndarray, options: PlmOptions
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`sample_targets`' span loop for every row at once, in lockstep (round s = span s
    of every row still going), with the draws each row's own generator makes.

    Returns:
      ``(spans bool [B, L]`` before the truncation to ``goal`` and the top-up, ``rounds`` int
      [B] drawn, ``exact`` bool [B]: False where a draw was one NumPy rejects (module docstring of
      ``data.pcg64_streams``); such rows are redone one by one).
    """
    n, length = is_word.shape
    k, max_span = options.plm_k, options.plm_max_span
    cdf = _span_length_probs(max_span).cumsum()  # as Generator.choice(p=…) does
    cdf /= cdf[-1]
    context_of = np.array([1] + [max(int(round(w * (k - 1))), 1) for w in range(1, max_span + 1)])
    uniform, draw32 = streams.rounds()
    drawn_words = np.searchsorted(cdf, uniform, side="right") + 1
    tables, row = _SpanTables(is_word, is_start), np.arange(n)
    cur = np.where(is_word.any(1), is_word.argmax(1), length)
    count, rounds = np.zeros(n, np.int64), np.zeros(n, np.int64)
    exact = np.ones(n, bool)
    begs, ends = np.full((2, n, uniform.shape[1]), length)
    going = cur < length
    for s in range(uniform.shape[1]):  # a row stops within P + 1 rounds
        if not going.any():
            break
        rounds += going
        words = np.minimum(drawn_words[:, s], np.maximum(goal - count, 1))
        context = context_of[words]
        left, fits = pcg64_streams.lemire(draw32[:, s], context)
        exact &= fits | ~going
        beg = tables.next_start(np.minimum(cur + left, length))
        going &= beg < length  # else the row is done
        end = tables.span_end(beg, words)
        begs[:, s], ends[:, s] = np.where(going, beg, length), np.where(going, end, length)
        count += np.where(going, end - beg, 0)
        cur = np.where(going, end + context - left, cur)
        going &= (cur < length) & (count < goal)
    edges = np.zeros((n, length + 1), np.int8)  # +1 at each span's start, -1 after its end
    edges[row[:, None], begs], edges[row[:, None], ends] = 1, -1  # (column L: no span)
    return edges.cumsum(1, dtype=np.int16)[:, :length] > 0, rounds, exact


def _top_up_and_shuffle(streams: RowStreams, rounds: np.ndarray, is_word: np.ndarray,
                        is_target: np.ndarray, goal: np.ndarray, shuffles: np.ndarray,
                        rows: np.ndarray) -> None:
    """:func:`sample_targets`' ending and :func:`block_permutation`'s shuffle for ``rows``, one
    by one with each row's generator after its rounds (NumPy's own ``choice`` and ``shuffle``:
    one call each). Fills ``is_target`` [B, L] and ``shuffles`` [B, perm_size] in place."""
    kept = is_target[rows] & (is_target[rows].cumsum(1) <= goal[rows, None])
    is_target[rows] = kept  # a long last word may overshoot the goal
    short = dict(zip(rows.tolist(), (goal[rows] - kept.sum(1)).tolist(), strict=True))
    for row, rng in streams.generators(rows, rounds):
        if short[row]:
            free = np.flatnonzero(is_word[row] & ~is_target[row])
            if free.size:  # (a choice of 0 draws nothing)
                is_target[row, rng.choice(free, min(short[row], free.size), replace=False)] = True
        rng.shuffle(shuffles[row])


def targets_and_orders(is_word: np.ndarray, is_start: np.ndarray, goal: np.ndarray,
                       options: PlmOptions, entropy: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`sample_targets` then :func:`block_permutation` for every row, with row r's
    generator ``np.random.default_rng(entropy[r])``, built for all rows at once (module
    docstring).

    Args:
      is_word, is_start: bool [B, L], as :func:`sample_targets`'.
      goal: int [B], tokens to predict.
      options: ``plm_k``, ``plm_max_span``, ``perm_size`` and P, ``max_predictions_per_seq``.
      entropy: uint64 [B, E], each row's seed.

    Returns:
      ``(is_target bool [B, L], rank int [B, L])``.
    """
    n, length = is_word.shape
    perm_size = options.perm_size or length
    if length % perm_size:
        raise ValueError(f"max_seq_length {length} is not a multiple of perm_size {perm_size}")
    streams = RowStreams(entropy, options.instances.max_predictions_per_seq + 1)
    is_target, rounds, exact = _sample_spans(streams, is_word, is_start, goal, options)
    shuffles = np.tile(np.arange(perm_size), (n, 1))  # shuffled in place: permutation(perm_size)
    _top_up_and_shuffle(streams, rounds, is_word, is_target, goal, shuffles, np.flatnonzero(exact))
    for row in np.flatnonzero(~exact):  # a rejected draw: redo the row as written
        rng = np.random.default_rng(entropy[row].tolist())
        is_target[row] = sample_targets(is_word[row], is_start[row], int(goal[row]),
                                        options.plm_k, options.plm_max_span, rng)
        shuffles[row] = rng.permutation(perm_size)
    blocks = np.arange(0, length, perm_size)
    return is_target, (blocks[None, :, None] + shuffles[:, None, :]).reshape(n, length)
