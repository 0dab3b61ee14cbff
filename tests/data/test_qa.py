"""Tests for data/qa.py: span encoding with a stride, batches, post-processing, SQuAD 2.0 metric."""

import gzip
import itertools
import json
import pathlib

import numpy as np
import pytest

from data import features, qa, squad_metrics
from data.options import QaOptions
from data.tokenizer import Tokenizer

# The copy shipped with the package, else the shared dataset folder it came from.
DISFLQA = [pathlib.Path(qa.__file__).parent / "tasks" / "qa_disflqa.jsonl.gz",
           pathlib.Path("/work/shared/datasets/tasks/qa_disflqa.jsonl.gz")]
# Words that the embedded tokenizer keeps whole, so word index == context token index.
ONE_TOKEN_WORDS = ("the", "of", "and", "to", "in", "a", "is", "that", "it", "was")


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer.load("embedded")


@pytest.fixture(scope="module")
def disflqa():
    """The first 200 Disfl-QA examples (whitespace-tokenised contexts), ids as strings."""
    path = next((p for p in DISFLQA if p.exists()), None)
    if path is None:
        pytest.skip(f"qa_disflqa.jsonl.gz not found in {[str(p) for p in DISFLQA]}")
    with gzip.open(path, "rt") as f:
        rows = [json.loads(line) for line in itertools.islice(f, 200)]
    return [dict(r, id=str(r["id"])) for r in rows]


def _example(context, question="what is it ?", answer=None, answer_start=None, qid="q"):
    if answer is None:
        return {"id": qid, "question": question, "context": context, "answers": [],
                "is_impossible": True}
    start = context.index(answer) if answer_start is None else answer_start
    return {"id": qid, "question": question, "context": context, "is_impossible": False,
            "answers": [{"text": answer, "answer_start": start}]}


def _gold_windows(feats):
    rows = np.nonzero(feats.arrays["start_positions"] > 0)[0]
    return rows, feats.arrays["start_positions"][rows], feats.arrays["end_positions"][rows]


def _lost_answers(feats, examples):
    found = set(feats.example_index[_gold_windows(feats)[0]].tolist())
    return [i for i, ex in enumerate(examples) if not ex["is_impossible"] and i not in found]


def test_gold_spans_reproduce_answers_on_disflqa(tokenizer, disflqa):
    feats = qa.encode(tokenizer, disflqa, QaOptions(max_seq_length=256, doc_stride=128),
                      is_training=True)
    rows, starts, ends = _gold_windows(feats)
    assert len(rows) > 100
    for row, s, e in zip(rows, starts, ends, strict=True):
        ex = disflqa[feats.example_index[row]]
        answer = ex["answers"][0]["text"]
        words = ex["context"].split()
        first, last = feats.token_to_word[row, s], feats.token_to_word[row, e]
        assert first >= 0 and last >= first
        via_words = squad_metrics.normalize_answer(" ".join(words[first:last + 1]))
        assert squad_metrics.normalize_answer(answer) in via_words
        # Character route: exact text, and the span is tight (dropping an end token loses it).
        chars = feats.token_char_start[row], feats.token_char_end[row]
        assert answer in ex["context"][chars[0][s]:chars[1][e]]
        assert answer not in ex["context"][chars[0][s + 1]:chars[1][e]]
        assert answer not in ex["context"][chars[0][s]:chars[1][e - 1]]
        assert feats.arrays["type_ids"][row, s] == 1
    norm = squad_metrics.normalize_answer
    exact = [norm(disflqa[feats.example_index[r]]["answers"][0]["text"]) ==
             norm(" ".join(disflqa[feats.example_index[r]]["context"].split()[
                 feats.token_to_word[r, s]:feats.token_to_word[r, e] + 1]))
             for r, s, e in zip(rows, starts, ends, strict=True)]
    assert np.mean(exact) > 0.97  # the rest start or end mid-word in the data
    assert _lost_answers(feats, disflqa) == []  # measured: none lost at L=256 over all 8000


def test_short_windows_lose_only_answers_longer_than_the_overlap(tokenizer, disflqa):
    seq_len, stride = 48, 16
    feats = qa.encode(tokenizer, disflqa, QaOptions(max_seq_length=seq_len, doc_stride=stride,
                                                    max_query_length=16), is_training=True)
    lost = _lost_answers(feats, disflqa)
    assert lost  # some answers are longer than a whole window here
    whole = qa.encode(tokenizer, disflqa, QaOptions(max_seq_length=2048, max_query_length=16),
                      is_training=True)  # one window each: the gold spans' true lengths
    assert len(whole) == len(disflqa)
    rows, starts, ends = _gold_windows(whole)
    length = dict(zip(whole.example_index[rows].tolist(), ends - starts + 1, strict=True))
    for i in lost:  # a span no longer than the overlap + 1 always fits some window whole
        question = (whole.arrays["type_ids"][i] == 0).sum() - (whole.arrays["token_ids"][i]
                                                               == 0).sum() - 2
        overlap = (seq_len - question - 3) - stride
        assert length[i] > overlap + 1, (disflqa[i]["answers"], length[i], overlap)


def test_long_context_windows_stride_and_cover(tokenizer):
    words = [ONE_TOKEN_WORDS[i % len(ONE_TOKEN_WORDS)] for i in range(100)]
    assert all(len(ids) == 1 for ids in tokenizer.encode(list(ONE_TOKEN_WORDS)))
    question = "is it ?"
    q_len = len(tokenizer.encode([question])[0])
    seq_len, stride = 40, 12
    window = seq_len - q_len - 3
    feats = qa.encode(tokenizer, [_example(" ".join(words), question)],
                      QaOptions(max_seq_length=seq_len, doc_stride=stride), is_training=True)
    assert len(feats) == int(np.ceil((100 - window) / stride)) + 1 > 3
    covered, best = np.zeros(100, int), np.zeros(100, int)
    for w in range(len(feats)):
        ids, types, ctx = (feats.arrays["token_ids"][w], feats.arrays["type_ids"][w],
                           feats.token_to_word[w])
        got = ctx[ctx >= 0]
        np.testing.assert_array_equal(got, np.arange(w * stride, min(w * stride + window, 100)))
        n = len(got)
        assert ids[0] == features.CLS_ID and ids[q_len + 1] == features.SEP_ID
        assert ids[q_len + 2 + n] == features.SEP_ID and (ids[q_len + 3 + n:] == 0).all()
        np.testing.assert_array_equal(types, np.r_[np.zeros(q_len + 2), np.ones(n + 1),
                                                   np.zeros(seq_len - q_len - 3 - n)])
        covered[got] += 1
        best[ctx[feats.is_max_context[w]]] += 1
    assert covered.min() >= 1 and covered.max() == int(np.ceil(window / stride))
    np.testing.assert_array_equal(best, 1)  # each word has exactly one max-context window
    # A word in the middle of window 2 is best there, not near the edge of window 1 or 3.
    assert feats.is_max_context[2][feats.token_to_word[2] == 2 * stride + window // 2].all()


def test_unanswerable_and_out_of_window_answers_point_at_cls(tokenizer):
    words = " ".join(ONE_TOKEN_WORDS * 6) + " zebra"
    examples = [_example(words, qid="none"), _example(words, answer="zebra", qid="end")]
    feats = qa.encode(tokenizer, examples, QaOptions(max_seq_length=32, doc_stride=8),
                      is_training=True)
    none = feats.example_index == 0
    assert none.sum() > 1
    assert (feats.arrays["start_positions"][none] == 0).all()
    assert (feats.arrays["end_positions"][none] == 0).all()
    rows, starts, _ = _gold_windows(feats)
    assert feats.example_index[rows].tolist() == [1]  # only the last window holds "zebra"
    assert rows[0] == len(feats) - 1 and starts[0] > 0


def test_untokenised_and_non_ascii_text(tokenizer):
    context = "The café's naïve owner moved to Paris, France in the 1990s.\nIt was résumé time."
    examples = [_example(context, "where ?", "Paris", qid="a"),
                _example(context, "when ?", "1990", qid="b"),
                _example(context, "what ?", "résumé", qid="c"),
                _example(context, "bad offset", "Paris", answer_start=3, qid="d")]
    train = qa.encode(tokenizer, examples, QaOptions(max_seq_length=64), is_training=True)
    assert sorted(set(train.example_index.tolist())) == [0, 1, 2]  # the bad offset is dropped
    feats = qa.encode(tokenizer, examples, QaOptions(max_seq_length=64), is_training=False)
    assert feats.example_index.tolist() == [0, 1, 2, 3]
    start, end = _logits_on_gold(feats)
    preds = qa.postprocess(start, end, feats, examples)
    assert preds == {"a": "Paris", "b": "1990", "c": "résumé", "d": ""}


def _logits_on_gold(feats, high=8.0):
    n, length = feats.token_to_word.shape
    start, end = np.zeros((n, length), np.float32), np.zeros((n, length), np.float32)
    start[np.arange(n), feats.arrays["start_positions"]] = high
    end[np.arange(n), feats.arrays["end_positions"]] = high
    return start, end


def test_postprocess_recovers_gold_text_and_no_answer(tokenizer, disflqa):
    examples = disflqa[:60]
    feats = qa.encode(tokenizer, examples, QaOptions(max_seq_length=128, doc_stride=48),
                      is_training=False)
    assert len(feats) > 2 * len(examples)  # many multi-window examples
    start, end = _logits_on_gold(feats)
    preds = qa.postprocess(start, end, feats, examples, max_answer_length=1000)
    for ex in examples:
        if ex["is_impossible"]:
            assert preds[ex["id"]] == ""
        else:
            assert ex["answers"][0]["text"] in preds[ex["id"]]
    scores = squad_metrics.squad_v2_scores(preds, examples)
    assert scores["exact"] > 95 and scores["NoAns_exact"] == 100.0
    # All mass on [CLS]: no answer anywhere; a large threshold flips it to the best span.
    cls = np.zeros_like(start)
    cls[:, 0] = 9.0
    assert set(qa.postprocess(cls, cls, feats, examples).values()) == {""}
    spans = qa.postprocess(cls, cls, feats, examples, null_score_diff_threshold=100.0)
    assert all(spans.values())
    with pytest.raises(ValueError, match="padding rows"):
        qa.postprocess(start[:-1], end[:-1], feats, examples)


def test_postprocess_span_rules(tokenizer):
    context = " ".join(ONE_TOKEN_WORDS)
    feats = qa.encode(tokenizer, [_example(context)], QaOptions(max_seq_length=32),
                      is_training=False)
    ctx = np.nonzero(feats.token_to_word[0] >= 0)[0]
    start, end = np.zeros((1, 32)), np.zeros((1, 32))
    start[0, ctx[[1, 5]]] = 5.0, 9.0
    end[0, ctx[[2, 3, 6]]] = 4.0, 6.0, 1.0  # (5, 2) scores 13 but ends before it starts
    start[0, 1], end[0, 1] = 20.0, 20.0  # question tokens are never part of an answer
    (pred,) = qa.postprocess(start, end, feats, [_example(context)]).values()
    assert pred == " ".join(ONE_TOKEN_WORDS[1:4])  # (1, 3) scores 11
    (pred,) = qa.postprocess(start, end, feats, [_example(context)],
                             max_answer_length=2).values()
    assert pred == " ".join(ONE_TOKEN_WORDS[5:7])  # (1, 3) is too long; (5, 6) scores 10


def test_postprocess_starts_only_where_the_token_has_max_context(tokenizer):
    words = [ONE_TOKEN_WORDS[i % len(ONE_TOKEN_WORDS)] for i in range(40)]
    example = _example(" ".join(words))
    feats = qa.encode(tokenizer, [example], QaOptions(max_seq_length=32, doc_stride=8),
                      is_training=False)
    edge = np.nonzero(feats.token_to_word[0] >= 0)[0][-1]  # seen with more context in window 1
    assert len(feats) > 2 and not feats.is_max_context[0, edge]
    other = next(t for t in np.nonzero(feats.is_max_context[1])[0]
                 if words[feats.token_to_word[1, t]] != words[feats.token_to_word[0, edge]])
    start, end = np.zeros((len(feats), 32)), np.zeros((len(feats), 32))
    start[0, edge] = end[0, edge] = 10.0  # the best pair, but from the wrong window
    start[1, other] = end[1, other] = 6.0
    (pred,) = qa.postprocess(start, end, feats, [example]).values()
    assert pred == words[feats.token_to_word[1, other]]


def test_normalize_answer():
    assert squad_metrics.normalize_answer("The  Cat's, a hat!") == "cats hat"
    assert squad_metrics.normalize_answer("Anaconda and THEME") == "anaconda and theme"
    assert squad_metrics.normalize_answer(" an ") == ""


def test_squad_v2_scores_by_hand():
    examples = [
        {"id": "1", "is_impossible": False,
         "answers": [{"text": "The Eiffel Tower"}, {"text": "Eiffel tower"}]},
        {"id": "2", "is_impossible": False, "answers": [{"text": "Paris France"}]},
        {"id": "3", "is_impossible": True, "answers": []},
        {"id": "4", "is_impossible": True, "answers": []},
        {"id": "5", "is_impossible": False, "answers": [{"text": "a cat"}]},
    ]
    preds = {"1": "eiffel tower!", "2": "in Paris", "3": "", "4": "something", "5": ""}
    scores = squad_metrics.squad_v2_scores(preds, examples)
    # F1: 1, 0.5 (1 common token of 2 and 2), 1, 0, 0.
    assert scores == pytest.approx({
        "exact": 40.0, "f1": 50.0, "total": 5.0,
        "HasAns_exact": 100 / 3, "HasAns_f1": 50.0, "HasAns_total": 3.0,
        "NoAns_exact": 50.0, "NoAns_f1": 50.0, "NoAns_total": 2.0})
    only_answerable = squad_metrics.squad_v2_scores(preds, examples[:2])
    assert only_answerable["NoAns_total"] == 0 and "NoAns_f1" not in only_answerable
    with pytest.raises(KeyError, match="no prediction"):
        squad_metrics.squad_v2_scores({"1": ""}, examples)


@pytest.fixture(scope="module")
def small_features(tokenizer, disflqa):
    return qa.encode(tokenizer, disflqa[:40],
                     QaOptions(max_seq_length=96, doc_stride=32, max_query_length=24),
                     is_training=True)


def _row_ids(feats):
    """Maps each feature's token_ids bytes to its index (windows are distinct here)."""
    out = {feats.arrays["token_ids"][i].tobytes(): i for i in range(len(feats))}
    assert len(out) == len(feats)
    return out


def test_make_dataset_schema_and_eval_padding(small_features):
    n, batch = len(small_features), 16
    want = features.shapes("span_qa", B=batch, L=96)
    for split in ("train", "dev"):
        for b in itertools.islice(qa.make_dataset(small_features, split, batch_size=batch,
                                                  seed=0), 3):
            assert {k: (v.shape, v.dtype.name) for k, v in b.items()} == want
    dev = list(qa.make_dataset(small_features, "dev", batch_size=batch, seed=0))
    assert len(dev) == -(-n // batch) and n % batch
    weights = np.concatenate([b["example_weights"] for b in dev])
    np.testing.assert_array_equal(weights, np.arange(len(weights)) < n)
    for key, value in small_features.arrays.items():
        got = np.concatenate([b[key] for b in dev])
        np.testing.assert_array_equal(got[:n], value)
        if key == "token_ids":  # padding rows are [CLS] [SEP] PAD ..., as in data.tasks
            np.testing.assert_array_equal(got[n:, :2], [[features.CLS_ID, features.SEP_ID]] *
                                          (len(got) - n))
            got = got[:, 2:]
        assert not got[n:].any()


@pytest.mark.parametrize("split", ["train", "dev"])
def test_two_process_slices_concatenate_to_one_process(small_features, split):
    one = list(itertools.islice(qa.make_dataset(small_features, split, batch_size=16, seed=3), 6))
    two = [list(itertools.islice(qa.make_dataset(small_features, split, batch_size=8, seed=3,
                                                 process_index=p, process_count=2), 6))
           for p in range(2)]
    assert len(two[0]) == len(two[1]) == len(one)
    for full, a, b in zip(one, *two, strict=True):
        for k in full:
            np.testing.assert_array_equal(full[k], np.concatenate([a[k], b[k]]), err_msg=k)


def test_train_epochs_and_label_budget(small_features):
    index, n = _row_ids(small_features), len(small_features)
    batches = list(itertools.islice(qa.make_dataset(small_features, "train", batch_size=7,
                                                    seed=1), 3 * n // 7))
    seen = [index[r.tobytes()] for b in batches for r in b["token_ids"]]
    assert sorted(seen[:n]) == list(range(n))  # epoch 0 is a permutation
    assert sorted(seen[n:2 * n]) == list(range(n))  # leftovers carried, epoch 1 complete
    assert seen[:n] != seen[n:2 * n]
    budget = list(itertools.islice(qa.make_dataset(small_features, "train", batch_size=4,
                                                   seed=1, max_examples=5), 40))
    kept = {index[r.tobytes()] for b in budget for r in b["token_ids"]}
    examples = set(small_features.example_index[sorted(kept)].tolist())
    assert len(examples) == 5
    assert kept == set(np.nonzero(np.isin(small_features.example_index, list(examples)))[0])
    assert len(kept) > 5  # the budget counts examples, not windows
