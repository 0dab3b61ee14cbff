"""T5 span corruption and BART sentence permutation: T5's mask semantics, exact reconstruction,
sentinel order, shapes and determinism, and the unigram baseline."""

import numpy as np
import pytest

from data import denoising, features

SENTINELS = np.arange(1000, 1100, dtype=np.int32)  # ids no document below uses
EOS = features.EOS_ID


def _docs(n=40, seed=0):
    rng = np.random.default_rng(seed)
    return [[rng.integers(10, 900, rng.integers(3, 30)).astype(np.int32)
             for _ in range(rng.integers(1, 8))] for _ in range(n)]


def test_mask_counts_follow_t5_rounding():
    rng = np.random.default_rng(0)
    for length in (2, 7, 20, 113, 568):
        masks = denoising.random_spans_noise_mask(length, 0.15, 3.0, rng, rows=50)
        noise = min(max(round(length * 0.15), 1), length - 1)
        spans = max(round(noise / 3.0), 1)
        assert (masks.sum(1) == noise).all()
        starts = masks & ~np.pad(masks, ((0, 0), (1, 0)))[:, :-1]
        assert (starts.sum(1) == spans).all()
        assert not masks[:, 0].any() and masks[:, -1].all()  # non-noise first, noise last


def test_span_lengths_average_three_and_density_fifteen_percent():
    rng = np.random.default_rng(1)
    masks = denoising.random_spans_noise_mask(568, 0.15, 3.0, rng, rows=2000)
    density = masks.mean()
    starts = (masks & ~np.pad(masks, ((0, 0), (1, 0)))[:, :-1]).sum()
    assert density == pytest.approx(0.15, abs=0.001)  # 85/568 per row exactly
    assert masks.sum() / starts == pytest.approx(3.0, abs=0.05)
    # Spans are placed uniformly: every interior position is noise about as often.
    assert masks[:, 50:-50].mean(0).std() < 0.02


def _reconstruct(inputs, targets):
    """Undo span corruption: each input sentinel takes the target tokens after that sentinel."""
    spans, current = {}, None
    for t in targets[:-1]:
        if t in SENTINELS:
            current = int(t)
            spans[current] = []
        else:
            spans[current].append(int(t))
    out = []
    for t in inputs[:-1]:
        out += spans[int(t)] if t in SENTINELS else [int(t)]
    return out


def test_inputs_and_targets_reconstruct_the_text_with_sentinels_in_order():
    batches = denoising.span_corruption_batches(_docs(), batch_size=4, inputs_length=64,
                                                sentinels=SENTINELS, eos_id=EOS, seed=3)
    tokens_length, lt = denoising.random_spans_helper(64)
    docs = _docs()
    order = np.random.default_rng([denoising._SPAN_TAG, 3, 0]).permutation(len(docs))
    flat = np.concatenate([np.concatenate(docs[i]) for i in order])  # epoch 0's stream
    seen = []
    for batch, _ in zip(batches, range(5), strict=False):
        assert batch["encoder_input_ids"].shape == (4, 64)
        assert batch["decoder_target_ids"].shape == (4, lt)
        for row in range(4):
            inputs = batch["encoder_input_ids"][row]
            targets = batch["decoder_target_ids"][row][batch["decoder_weights"][row] > 0]
            assert (batch["encoder_segment_ids"][row] == 1).all()  # inputs fill Ls exactly
            assert inputs[-1] == EOS and targets[-1] == EOS
            used = [t for t in inputs if t in SENTINELS]
            assert used == list(SENTINELS[:len(used)])  # sentinel 0, 1, … in order
            assert [t for t in targets if t in SENTINELS] == used
            seen.append(_reconstruct(inputs, targets))
            assert len(seen[-1]) == tokens_length
    seen = np.concatenate(seen)
    np.testing.assert_array_equal(seen, flat[:len(seen)])  # exactly the text, in order


def test_eval_pass_is_the_documents_in_order():
    docs = _docs(10)
    flat = np.concatenate([np.concatenate(d) for d in docs])
    tokens_length, _ = denoising.random_spans_helper(32)
    rows = []
    for batch in denoising.span_corruption_batches(docs, batch_size=2, inputs_length=32,
                                                   sentinels=SENTINELS, eos_id=EOS, seed=0,
                                                   endless=False):
        for r in range(2):
            w = batch["decoder_weights"][r] > 0
            rows += _reconstruct(batch["encoder_input_ids"][r], batch["decoder_target_ids"][r][w])
    assert len(rows) == len(flat) // (2 * tokens_length) * 2 * tokens_length
    np.testing.assert_array_equal(rows, flat[:len(rows)])


def test_batches_are_deterministic_given_the_seed_and_differ_across_seeds():
    def first(seed):
        return next(denoising.span_corruption_batches(_docs(), batch_size=3, inputs_length=48,
                                                      sentinels=SENTINELS, eos_id=EOS,
                                                      seed=seed))
    a, b, c = first(5), first(5), first(6)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["encoder_input_ids"], c["encoder_input_ids"])


def test_decoder_inputs_are_targets_shifted_right_from_start_id_zero():
    batch = next(denoising.span_corruption_batches(_docs(), batch_size=2, inputs_length=40,
                                                   sentinels=SENTINELS, eos_id=EOS, seed=0))
    np.testing.assert_array_equal(batch["decoder_input_ids"][:, 0], 0)
    w = batch["decoder_weights"] > 0
    shifted = batch["decoder_input_ids"][:, 1:][w[:, 1:]]
    np.testing.assert_array_equal(shifted, batch["decoder_target_ids"][:, :-1][w[:, 1:]])
    for key, (shape, dtype) in features.shapes("seq2seq", B=2, S=40,
                                               T=denoising.random_spans_helper(40)[1]).items():
        assert batch[key].shape == shape and batch[key].dtype == dtype


def test_too_few_sentinels_is_an_error():
    with pytest.raises(ValueError, match="sentinels"):
        next(denoising.span_corruption_batches(_docs(), batch_size=1, inputs_length=512,
                                               sentinels=SENTINELS[:3], eos_id=EOS, seed=0))


def test_sentence_permutation_shuffles_sentences_and_targets_keep_the_order():
    docs = _docs(30)
    windows = {tuple(np.concatenate(w)) for w in denoising.sentence_windows(docs, 63)}
    batches = list(denoising.sentence_permutation_batches(
        docs, batch_size=4, source_length=64, target_length=64, eos_id=EOS, seed=0,
        endless=False))
    permuted = 0
    for batch in batches:
        for r in range(4):
            n = int(batch["decoder_weights"][r].sum())
            if not n:
                continue
            target = batch["decoder_target_ids"][r, :n]
            source = batch["encoder_input_ids"][r][batch["encoder_segment_ids"][r] > 0]
            assert target[-1] == EOS and source[-1] == EOS
            assert tuple(target[:-1]) in windows
            assert sorted(source[:-1]) == sorted(target[:-1])  # same tokens, reordered
            permuted += not np.array_equal(source, target)
    assert sum(int(b["decoder_weights"].any(1).sum()) for b in batches) == len(windows)
    assert permuted > len(windows) / 3


def test_sentence_permutation_with_span_masking_uses_one_mask_per_span():
    batch = next(denoising.sentence_permutation_batches(
        _docs(), batch_size=4, source_length=64, target_length=64, eos_id=EOS, seed=1,
        mask_id=features.MASK_ID, noise_density=0.3))
    src = batch["encoder_input_ids"]
    assert (src == features.MASK_ID).any()
    assert not ((src[:, 1:] == features.MASK_ID) & (src[:, :-1] == features.MASK_ID)).any()
    assert batch["encoder_segment_ids"].sum() < batch["decoder_weights"].sum()


def test_unigram_baseline_is_the_entropy_of_the_targets_under_their_own_counts():
    batch = next(denoising.span_corruption_batches(_docs(), batch_size=8, inputs_length=64,
                                                   sentinels=SENTINELS, eos_id=EOS, seed=0))
    log_probs = denoising.target_unigram_log_probs([batch], 1100)
    assert np.exp(log_probs).sum() == pytest.approx(1.0, abs=1e-4)
    ids = batch["decoder_target_ids"][batch["decoder_weights"] > 0]
    counts = np.bincount(ids, minlength=1100) + 0.5
    p = counts / counts.sum()
    want = -np.mean(np.log(p[ids]))
    assert denoising.unigram_baseline_loss(batch, log_probs) == pytest.approx(want, rel=1e-5)
    assert 0 < want < np.log(1100)
