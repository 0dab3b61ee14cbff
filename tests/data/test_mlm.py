"""Tests for data/mlm.py: counts, 80/10/10 proportions, targets, whole words, determinism."""

import numpy as np
import pytest
import tensorflow as tf

from data import features, mlm

V = 1000
L = 64
N = 1500  # Sequences per statistics sample.


def _sequences(n, seed=0):
    """int32 [n, L]: [CLS] text [SEP] text [SEP], some <unk>, random padding."""
    rng = np.random.default_rng(seed)
    x = rng.integers(features.NUM_SPECIAL_IDS, V, size=(n, L)).astype(np.int32)
    x[rng.random((n, L)) < 0.03] = features.UNK_ID
    x[:, 0] = features.CLS_ID
    x[:, 20] = features.SEP_ID
    for row, used in zip(x, rng.integers(24, L + 1, size=n), strict=True):
        row[used - 1] = features.SEP_ID
        row[used:] = features.PAD_ID
    return x


def _mask_all(x, *, max_predictions, seed=0, is_word_start=None, prob=0.15):
    """Masks every row of ``x`` with seeds (seed, row); returns a dict of numpy arrays [n, ...]."""
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(len(x))))
    ds = ds.map(lambda t, i: mlm.mask_tokens(
        t, tf.stack([tf.constant(seed, tf.int64), i]), max_predictions=max_predictions,
        masked_lm_prob=prob, vocab_size=V, is_word_start=is_word_start))
    batches = list(ds.batch(len(x)).as_numpy_iterator())
    return batches[0]


def _expected_counts(x, max_predictions, prob=0.15):
    candidates = (x >= features.NUM_SPECIAL_IDS).sum(axis=1)
    return np.minimum(np.minimum(max_predictions, np.maximum(1, np.round(candidates * prob))),
                      candidates)


@pytest.fixture(scope="module")
def sample():
    x = _sequences(N)
    return x, _mask_all(x, max_predictions=L)


def test_number_of_predictions(sample):
    x, out = sample
    counts = out["mlm_weights"].sum(axis=1)
    np.testing.assert_array_equal(counts, _expected_counts(x, L))
    candidates = (x >= features.NUM_SPECIAL_IDS).sum()
    # Rounding is the only deviation from 15%: at most half a token per sequence.
    assert abs(counts.sum() / candidates - 0.15) <= 0.5 * N / candidates


def test_positions_targets_weights(sample):
    x, out = sample
    rows = zip(x, out["mlm_positions"], out["mlm_targets"], out["mlm_weights"], out["token_ids"],
               strict=True)
    for row, pos, tgt, w, masked in rows:
        n = int(w.sum())
        assert set(np.unique(w)) <= {0.0, 1.0} and np.all(w[:n] == 1) and np.all(w[n:] == 0)
        assert np.all(np.diff(pos[:n]) > 0)  # Ascending, no repeats.
        assert np.all(pos[n:] == 0) and np.all(tgt[n:] == 0)
        np.testing.assert_array_equal(tgt[:n], row[pos[:n]])
        assert np.all(row[pos[:n]] >= features.NUM_SPECIAL_IDS)  # Never a special token.
        untouched = np.ones(L, bool)
        untouched[pos[:n]] = False
        np.testing.assert_array_equal(masked[untouched], row[untouched])


def test_80_10_10(sample):
    x, out = sample
    n = out["mlm_weights"].astype(bool)
    rows = np.nonzero(n)[0]
    new = out["token_ids"][rows, out["mlm_positions"][n]]
    old = out["mlm_targets"][n]
    is_mask = new == features.MASK_ID
    is_random = ~is_mask & (new != old)
    total = len(new)
    tol = 4 * np.sqrt(0.8 * 0.2 / total)  # 4 standard deviations of a proportion.
    assert abs(is_mask.mean() - 0.8) < tol, is_mask.mean()
    # A random replacement equals the original with probability 1 / (V - NUM_SPECIAL_IDS).
    p_random = 0.1 * (1 - 1 / (V - features.NUM_SPECIAL_IDS))
    assert abs(is_random.mean() - p_random) < tol, is_random.mean()
    assert np.all(new[is_random] >= features.NUM_SPECIAL_IDS) and np.all(new < V)


def test_max_predictions_cap_and_no_candidates():
    x = _sequences(50)
    out = _mask_all(x, max_predictions=3)
    assert out["mlm_positions"].shape == (50, 3)
    np.testing.assert_array_equal(out["mlm_weights"].sum(axis=1), _expected_counts(x, 3))
    only_specials = np.array([[features.CLS_ID, features.SEP_ID, features.UNK_ID] + [0] * 5],
                             np.int32)
    out = _mask_all(only_specials, max_predictions=4)
    assert out["mlm_weights"].sum() == 0
    np.testing.assert_array_equal(out["token_ids"], only_specials)


def test_depends_only_on_seed_and_input():
    x = _sequences(20)
    a = _mask_all(x, max_predictions=10, seed=1)
    b = _mask_all(x, max_predictions=10, seed=1)
    c = _mask_all(x, max_predictions=10, seed=2)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["mlm_positions"], c["mlm_positions"])
    single = mlm.mask_tokens(tf.constant(x[3]), tf.constant([1, 3], tf.int64), max_predictions=10,
                             masked_lm_prob=0.15, vocab_size=V)
    np.testing.assert_array_equal(single["token_ids"].numpy(), a["token_ids"][3])


def _words(row, starts):
    """Word spans ``(begin, end)`` of the candidate tokens, as mlm.py defines words."""
    spans, begin = [], None
    for i, t in enumerate(row):
        candidate = t >= features.NUM_SPECIAL_IDS
        if begin is not None and (not candidate or starts[t]):
            spans.append((begin, i))
            begin = None
        if candidate and begin is None:
            begin = i
    if begin is not None:
        spans.append((begin, len(row)))
    return spans


def test_whole_word_masking():
    starts = np.random.default_rng(1).random(V) < 0.6  # About 1.7 pieces per word.
    starts[:features.NUM_SPECIAL_IDS] = False
    x = _sequences(400, seed=3)
    out = _mask_all(x, max_predictions=12, is_word_start=starts)
    want = _expected_counts(x, 12)
    for row, pos, w, k in zip(x, out["mlm_positions"], out["mlm_weights"], want, strict=True):
        chosen = set(pos[:int(w.sum())].tolist())
        left = k - len(chosen)
        assert left >= 0
        for begin, end in _words(row, starts):
            span = set(range(begin, end))
            assert span <= chosen or not span & chosen  # Never part of a word.
            # Greedy rule: a word left out did not fit the budget that was left.
            assert span <= chosen or end - begin > left
    fraction = out["mlm_weights"].sum() / want.sum()
    assert 0.9 < fraction <= 1.0, fraction


def _greedy_reference(row, starts, scores, k):
    """BERT's word loop: visit words by ascending score, take each whole if it still fits."""
    spans = _words(row, starts)
    chosen = set()
    for w in np.argsort(scores[:len(spans)], kind="stable"):
        begin, end = spans[w]
        if len(chosen) + end - begin <= k:
            chosen.update(range(begin, end))
    return chosen


def test_word_selection_equals_greedy_loop():
    rng = np.random.default_rng(4)
    starts = rng.random(V) < 0.4  # Long words, so that skips and retries happen.
    starts[:features.NUM_SPECIAL_IDS] = False
    for row in _sequences(60, seed=5):
        scores = rng.random(L).astype(np.float32)
        k = int(rng.integers(1, 15))
        got = mlm._select_words(tf.constant(scores), tf.constant(row),
                                tf.constant(row >= features.NUM_SPECIAL_IDS), tf.constant(k),
                                starts)
        want = _greedy_reference(row, starts, scores, k)
        assert set(np.flatnonzero(got.numpy()).tolist()) == want
