"""Sentence-order prediction and shuffled-segment order recovery: labels, layout, pipeline."""

import itertools
import math

import numpy as np
import pytest

from data import features, pipeline, sentence_order
from data.sentence_order import class_to_permutation, num_order_classes, permutation_to_class

B = 8


def _counting_docs(num_docs=40, seed=0):
    """Documents whose tokens count up by one (across sentence ends), so a passage is in its
    original order exactly when its tokens are consecutive."""
    rng = np.random.default_rng(seed)
    docs, start = [], 1000
    for _ in range(num_docs):
        doc = []
        for _ in range(int(rng.integers(1, 9))):
            n = int(rng.integers(1, 12))
            doc.append(np.arange(start, start + n, dtype=np.int32))
            start += n
        docs.append(doc)
        start += 100  # a gap between documents
    return docs


def _segments(row):
    """The segments of one ``[CLS] s1 [SEP] s2 [SEP] …`` row (padding dropped)."""
    tokens = row[1:][row[1:] != features.PAD_ID]
    assert tokens[-1] == features.SEP_ID
    ends = np.flatnonzero(tokens == features.SEP_ID)
    return [s[:-1] for s in np.split(tokens, ends + 1)[:-1]]


def test_permutation_classes_round_trip_and_are_dense():
    classes = []
    for k in range(1, 6):
        for perm in itertools.permutations(range(k)):
            label = permutation_to_class(perm)
            assert class_to_permutation(label) == perm
            classes.append(label)
    assert classes == list(range(num_order_classes(5)))  # dense, k-major, lexicographic
    assert [num_order_classes(k) for k in (1, 2, 3, 4)] == [1, 3, 9, 33]
    assert permutation_to_class([1, 0]) == 2 and class_to_permutation(8) == (2, 1, 0)
    with pytest.raises(ValueError):
        permutation_to_class([0, 0])


def test_sop_labels_are_balanced_and_segments_are_consecutive():
    docs = _counting_docs(1000)
    inst = sentence_order.make_sop_instances(docs, np.random.default_rng(0), max_seq_length=24)
    labels = inst["sop_labels"]
    assert len(labels) > 1000
    assert abs(labels.mean() - 0.5) < 0.05
    for row, types, label in zip(inst["token_ids"], inst["type_ids"], labels, strict=True):
        a, b = _segments(row)
        assert len(a) and len(b) and len(a) + len(b) <= 21
        first, second = (b, a) if label else (a, b)
        # In the document the first segment ends just before the second starts (a few tokens
        # before, when truncation trimmed where they meet), within the same document.
        gap = second[0] - first[-1]
        assert 1 <= gap < 100, (first, second, label)
        assert (types[1:1 + len(a) + 1] == 0).all() and (types[2 + len(a):3 + len(a) + len(b)]
                                                         == 1).all()


def test_order_segments_are_the_passage_permuted_by_the_label():
    docs = _counting_docs(300)
    inst = sentence_order.make_order_instances(docs, np.random.default_rng(1), max_seq_length=32,
                                               max_segments=3)
    seen_k = {1: 0, 2: 0, 3: 0}
    for row, types, label in zip(inst["token_ids"], inst["type_ids"], inst["order_labels"],
                                 strict=True):
        shown = _segments(row)
        perm = class_to_permutation(int(label))
        assert len(perm) == len(shown) and all(len(s) for s in shown)
        original = [None] * len(perm)
        for position, source in enumerate(perm):
            original[source] = shown[position]
        passage = np.concatenate(original)
        np.testing.assert_array_equal(np.diff(passage), 1)  # contiguous text, in order
        assert len(passage) + 1 + len(perm) <= 32
        for j, segment in enumerate(shown):  # type ids alternate by segment
            start = 1 + sum(len(s) + 1 for s in shown[:j])
            assert (types[start:start + len(segment) + 1] == j % 2).all()
        seen_k[len(perm)] += 1
    assert min(seen_k.values()) > 0.28 * len(inst["order_labels"])  # k uniform in 1..3


def test_order_cuts_fall_anywhere_sop_cuts_between_sentences():
    docs = _counting_docs(300, seed=5)
    sentence_starts = {int(s[0]) for doc in docs for s in doc}

    def cut_starts(inst, label_key):
        """First tokens of every segment but the passage's first, in original order."""
        out = []
        for row, label in zip(inst["token_ids"], inst[label_key], strict=True):
            shown = _segments(row)
            perm = (class_to_permutation(int(label)) if label_key == "order_labels"
                    else ((1, 0) if label else (0, 1)))
            original = sorted(zip(perm, shown, strict=True), key=lambda p: p[0])
            out += [int(seg[0]) for _, seg in original[1:]]
        return out

    order = cut_starts(sentence_order.make_order_instances(
        docs, np.random.default_rng(0), max_seq_length=40, min_segments=2), "order_labels")
    inside = np.mean([t not in sentence_starts for t in order])
    assert inside > 0.5, inside  # random token boundaries: mostly inside sentences
    sop = cut_starts(sentence_order.make_sop_instances(
        docs, np.random.default_rng(0), max_seq_length=40), "sop_labels")
    # SOP: at a sentence start unless the passage had one sentence (or truncation trimmed B).
    assert np.mean([t in sentence_starts for t in sop]) > 0.6


def test_order_labels_are_uniform_within_each_k():
    docs = _counting_docs(2000, seed=3)
    inst = sentence_order.make_order_instances(docs, np.random.default_rng(2), max_seq_length=48,
                                               min_segments=3, max_segments=3)
    labels = inst["order_labels"]
    counts = np.bincount(labels, minlength=9)
    assert not counts[:3].any()  # always 3 segments: classes 3..8 only
    expected = len(labels) / 6
    assert len(labels) > 1500
    # 6 cells: chi-square with 5 degrees of freedom, p = 0.001 at 20.5
    assert np.sum((counts[3:] - expected) ** 2 / expected) < 20.5, counts


def test_sentence_task_rejects_two_tasks():
    assert sentence_order.sentence_task(["mlm", "order"]) == "order"
    assert sentence_order.sentence_task(["mlm"]) == "sop"
    with pytest.raises(ValueError, match="at most one"):
        sentence_order.sentence_task(["sop", "order"])


@pytest.mark.parametrize("objectives", [("mlm", "sop"), ("mlm", "order"), ("order",)])
def test_pipeline_schema(fixture_corpus, data_options, objectives):
    opts = data_options(fixture_corpus, sop_swap_prob=0.5, order_min_segments=1,
                        order_max_segments=3)
    want = features.shapes(list(objectives), B=B, L=64, P=10)
    for split in ("train", "eval"):
        batches = list(itertools.islice(pipeline.make_dataset(
            opts.corpus, opts.instances, split, batch_size=B, seed=0, objectives=objectives), 3))
        assert batches, split
        for batch in batches:
            assert {k: (v.shape, v.dtype.name) for k, v in batch.items()} == want
    if "order" in objectives:
        labels = np.concatenate([b["order_labels"] for b in batches])
        assert labels.min() >= 0 and labels.max() < num_order_classes(3)


def test_pipeline_sop_resumes_exactly(fixture_corpus, data_options):
    opts = data_options(fixture_corpus, sop_swap_prob=0.5)
    kw = dict(batch_size=B, seed=0, objectives=("mlm", "sop"))
    records = (opts.corpus, opts.instances)
    straight = list(itertools.islice(pipeline.make_dataset(*records, "train", **kw), 4))
    resumed = list(itertools.islice(pipeline.make_dataset(*records, "train", start_position=2 * B,
                                                          **kw), 2))
    for x, y in zip(straight[2:], resumed, strict=True):
        for k in x:
            np.testing.assert_array_equal(x[k], y[k], err_msg=k)
    assert math.isclose(np.mean(np.concatenate([b["sop_labels"] for b in straight])), 0.5,
                        abs_tol=0.25)


def test_order_mid_sentence_passages_start_and_end_inside_sentences():
    docs = _counting_docs(300, seed=3)
    starts = {int(s[0]) for d in docs for s in d}
    ends = {int(s[-1]) for d in docs for s in d}
    long_first = {int(s[0]) for d in docs for s in d if len(s) > 1}
    default = sentence_order.make_order_instances(docs, np.random.default_rng(2), max_seq_length=32)
    off = sentence_order.make_order_instances(docs, np.random.default_rng(2), max_seq_length=32,
                                              mid_sentence=False)
    for key in default:  # the option off is the default: same draws, same instances
        np.testing.assert_array_equal(default[key], off[key])
    mid = sentence_order.make_order_instances(docs, np.random.default_rng(2), max_seq_length=32,
                                              mid_sentence=True)

    def passages(inst):
        for row, label in zip(inst["token_ids"], inst["order_labels"], strict=True):
            shown, perm = _segments(row), class_to_permutation(int(label))
            original = [None] * len(perm)
            for position, source in enumerate(perm):
                original[source] = shown[position]
            yield np.concatenate(original)

    for passage in passages(mid):
        np.testing.assert_array_equal(np.diff(passage), 1)  # still one contiguous run, in order
        # A first sentence of two or more tokens is never shown from its start.
        assert int(passage[0]) not in long_first
    share = lambda inst, where, pick: np.mean([int(pick(p)) in where for p in passages(inst)])
    assert share(default, starts, lambda p: p[0]) > 0.9  # whole sentences first: the shortcut
    assert share(mid, starts, lambda p: p[0]) < 0.3
    assert share(mid, ends, lambda p: p[-1]) < share(default, ends, lambda p: p[-1]) - 0.2
