"""TFDS builders for the embedded fine-tuning tasks, registered under the task names.

Importing this module registers ``sentiment_rt``, ``topic_wordnet``, ``nli_vitaminc``,
``paraphrase_bible``, ``qa_disflqa`` and the seq2seq ones (``translation_bible_es_en``,
``translation_bible_en_es``, ``summarization_debian_desc``, ``qa_disflqa_generative``; features
``id``, ``source``, ``target``); then, offline::

  import data.task_builders  # noqa: F401
  ds = tfds.load("sentiment_rt", split="train", data_dir="/tmp/tfds")

Each builder reads the file shipped in ``data/tasks/`` (nothing is downloaded) and cuts it with
``data.task_sources.embedded_splits``, the very function that ``data.tasks.load_examples`` uses, so
TFDS and the fast path give the same examples, in the same order (shuffling is disabled). TFDS
calls the dev split ``validation``.

Features: ``text`` (single-text tasks) or ``text_a``/``text_b`` (pairs) and a ``label``
ClassLabel whose names are ``TASKS[name].label_names``; the QA task has SQuAD 2.0's ``id``,
``question``, ``context``, ``answers`` (text, answer_start) and ``is_impossible``.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from data import seq2seq_tasks, task_sources
from data.options import TaskOptions
from data.task_sources import SPLITS, TASKS, TFDS_SPLIT_NAMES


def _features(name: str) -> tfds.features.FeaturesDict:
    if name in seq2seq_tasks.EMBEDDED_SEQ2SEQ:
        return tfds.features.FeaturesDict({key: tfds.features.Text()
                                           for key in ("id", "source", "target")})
    spec = TASKS[name]
    if spec.kind == "span_qa":
        return tfds.features.FeaturesDict({
            "id": tfds.features.Text(),
            "question": tfds.features.Text(),
            "context": tfds.features.Text(),
            "answers": tfds.features.Sequence({"text": tfds.features.Text(),
                                               "answer_start": np.int32}),
            "is_impossible": np.bool_,
        })
    texts = task_sources.tfds_text_features(name)
    out = {key: tfds.features.Text() for key in texts}
    out["label"] = tfds.features.ClassLabel(names=list(spec.label_names))
    return tfds.features.FeaturesDict(out)


def _example(name: str, record) -> dict:
    """An ``embedded_splits`` record → a TFDS example dict."""
    if TASKS[name].kind == "span_qa":
        answers = record["answers"]
        return dict(record, answers={"text": [a["text"] for a in answers],
                                     "answer_start": [a["answer_start"] for a in answers]})
    text_a, text_b, label = record
    if text_b is None:
        return {"text": text_a, "label": label}
    return {"text_a": text_a, "text_b": text_b, "label": label}


class _EmbeddedTask(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """One embedded task; subclasses set ``name`` (the ``TASKS`` key)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "First release: 80/10/10 split grouped by an MD5 of the group key."}

    def _info(self) -> tfds.core.DatasetInfo:
        # DatasetInfo directly, not dataset_info_from_configs: that one reads README/CITATIONS
        # files from this module's folder, which belong to the data package, not to a dataset.
        return tfds.core.DatasetInfo(
            builder=self,
            description=f"pretrax embedded fine-tuning task {self.name!r} (see "
                        "data/tasks/PROVENANCE.md for its source, licence and split).",
            features=_features(self.name),
            disable_shuffling=True,  # Keep file order, the order of data.tasks.load_examples.
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # Nothing to download: the file ships with pretrax.
        if self.name in seq2seq_tasks.EMBEDDED_SEQ2SEQ:
            return {TFDS_SPLIT_NAMES[s]: self._generate_seq2seq(s) for s in SPLITS}
        splits = task_sources.embedded_splits(self.name)
        return {TFDS_SPLIT_NAMES[s]: self._generate_examples(splits[s]) for s in SPLITS}

    def _generate_seq2seq(self, split):
        examples = seq2seq_tasks.load_seq2seq_examples(TaskOptions(self.name), split)
        for i, row in enumerate(zip(examples["id"], examples["source"], examples["target"],
                                    strict=True)):
            yield i, dict(zip(("id", "source", "target"), row, strict=True))

    def _generate_examples(self, records):
        for i, record in enumerate(records):
            yield i, _example(self.name, record)


class SentimentRt(_EmbeddedTask):
    """Binary sentiment of movie-review sentences (VADER ratings of Rotten Tomatoes snippets)."""

    name = "sentiment_rt"


class TopicWordnet(_EmbeddedTask):
    """The WordNet supersense (25 classes) of a noun definition."""

    name = "topic_wordnet"


class NliVitaminc(_EmbeddedTask):
    """3-way verification of a claim against Wikipedia evidence (VitaminC)."""

    name = "nli_vitaminc"


class ParaphraseBible(_EmbeddedTask):
    """Is a World English Bible verse the same verse as a King James one?"""

    name = "paraphrase_bible"


class QaDisflqa(_EmbeddedTask):
    """Extractive QA with unanswerable, disfluent questions (Disfl-QA over SQuAD 2.0)."""

    name = "qa_disflqa"


class TranslationBibleEsEn(_EmbeddedTask):
    """Spanish RV1909 verse → English World English Bible verse."""

    name = "translation_bible_es_en"


class TranslationBibleEnEs(_EmbeddedTask):
    """English World English Bible verse → Spanish RV1909 verse."""

    name = "translation_bible_en_es"


class SummarizationDebianDesc(_EmbeddedTask):
    """Debian package long description → its one-line synopsis."""

    name = "summarization_debian_desc"


class QaDisflqaGenerative(_EmbeddedTask):
    """Disfl-QA as text generation: question and context → answer or "unanswerable"."""

    name = "qa_disflqa_generative"
