"""The one place where run-config sections become the input pipelines' option records.

``data/`` takes the frozen records of ``data/options.py``; the run config keeps its field names
(``--config.data.max_seq_length``, ``--config.task.train_path``, …), which are the records'
field names. A field the section lacks takes the record's default (BERT's config has no
``sop_swap_prob``); a field the record does not know is not read (``cfg.data`` holds the fields
of several records).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from data.options import (
    ClmOptions,
    CorpusOptions,
    DenoisingOptions,
    InstanceOptions,
    PlmOptions,
    QaOptions,
    TaskOptions,
)


def _record(cls, section: Mapping, **given):
    """``cls`` from the fields of ``section`` (a ConfigDict or dict) that it declares."""
    names = (f.name for f in dataclasses.fields(cls) if f.name not in given)
    return cls(**{n: section[n] for n in names if n in section}, **given)


def corpus_options(data_cfg: Mapping) -> CorpusOptions:
    """A pretraining run's ``data`` section → the corpus it reads."""
    return _record(CorpusOptions, data_cfg)


def instance_options(data_cfg: Mapping) -> InstanceOptions:
    """A BERT/ALBERT run's ``data`` section → its MLM and sentence-task instance options."""
    return _record(InstanceOptions, data_cfg)


def clm_options(data_cfg: Mapping) -> ClmOptions:
    """A GPT run's ``data`` section → its packed causal-LM rows."""
    return _record(ClmOptions, data_cfg)


def denoising_options(data_cfg: Mapping) -> DenoisingOptions:
    """A T5 run's ``data`` section → its denoising rows (span corruption or sentence
    permutation)."""
    return _record(DenoisingOptions, data_cfg)


def plm_options(data_cfg: Mapping) -> PlmOptions:
    """An XLNet run's ``data`` section → its permutation-LM options (over BERT's pairs)."""
    return _record(PlmOptions, data_cfg, instances=instance_options(data_cfg))


def task_options(task_cfg: Mapping) -> TaskOptions:
    """A fine-tuning run's ``task`` section → the task it reads."""
    return _record(TaskOptions, task_cfg)


def qa_options(data_cfg: Mapping) -> QaOptions:
    """A span-QA fine-tuning run's ``data`` section → how it cuts contexts into windows."""
    return _record(QaOptions, data_cfg)
