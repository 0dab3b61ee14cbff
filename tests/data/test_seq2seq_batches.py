"""Seq2seq fine-tuning batches: tokenised with EOS, truncated, shifted, packed, deterministic."""

import numpy as np
import pytest

from data import features, seq2seq_batches, seq2seq_tasks
from data.options import TaskOptions
from data.tokenizer import Tokenizer

TASK = TaskOptions("translation_bible_es_en")


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.load("data/tokenizers/bible_es_en_8k.model")


def _make(tok, split, **kw):
    args = dict(tokenizer=tok, max_source_length=48, max_target_length=40, batch_size=8, seed=0)
    return seq2seq_batches.make_seq2seq_dataset(TASK, split, **{**args, **kw})


def test_eval_rows_are_the_examples_in_order_with_eos_and_truncation(tok):
    examples = seq2seq_tasks.load_seq2seq_examples(TASK, "test")
    batches = list(_make(tok, "test"))
    assert len(batches) == -(-1629 // 8)
    assert sum(b["example_weights"].sum() for b in batches) == 1629
    first = batches[0]
    for key, (shape, dtype) in features.shapes("seq2seq_task", B=8, S=48, T=40).items():
        assert first[key].shape == shape and first[key].dtype == dtype
    for row in range(8):
        src = first["encoder_input_ids"][row][first["encoder_segment_ids"][row] > 0]
        tgt = first["decoder_target_ids"][row][first["decoder_weights"][row] > 0]
        assert src[-1] == features.EOS_ID and tgt[-1] == features.EOS_ID
        want_src = tok.encode([examples["source"][row]])[0][:47]
        want_tgt = tok.encode([examples["target"][row]])[0][:39]
        assert list(src[:-1]) == want_src and list(tgt[:-1]) == want_tgt
    assert first["decoder_input_ids"][0, 0] == seq2seq_batches.DECODER_START_ID == 0
    last = batches[-1]
    assert last["example_weights"].sum() == 1629 % 8
    assert last["decoder_weights"][last["example_weights"] == 0].sum() == 0


def test_training_is_shuffled_by_the_seed_and_deterministic(tok):
    a, b, c = (next(_make(tok, "train", seed=s)) for s in (1, 1, 2))
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["encoder_input_ids"], c["encoder_input_ids"])
    assert a["example_weights"].all()


def test_packing_keeps_each_example_its_own_segment(tok):
    batch = next(_make(tok, "train", pack=True, max_source_length=128,
                       max_target_length=128))
    seg_e, seg_d = batch["encoder_segment_ids"], batch["decoder_segment_ids"]
    assert seg_e.max() > 1  # several verses a row
    np.testing.assert_array_equal(seg_e.max(1), seg_d.max(1))
    for row in range(8):
        for s in range(1, seg_d[row].max() + 1):
            d = seg_d[row] == s
            ids = batch["decoder_input_ids"][row][d]
            tgt = batch["decoder_target_ids"][row][d]
            assert ids[0] == 0 and (ids[1:] == tgt[:-1]).all()  # shifted within the segment
            assert tgt[-1] == features.EOS_ID
            assert list(batch["decoder_positions"][row][d]) == list(range(d.sum()))
            e = seg_e[row] == s
            assert batch["encoder_input_ids"][row][e][-1] == features.EOS_ID


def test_multi_process_slices_are_the_global_batch(tok):
    whole = next(_make(tok, "train", batch_size=8))
    parts = [next(_make(tok, "train", batch_size=4, process_index=i, process_count=2))
             for i in range(2)]
    np.testing.assert_array_equal(np.concatenate([p["encoder_input_ids"] for p in parts]),
                                  whole["encoder_input_ids"])


def test_bad_lengths_and_tasks_are_one_line_errors(tok):
    with pytest.raises(ValueError, match="must be >= 2"):
        next(_make(tok, "dev", max_target_length=1))
    with pytest.raises(ValueError, match="unknown seq2seq task"):
        seq2seq_batches.make_seq2seq_dataset(TaskOptions("sentiment_rt"), "dev", tokenizer=tok,
                                             max_source_length=8, max_target_length=8,
                                             batch_size=1, seed=0)
