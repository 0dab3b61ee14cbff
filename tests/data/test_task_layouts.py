"""XLNet's own task rows (``data.tasks.encode(layout="xlnet")``): ``a <sep> b <sep> <cls>``, the
layout XLNet pretrains on (``data.plm.to_xlnet_layout``), so fine-tuning pools at its <cls>."""

import numpy as np
import pytest

from data import features, plm, tasks
from data.options import TaskOptions
from data.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.load("embedded")


def test_xlnet_rows_are_the_bert_rows_with_cls_moved_to_the_end(tok):
    examples = {"text_a": ["A fine film.", " ".join(["word"] * 40)],
                "text_b": ["Not at all.", "short"], "labels": np.array([1, 0], np.int32)}
    bert = tasks.encode(tok, examples, 16)
    xlnet = tasks.encode(tok, examples, 16, layout="xlnet")
    for i in range(2):
        real = bert["token_ids"][i] != features.PAD_ID
        n = int(real.sum())
        row, types = xlnet["token_ids"][i], xlnet["type_ids"][i]
        assert row[:n - 1].tolist() == bert["token_ids"][i, 1:n].tolist()  # a <sep> b <sep>
        assert row[n - 1] == features.CLS_ID and not row[n:].any()  # <cls> last, then padding
        assert types[:n - 1].tolist() == bert["type_ids"][i, 1:n].tolist()
        assert types[n - 1] == tasks.TYPE_CLS == plm.TYPE_CLS and not types[n:].any()
    # The same tokens and types as XLNet's pretraining layout, but for the side of the padding.
    left, left_types = plm.to_xlnet_layout(bert["token_ids"], bert["type_ids"])
    for i in range(2):
        np.testing.assert_array_equal(left[i][left[i] != 0], xlnet["token_ids"][i][
            xlnet["token_ids"][i] != 0])
        n = int((left[i] != 0).sum())
        np.testing.assert_array_equal(left_types[i][-n:], xlnet["type_ids"][i][:n])


def test_single_texts_and_unknown_layout(tok):
    one = tasks.encode(tok, {"text_a": ["Hello there."], "text_b": None,
                             "labels": np.array([0], np.int32)}, 8, layout="xlnet")
    ids = tok.encode(["Hello there."])[0][:6]
    assert one["token_ids"][0, :len(ids) + 2].tolist() == [*ids, features.SEP_ID,
                                                           features.CLS_ID]
    with pytest.raises(ValueError, match="layout"):
        tasks.encode(tok, {"text_a": ["x"], "text_b": None, "labels": np.array([0])}, 8,
                     layout="t5")


def test_make_dataset_passes_the_layout(tok):
    batch = next(tasks.make_dataset(TaskOptions("paraphrase_bible", max_train_examples=8),
                                    "train", tokenizer=tok, max_seq_length=32, batch_size=4,
                                    seed=0, layout="xlnet"))
    last = 31 - np.argmax(batch["token_ids"][:, ::-1] != features.PAD_ID, axis=1)
    assert (batch["token_ids"][np.arange(4), last] == features.CLS_ID).all()
    assert (batch["token_ids"][:, 0] != features.CLS_ID).all()


def test_eval_subsets_are_the_same_for_every_run(tok):
    full = tasks.load_examples(TaskOptions("sentiment_rt"), "dev")
    part = tasks.eval_subset(full, 100)
    assert len(part["labels"]) == 100 and part is not full
    rows = [full["text_a"].index(t) for t in part["text_a"]]
    assert rows == sorted(rows)  # file order kept
    assert tasks.eval_subset(full, 0) is full and tasks.eval_subset(full, 10**6) is full
    qa = tasks.load_examples(TaskOptions("qa_disflqa"), "test")
    assert [e["id"] for e in tasks.eval_subset(qa, 30)] == [
        qa[i]["id"] for i in tasks.budget_indices(len(qa), 30, 0)]
    batches = list(tasks.make_dataset(TaskOptions("sentiment_rt", max_eval_examples=100), "dev",
                                      tokenizer=tok, max_seq_length=32, batch_size=32, seed=5))
    assert sum(b["example_weights"].sum() for b in batches) == 100
