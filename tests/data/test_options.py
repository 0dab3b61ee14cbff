"""Tests for data/options.py: the records are frozen, and a bad value is a one-line error that
names the field and the fix, before any corpus is read."""

import dataclasses
import re

import pytest

from data import options as options_lib
from data import pipeline, qa, tasks
from data.options import (
    ClmOptions,
    CorpusOptions,
    InstanceOptions,
    PlmOptions,
    QaOptions,
    TaskOptions,
)

_PAIRS = InstanceOptions(max_seq_length=64, max_predictions_per_seq=10)


def test_defaults_are_valid_and_records_are_frozen():
    records = [CorpusOptions(), _PAIRS, ClmOptions(max_seq_length=128),
               PlmOptions(instances=_PAIRS), TaskOptions("sentiment_rt"),
               QaOptions(max_seq_length=384)]
    for record in records:
        field = dataclasses.fields(record)[0].name
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record, field, None)
    assert hash(TaskOptions("file", train_path="a.tsv")) == hash(
        TaskOptions("file", train_path="a.tsv"))  # a cache key (data.task_files)


def test_every_field_has_a_docstring():
    """Each field is followed by its own string literal in the source (the fields' docs)."""
    source = open(options_lib.__file__, encoding="utf-8").read()
    for cls in (CorpusOptions, InstanceOptions, ClmOptions, PlmOptions, TaskOptions, QaOptions):
        for field in dataclasses.fields(cls):
            assert re.search(rf"\n    {field.name}: [^\n]*\n    \"\"\"\S", source), (
                f"{cls.__name__}.{field.name} has no docstring")


@pytest.mark.parametrize("make, message", [
    (lambda: CorpusOptions(corpus=""), r"corpus='': name a corpus: 'embedded', text files"),
    (lambda: CorpusOptions(tokenizer=""), r"tokenizer='': name a tokenizer: 'embedded' or a "),
    (lambda: CorpusOptions(eval_fraction=1.0),
     r"eval_fraction=1\.0: the held-out share of the documents must be in \[0, 1\), e\.g\. 0\.02"),
    (lambda: CorpusOptions(eval_fraction=-0.1), r"eval_fraction=-0\.1: "),
    (lambda: CorpusOptions(num_shards=-1),
     r"num_shards=-1: use 0 \(one shard per process\) or a positive multiple"),
    (lambda: InstanceOptions(max_seq_length=4, max_predictions_per_seq=1),
     r"max_seq_length=4: \[CLS\] A \[SEP\] B \[SEP\] needs at least 5 tokens"),
    (lambda: InstanceOptions(max_seq_length=64, max_predictions_per_seq=0),
     r"max_predictions_per_seq=0: MLM needs at least 1 prediction slot"),
    (lambda: dataclasses.replace(_PAIRS, masked_lm_prob=15.0),
     r"masked_lm_prob=15\.0: a probability, use a value in \[0, 1\]"),
    (lambda: dataclasses.replace(_PAIRS, short_seq_prob=-0.1), r"short_seq_prob=-0\.1: a prob"),
    (lambda: dataclasses.replace(_PAIRS, nsp_random_prob=1.5), r"nsp_random_prob=1\.5: a prob"),
    (lambda: dataclasses.replace(_PAIRS, sop_swap_prob=2.0), r"sop_swap_prob=2\.0: a prob"),
    (lambda: dataclasses.replace(_PAIRS, order_min_segments=4),
     r"order_min_segments=4: need 1 <= order_min_segments <= order_max_segments=3"),
    (lambda: dataclasses.replace(_PAIRS, order_min_segments=0), r"order_min_segments=0: "),
    (lambda: ClmOptions(max_seq_length=1),
     r"max_seq_length=1: a row needs a token and its next one to predict"),
    (lambda: PlmOptions(instances=_PAIRS, plm_k=0.0),
     r"plm_k=0\.0: about 1/K of the tokens are predicted, so K must be at least 1"),
    (lambda: PlmOptions(instances=_PAIRS, plm_max_span=0), r"plm_max_span=0: target spans are"),
    (lambda: PlmOptions(instances=_PAIRS, perm_size=24),
     r"perm_size=24: use 0 \(the whole sequence\) or a divisor of max_seq_length=64"),
    (lambda: PlmOptions(instances=_PAIRS, perm_size=-8), r"perm_size=-8: "),
    (lambda: TaskOptions(""), r"name='': name a task: an embedded or TFDS task"),
    (lambda: QaOptions(max_seq_length=384, doc_stride=0),
     r"doc_stride=0: windows must move on through a long context; use at least 1"),
    (lambda: QaOptions(max_seq_length=384, max_query_length=0),
     r"max_query_length=0: questions need at least 1 token"),
])
def test_a_bad_value_names_the_field_and_the_fix(make, message):
    with pytest.raises(ValueError, match=message) as err:
        make()
    assert "\n" not in str(err.value)


def test_good_edge_values_pass():
    InstanceOptions(max_seq_length=5, max_predictions_per_seq=1, masked_lm_prob=0.0,
                    short_seq_prob=1.0, order_min_segments=2, order_max_segments=2)
    CorpusOptions(eval_fraction=0.0, num_shards=4)
    PlmOptions(instances=_PAIRS, plm_k=1.0, perm_size=16)
    QaOptions(max_seq_length=32, max_query_length=64)  # encode checks the real questions


def test_the_pipelines_take_the_records(fixture_corpus, tmp_path):
    """No ConfigDict anywhere: the records alone drive a corpus, a task file and QA windows."""
    corpus = pipeline.load_corpus(CorpusOptions(corpus=fixture_corpus, eval_fraction=0.1))
    assert corpus.vocab_size > 0 and corpus.train_docs
    path = tmp_path / "t.tsv"
    path.write_text("text\tlabel\n" + "".join(f"row {i}\t{'ab'[i % 2]}\n" for i in range(20)))
    task = TaskOptions("file", train_path=str(path), labels="a,b")
    assert tasks.task_spec(task).label_names == ("a", "b")
    assert tasks.num_examples(task, "train") + tasks.num_examples(task, "dev") + \
        tasks.num_examples(task, "test") == 20
    example = {"id": "0", "question": "Who?", "context": "Ann went home.", "is_impossible": False,
               "answers": [{"text": "Ann", "answer_start": 0}]}
    feats = qa.encode(corpus.tokenizer, [example], QaOptions(max_seq_length=16),
                      is_training=True)
    assert feats.arrays["token_ids"].shape == (1, 16)
