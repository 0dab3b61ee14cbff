"""Masked-language-model corruption as a tf.data transform (BERT's 15% / 80-10-10 recipe).

Only ``tf.random.stateless_*`` ops are used, so a sequence's masks are a pure function of
``(seed, token_ids)``: the pipeline derives the seed from the sequence's position in the stream,
which makes masks independent of parallelism and reproducible after a restart.

Candidates are the non-special tokens, ids ``>= NUM_SPECIAL_IDS``. Unlike BERT, which excludes only
[CLS] and [SEP], <unk> (id 1) is excluded too: its target carries no information about the text it
replaced, and padding, <s>, </s> must never be predicted anyway.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from data import features

MASK_PROB, RANDOM_PROB = 0.8, 0.1  # The rest (10%) keeps the original token.


def _select_tokens(scores: tf.Tensor, is_candidate: tf.Tensor, k: tf.Tensor) -> tf.Tensor:
    """bool [L]: the ``k`` candidates with the smallest random scores."""
    scores = tf.where(is_candidate, scores, 2.0)  # Scores are in [0, 1): non-candidates sort last.
    ranks = tf.argsort(tf.argsort(scores, stable=True), stable=True)
    return is_candidate & (ranks < k)


def _word_ids(token_ids: tf.Tensor, is_candidate: tf.Tensor,
              is_word_start: np.ndarray) -> tuple[tf.Tensor, tf.Tensor]:
    """Numbers the words of a sequence.

    A word starts at a candidate that is a word-start piece or follows a non-candidate (so a
    continuation piece right after [CLS] or [SEP] starts a word of its own).

    Returns:
      ``word_ids`` int32 [L] (−1 on non-candidates) and ``num_words`` (int32 scalar).
    """
    starts_table = tf.constant(is_word_start, tf.bool)
    after_non_candidate = tf.concat([[True], ~is_candidate[:-1]], axis=0)
    starts = is_candidate & (tf.gather(starts_table, token_ids) | after_non_candidate)
    word_ids = tf.cumsum(tf.cast(starts, tf.int32)) - 1
    return tf.where(is_candidate, word_ids, -1), tf.reduce_sum(tf.cast(starts, tf.int32))


def _select_words(scores: tf.Tensor, token_ids: tf.Tensor, is_candidate: tf.Tensor,
                  k: tf.Tensor, is_word_start: np.ndarray) -> tf.Tensor:
    """bool [L]: whole words, in random order, totalling at most ``k`` tokens.

    The rule is BERT's greedy one: visit words in a random order and take each whole if it still
    fits in the remaining budget; a word that does not fit is skipped and later (shorter) words
    are still tried. Words are never split, so fewer than ``k`` tokens are chosen when no
    remaining word fits the leftover budget.

    Computed in passes rather than word by word (a per-word loop made the pipeline 4x slower):
    each pass takes the longest prefix, in visiting order, of the untaken words that fit the
    remaining budget on their own. This is exactly the greedy result: words longer than the budget
    can never be taken later, since the budget only shrinks, and a pass stops at the first word
    the greedy rule would skip. Passes are few (one per skipped word that is shorter than the
    budget at the time).
    """
    length = tf.shape(token_ids)[0]
    word_ids, num_words = _word_ids(token_ids, is_candidate, is_word_start)
    word_lengths = tf.math.unsorted_segment_sum(
        tf.cast(is_candidate, tf.int32), tf.maximum(word_ids, 0), length)
    is_word = tf.range(length) < num_words
    order = tf.argsort(tf.where(is_word, scores, 2.0), stable=True)  # Words first, shuffled.
    lengths = tf.gather(word_lengths, order)
    exists = tf.gather(is_word, order)

    def eligible(taken, budget):
        return exists & ~taken & (lengths <= budget)

    def one_pass(taken, budget):
        ok = eligible(taken, budget)
        take = ok & (tf.cumsum(tf.where(ok, lengths, 0)) <= budget)
        return taken | take, budget - tf.reduce_sum(tf.where(take, lengths, 0))

    taken, _ = tf.while_loop(lambda taken, budget: tf.reduce_any(eligible(taken, budget)),
                             one_pass, (tf.zeros([length], tf.bool), k))
    chosen = tf.gather(taken, tf.argsort(order))  # Back from visiting order to word ids.
    return is_candidate & tf.gather(chosen, tf.maximum(word_ids, 0))


def mask_tokens(token_ids: tf.Tensor, seed: tf.Tensor, *, max_predictions: int,
                masked_lm_prob: float, vocab_size: int,
                is_word_start: np.ndarray | None = None) -> dict[str, tf.Tensor]:
    """Masks one sequence for MLM.

    ``num_to_predict = min(max_predictions, max(1, round(num_candidates * masked_lm_prob)))``
    (never more than the candidates; round half to even). Each chosen position becomes [MASK] with
    probability 0.8, a uniform random id in ``[NUM_SPECIAL_IDS, vocab_size)`` with 0.1, and stays
    as it is with 0.1.

    Args:
      token_ids: int32 [L] the unmasked sequence.
      seed: int32/int64 [2] stateless seed; the output depends only on it and ``token_ids``.
      max_predictions: ``P``, the fixed number of prediction slots.
      masked_lm_prob: fraction of candidates to predict.
      vocab_size: ``V``; random replacements are drawn below it.
      is_word_start: optional bool [V] (``Tokenizer.is_word_start()``) to mask whole words.

    Returns:
      ``token_ids`` int32 [L] the corrupted input; ``mlm_positions`` int32 [P] chosen positions in
      ascending order; ``mlm_targets`` int32 [P] their original ids; ``mlm_weights`` float32 [P]
      1.0 for a real prediction. Unused slots are 0 / 0 / 0.0.
    """
    token_ids = tf.convert_to_tensor(token_ids, tf.int32)
    length = tf.shape(token_ids)[0]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=3)
    is_candidate = token_ids >= features.NUM_SPECIAL_IDS
    num_candidates = tf.reduce_sum(tf.cast(is_candidate, tf.int32))
    # float64 so that the rounding is exactly Python's round(n * p).
    wanted = tf.cast(tf.round(tf.cast(num_candidates, tf.float64) * masked_lm_prob), tf.int32)
    k = tf.minimum(tf.minimum(max_predictions, tf.maximum(1, wanted)), num_candidates)

    scores = tf.random.stateless_uniform([length], seeds[0])
    if is_word_start is None:
        chosen = _select_tokens(scores, is_candidate, k)
    else:
        chosen = _select_words(scores, token_ids, is_candidate, k, is_word_start)

    return {"token_ids": _corrupt(token_ids, chosen, seeds[1], seeds[2], vocab_size),
            **_predictions(token_ids, chosen, max_predictions)}


def _corrupt(token_ids: tf.Tensor, chosen: tf.Tensor, action_seed: tf.Tensor,
             random_seed: tf.Tensor, vocab_size: int) -> tf.Tensor:
    """int32 [L]: chosen positions → [MASK] (80%), a random id (10%) or unchanged (10%)."""
    length = tf.shape(token_ids)[0]
    action = tf.random.stateless_uniform([length], action_seed)
    random_ids = tf.random.stateless_uniform(
        [length], random_seed, minval=features.NUM_SPECIAL_IDS, maxval=vocab_size, dtype=tf.int32)
    corrupted = tf.where(action < MASK_PROB, features.MASK_ID,
                         tf.where(action < MASK_PROB + RANDOM_PROB, random_ids, token_ids))
    return tf.where(chosen, corrupted, token_ids)


def _predictions(token_ids: tf.Tensor, chosen: tf.Tensor,
                 max_predictions: int) -> dict[str, tf.Tensor]:
    """Chosen positions, their original ids and weights, padded to ``[P]``."""
    positions = tf.cast(tf.where(chosen)[:, 0], tf.int32)  # tf.where lists them ascending.
    num_chosen = tf.shape(positions)[0]
    padding = [[0, max_predictions - num_chosen]]

    def pad(x):
        return tf.ensure_shape(tf.pad(x, padding), [max_predictions])

    return {
        "mlm_positions": pad(positions),
        "mlm_targets": pad(tf.gather(token_ids, positions)),
        "mlm_weights": pad(tf.ones([num_chosen], tf.float32)),
    }
