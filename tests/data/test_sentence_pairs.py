"""Tests for data/sentence_pairs.py on synthetic documents whose tokens name their sentence."""

import numpy as np
import pytest

from data import features, sentence_pairs


def _one_token_docs(num_docs, sentences_per_doc):
    """Every sentence is one token whose id is unique: 7 + global sentence number.

    One-token sentences make chunks hit their target exactly, so no pair is ever truncated and
    every instance can be traced back to the sentences it came from.
    """
    docs, next_id = [], features.NUM_SPECIAL_IDS
    for n in sentences_per_doc[:num_docs]:
        docs.append([np.array([next_id + i], np.int32) for i in range(n)])
        next_id += n
    return docs


def _split(row):
    """``[CLS] A [SEP] B [SEP] 0...`` → (A, B), checking the layout on the way."""
    seps = np.flatnonzero(row == features.SEP_ID)
    assert row[0] == features.CLS_ID and len(seps) == 2
    assert np.all(row[seps[1] + 1:] == features.PAD_ID)
    return row[1:seps[0]], row[seps[0] + 1:seps[1]]


def test_layout_and_type_ids():
    rng = np.random.default_rng(0)
    docs = [[rng.integers(7, 100, size=rng.integers(1, 15)).astype(np.int32) for _ in range(30)]
            for _ in range(6)]
    out = sentence_pairs.make_instances(docs, np.random.default_rng(1), max_seq_length=48)
    assert out["token_ids"].dtype == out["type_ids"].dtype == out["nsp_labels"].dtype == np.int32
    for row, types in zip(out["token_ids"], out["type_ids"], strict=True):
        a, b = _split(row)
        assert len(a) >= 1 and len(b) >= 1
        want = np.zeros_like(types)
        want[2 + len(a):3 + len(a) + len(b)] = 1
        np.testing.assert_array_equal(types, want)


def test_every_sentence_used_once_and_next_is_real():
    sizes = np.random.default_rng(2).integers(1, 60, size=40)
    docs = _one_token_docs(40, sizes)
    doc_of = {int(s[0]): d for d, doc in enumerate(docs) for s in doc}
    out = sentence_pairs.make_instances(docs, np.random.default_rng(3), max_seq_length=20)
    own = []
    for row, label in zip(out["token_ids"], out["nsp_labels"], strict=True):
        a, b = _split(row)
        assert np.all(np.diff(a) == 1) and np.all(np.diff(b) == 1)  # Contiguous sentences.
        own.extend(a.tolist())
        if label == sentence_pairs.IS_NEXT:
            assert b[0] == a[-1] + 1 and doc_of[int(a[0])] == doc_of[int(b[-1])]
            own.extend(b.tolist())
        else:
            assert doc_of[int(b[0])] != doc_of[int(a[0])]
    # Unused sentences go back to the document, so each sentence is used exactly once as A or B.
    assert sorted(own) == list(range(features.NUM_SPECIAL_IDS, features.NUM_SPECIAL_IDS +
                                     sum(sizes)))


def test_nsp_labels_are_balanced():
    docs = _one_token_docs(50, [200] * 50)
    last = {int(doc[-1][0]) for doc in docs}
    out = sentence_pairs.make_instances(docs, np.random.default_rng(4), max_seq_length=32)
    forced = np.array([len(a) == 1 and int(a[0]) in last
                       for a, _ in map(_split, out["token_ids"])])
    labels = out["nsp_labels"][~forced]
    assert np.all(out["nsp_labels"][forced] == sentence_pairs.IS_RANDOM)
    # Each unforced label is a fair coin: 4 standard deviations of the mean.
    assert abs(labels.mean() - 0.5) < 4 * np.sqrt(0.25 / len(labels)), (labels.mean(), len(labels))


def test_short_sequences_appear():
    docs = _one_token_docs(200, [300] * 200)
    out = sentence_pairs.make_instances(docs, np.random.default_rng(5), max_seq_length=64,
                                        short_seq_prob=0.5)
    lengths = (out["token_ids"] != 0).sum(axis=1)
    assert (lengths < 64).mean() > 0.3 and lengths.max() == 64


def test_long_sentences_are_truncated():
    docs = [[np.arange(7, 307, dtype=np.int32)],
            [np.full(5, 9, np.int32), np.full(250, 8, np.int32)]]
    out = sentence_pairs.make_instances(docs, np.random.default_rng(6), max_seq_length=32)
    assert len(out["nsp_labels"]) >= 2
    for row in out["token_ids"]:
        a, b = _split(row)
        assert len(a) + len(b) == 29 and len(a) >= 1 and len(b) >= 1


def _bert_truncation_lengths(la, lb, budget):
    """Lengths after BERT's one-token-at-a-time loop (which side shrinks is deterministic)."""
    while la + lb > budget:
        if la > lb:
            la -= 1
        else:
            lb -= 1
    return la, lb


@pytest.mark.parametrize("la,lb,budget", [(10, 3, 8), (3, 10, 8), (9, 9, 7), (50, 48, 5),
                                          (1, 300, 125), (4, 4, 8), (7, 2, 4)])
def test_truncate_pair_matches_bert_lengths(la, lb, budget):
    rng = np.random.default_rng(7)
    a, b = np.arange(la), np.arange(100, 100 + lb)
    ta, tb = sentence_pairs.truncate_pair(a, b, budget, rng)
    assert (len(ta), len(tb)) == _bert_truncation_lengths(la, lb, budget)
    # What is left is a contiguous slice of each side.
    assert np.all(np.diff(ta) == 1) and np.all(np.diff(tb) == 1)


def test_truncate_pair_cuts_both_ends():
    rng = np.random.default_rng(8)
    starts = {int(sentence_pairs.truncate_pair(np.arange(40), np.arange(2), 12, rng)[0][0])
              for _ in range(50)}
    # 30 tokens go, each from the front with probability 1/2: starts spread around 15.
    assert min(starts) < 13 and max(starts) > 17


def test_deterministic_for_a_seed():
    docs = _one_token_docs(20, [30] * 20)
    one = sentence_pairs.make_instances(docs, np.random.default_rng(9), max_seq_length=16)
    two = sentence_pairs.make_instances(docs, np.random.default_rng(9), max_seq_length=16)
    other = sentence_pairs.make_instances(docs, np.random.default_rng(10), max_seq_length=16)
    for k in one:
        np.testing.assert_array_equal(one[k], two[k])
    assert not np.array_equal(one["nsp_labels"], other["nsp_labels"])


def test_single_document_and_empty_input():
    out = sentence_pairs.make_instances(_one_token_docs(1, [10]), np.random.default_rng(0),
                                        max_seq_length=8)
    assert len(out["nsp_labels"]) >= 1
    empty = sentence_pairs.make_instances([], np.random.default_rng(0), max_seq_length=8)
    assert empty["token_ids"].shape == (0, 8) and empty["nsp_labels"].shape == (0,)
