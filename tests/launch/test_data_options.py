"""Tests for launch/train/data_options.py: every recipe's run config becomes the records its
pipelines take, with the config's values, the records' defaults for what a section lacks, and
the records' errors for bad values."""

import dataclasses

import ml_collections
import pytest

from data.options import InstanceOptions
from launch.configs import albert, bert, finetune, gpt, xlnet
from launch.train import data_options


def _fields(record) -> dict:
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}


def _assert_from(record, section, **defaults):
    """Each field of ``record`` is the section's value, or (absent there) ``defaults``'s."""
    for name, value in _fields(record).items():
        if name in section:
            assert value == section[name], name
        elif name in defaults:
            assert value == defaults[name], name


@pytest.mark.parametrize("get_config, variant", [
    (bert.get_config, "tiny"), (bert.get_config, "base"), (albert.get_config, "tiny_order"),
    (albert.get_config, "base"), (xlnet.get_config, "tiny"), (gpt.get_config, "tiny")])
def test_pretraining_sections(get_config, variant):
    data = get_config(variant).data
    corpus = data_options.corpus_options(data)
    assert set(_fields(corpus)) <= set(data)  # every recipe names all of the corpus fields
    _assert_from(corpus, data)
    if get_config is gpt.get_config:
        assert data_options.clm_options(data).max_seq_length == data.max_seq_length
        return
    instances = data_options.instance_options(data)
    _assert_from(instances, data, **{f.name: f.default for f in dataclasses.fields(
        InstanceOptions)})
    if get_config is xlnet.get_config:
        plm = data_options.plm_options(data)
        assert plm.instances == instances
        _assert_from(plm, data)


def test_a_section_takes_the_sentence_task_defaults_it_does_not_name():
    data = ml_collections.ConfigDict(bert.get_config("tiny").data.to_dict())
    for name in ("sop_swap_prob", "order_min_segments", "order_max_segments"):
        if name in data:
            del data[name]
    instances = data_options.instance_options(data)
    assert (instances.sop_swap_prob, instances.order_min_segments,
            instances.order_max_segments) == (0.5, 1, 3)


@pytest.mark.parametrize("task", ["sentiment_rt", "qa_disflqa", "file"])
def test_finetuning_sections(task):
    cfg = finetune.get_config(task)
    cfg.task.max_train_examples = 640
    record = data_options.task_options(cfg.task)
    assert _fields(record) == dict(cfg.task)  # the task section is exactly the record
    qa = data_options.qa_options(cfg.data)
    assert (qa.max_seq_length, qa.doc_stride, qa.max_query_length) == (
        cfg.data.max_seq_length, cfg.data.doc_stride, cfg.data.max_query_length)


def test_a_bad_config_value_is_the_records_error():
    cfg = bert.get_config("tiny")
    cfg.data.eval_fraction = 1.5
    with pytest.raises(ValueError, match=r"eval_fraction=1\.5: the held-out share"):
        data_options.corpus_options(cfg.data)
    cfg = xlnet.get_config("tiny")
    cfg.data.perm_size = 5
    with pytest.raises(ValueError, match=r"perm_size=5: use 0 .* divisor of max_seq_length=64"):
        data_options.plm_options(cfg.data)
