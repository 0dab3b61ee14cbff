"""Shared pieces for the data tests: small pretraining data options."""

import dataclasses

import pytest

from data.options import ClmOptions, CorpusOptions, InstanceOptions, PlmOptions

# BERT's defaults at a short length, for fast tests.
_DEFAULTS = dict(tokenizer="embedded", tfds_data_dir="", max_seq_length=64,
                 max_predictions_per_seq=10, masked_lm_prob=0.15, short_seq_prob=0.1,
                 nsp_random_prob=0.5, whole_word_masking=False, eval_fraction=0.1, num_shards=0)


@dataclasses.dataclass(frozen=True)
class DataOptions:
    """The records of every pretraining pipeline, built from one set of fields (as the run
    config's ``data`` section holds them)."""

    corpus: CorpusOptions
    instances: InstanceOptions
    clm: ClmOptions
    plm: PlmOptions


def _pick(cls, fields: dict, **given):
    names = {f.name for f in dataclasses.fields(cls)} - set(given)
    return cls(**{k: v for k, v in fields.items() if k in names}, **given)


def make_options(corpus: str, **overrides) -> DataOptions:
    """``DataOptions`` of ``corpus`` with the defaults above, ``overrides`` by field name."""
    fields = {**_DEFAULTS, "corpus": corpus, **overrides}
    known = {f.name for cls in (CorpusOptions, InstanceOptions, ClmOptions, PlmOptions)
             for f in dataclasses.fields(cls)}
    assert set(fields) <= known, f"unknown option fields {set(fields) - known}"
    instances = _pick(InstanceOptions, fields)
    return DataOptions(corpus=_pick(CorpusOptions, fields), instances=instances,
                       clm=_pick(ClmOptions, fields),
                       plm=_pick(PlmOptions, fields, instances=instances))


@pytest.fixture
def data_options():
    """Factory: ``data_options(corpus, **overrides)`` → :class:`DataOptions`."""
    return make_options
