"""Shared pieces for the data tests: a small pretraining data config."""

import ml_collections
import pytest


def make_config(corpus: str, **overrides) -> ml_collections.ConfigDict:
    """A data config with BERT's defaults at a short length, for fast tests."""
    cfg = ml_collections.ConfigDict({
        "corpus": corpus,
        "tokenizer": "embedded",
        "tfds_data_dir": "",
        "max_seq_length": 64,
        "max_predictions_per_seq": 10,
        "masked_lm_prob": 0.15,
        "short_seq_prob": 0.1,
        "nsp_random_prob": 0.5,
        "whole_word_masking": False,
        "eval_fraction": 0.1,
        "num_shards": 0,
    })
    cfg.update(overrides)
    return cfg


@pytest.fixture
def data_config():
    """Factory: ``data_config(corpus, **overrides)`` → ConfigDict."""
    return make_config
