"""Tests for data/clm.py: schema, packing and boundaries, determinism, resumption, sharding."""

import itertools

import numpy as np
import pytest

from data import clm, features, pipeline

B, L = 4, 32


def _take(opts, n, split="train", **kwargs):
    kwargs = {"batch_size": B, "seed": 0, **kwargs}
    return list(itertools.islice(clm.make_dataset(opts.corpus, opts.clm, split, **kwargs), n))


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    """Twelve short documents: an epoch is a handful of rows, so epochs end quickly."""
    path = tmp_path_factory.mktemp("tiny_clm") / "tiny.txt"
    docs = ["\n".join(f"Document {d} has sentence {s} about the sea." for s in range(1 + d % 4))
            for d in range(12)]
    path.write_text("\n\n".join(docs) + "\n")
    return str(path)


def test_schema_train_and_eval(fixture_corpus, data_options):
    opts = data_options(fixture_corpus, max_seq_length=L)
    want = {k: (shape, dtype) for k, (shape, dtype) in features.shapes("clm", B=B, L=L).items()}
    for split in ("train", "eval"):
        batch = _take(opts, 1, split)[0]
        assert {k: (v.shape, str(v.dtype)) for k, v in batch.items()} == want


def test_row_features_by_hand():
    # Documents 7 8 9 </s> | 10 11 </s>, then padding; the first piece is cut off a longer doc.
    tokens = np.array([[7, 8, 9, 6, 10, 11, 6, 0]])
    index = np.array([[0, 0, 0, 0, 1, 1, 1, -1]])
    out = clm.row_features(tokens, index)
    np.testing.assert_array_equal(out["segment_ids"], [[1, 1, 1, 1, 2, 2, 2, 0]])
    np.testing.assert_array_equal(out["positions"], [[0, 1, 2, 3, 0, 1, 2, 0]])
    np.testing.assert_array_equal(out["clm_targets"], [[8, 9, 6, 0, 11, 6, 0, 0]])
    np.testing.assert_array_equal(out["clm_weights"], [[1, 1, 1, 0, 1, 1, 0, 0]])


def _check_boundaries(batch):
    tok, seg, pos = batch["token_ids"], batch["segment_ids"], batch["positions"]
    w, tgt = batch["clm_weights"], batch["clm_targets"]
    assert (w[:, -1] == 0).all()
    rows, cols = np.nonzero(w)
    np.testing.assert_array_equal(seg[rows, cols + 1], seg[rows, cols])
    np.testing.assert_array_equal(tgt[rows, cols], tok[rows, cols + 1])
    assert (seg[rows, cols] > 0).all()
    assert (w[tok == features.EOS_ID] == 0).all()  # </s> never predicts the next document
    assert (w[seg == 0] == 0).all() and (tok[seg == 0] == features.PAD_ID).all()
    starts = np.diff(seg, axis=1, prepend=0) != 0
    assert (pos[starts] == 0).all()
    inside = ~starts & (seg > 0)
    assert (pos[inside] == np.roll(pos, 1, axis=1)[inside] + 1).all()


def test_weights_are_zero_across_boundaries(fixture_corpus, data_options):
    opts = data_options(fixture_corpus, max_seq_length=L)
    train = _take(opts, 3)
    for batch in train + _take(opts, 100, "eval"):
        _check_boundaries(batch)
    assert sum(b["clm_weights"].sum() for b in train) > 0.9 * 3 * B * L  # packing wastes little


def test_every_token_appears_once_per_epoch(tiny_corpus, data_options):
    opts = data_options(tiny_corpus, max_seq_length=16, eval_fraction=0.2)
    corpus = pipeline.load_corpus(opts.corpus)
    per_epoch = clm.rows_per_epoch(corpus.train_docs, 16)
    rows = clm._epoch_rows(corpus.train_docs, 16, seed=0, epoch=0, shard=0)
    assert len(rows["token_ids"]) == per_epoch
    counts = np.bincount(rows["token_ids"].ravel(), minlength=corpus.vocab_size)
    expected = clm.unigram_counts(corpus)
    assert (counts <= expected).all() and expected.sum() - counts.sum() < 16


def test_same_seed_same_batches_other_seed_differs(tiny_corpus, data_options):
    opts = data_options(tiny_corpus, max_seq_length=16, eval_fraction=0.2)
    a, b, c = _take(opts, 6), _take(opts, 6), _take(opts, 6, seed=1)
    for x, y in zip(a, b, strict=True):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k])
    assert any((x["token_ids"] != z["token_ids"]).any() for x, z in zip(a, c, strict=True))


def test_resume_matches_uninterrupted_stream(tiny_corpus, data_options):
    opts = data_options(tiny_corpus, max_seq_length=16, eval_fraction=0.2)
    corpus = pipeline.load_corpus(opts.corpus)
    assert clm.rows_per_epoch(corpus.train_docs, 16) < 5 * B  # the stream crosses epochs
    straight = _take(opts, 8)
    for skip in (1, 3, 5):
        resumed = _take(opts, 8 - skip, start_position=skip * B)
        for x, y in zip(straight[skip:], resumed, strict=True):
            for k in x:
                np.testing.assert_array_equal(x[k], y[k], err_msg=f"skip {skip}, {k}")


def test_two_processes_give_the_single_process_global_batch(fixture_corpus, data_options):
    opts = data_options(fixture_corpus, max_seq_length=L, num_shards=2)
    whole = _take(opts, 2, batch_size=2 * B)
    parts = [_take(opts, 2, process_index=i, process_count=2) for i in range(2)]
    for step in range(2):
        for k in whole[step]:
            np.testing.assert_array_equal(
                whole[step][k], np.concatenate([parts[0][step][k], parts[1][step][k]]))


def test_unigram_log_probs_count_eos(fixture_corpus, data_options):
    corpus = pipeline.load_corpus(data_options(fixture_corpus).corpus)
    counts = clm.unigram_counts(corpus)
    assert counts[features.EOS_ID] == len(corpus.train_docs)
    log_probs = clm.unigram_log_probs_from_counts(counts)
    assert np.exp(log_probs.astype(np.float64)).sum() == pytest.approx(1.0, abs=1e-5)
    assert log_probs[features.EOS_ID] == pytest.approx(
        np.log((counts[features.EOS_ID] + 0.5) / (counts[features.NUM_SPECIAL_IDS:].sum() +
                                                  0.5 * (len(counts) - 7) +
                                                  counts[features.EOS_ID] + 0.5 + 6e-6)), rel=1e-4)
