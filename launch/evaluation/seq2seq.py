"""Scoring generated targets of a seq2seq task: the task's metrics (sacrebleu BLEU/chrF with
their signatures, rouge-score ROUGE-1/2/L, SQuAD 2.0 EM/F1 of generative QA), the baselines that
learn nothing (copy the source; the document's lead sentence), and the predictions file.

Used by seq2seq fine-tuning (dev and test) and by ``launch.evaluate`` on a seq2seq workdir.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence

import numpy as np

from data import seq2seq_tasks
from data.task_sources import TaskSpec
from launch.train import storage
from objectives import seq2seq_metrics


def scores(spec: TaskSpec, hypotheses: Sequence[str], references: Sequence[str],
           ids: Sequence[str], split: str) -> dict[str, float]:
    """The task's metrics (percentages) of ``hypotheses`` against ``references``.

    Generative QA (``squad``) is scored against the span-QA examples of ``split`` by id, an
    ``unanswerable`` output meaning no answer (``data.seq2seq_tasks.generative_qa_scores``)."""
    if "squad" in spec.metrics:
        out = seq2seq_tasks.generative_qa_scores(dict(zip(ids, hypotheses, strict=True)), split,
                                                 subset=True)
    else:
        out = seq2seq_metrics.compute(spec.metrics, hypotheses, references)
    out["examples"] = float(len(hypotheses))
    return {k: float(v) for k, v in out.items()}


def baselines(spec: TaskSpec, sources: Sequence[str], references: Sequence[str],
              ids: Sequence[str] = (), split: str = "test") -> dict[str, float]:
    """What no learning scores: translation's copy-the-source BLEU/chrF, summarisation's lead
    sentence ROUGE, generative QA's SQuAD 2.0 EM/F1 of answering "unanswerable" to every
    question (of ``ids`` in ``split``)."""
    if "squad" in spec.metrics:
        always = seq2seq_tasks.generative_qa_scores(
            dict.fromkeys(ids, seq2seq_tasks.UNANSWERABLE), split, subset=True)
        return {f"always_unanswerable_{k}": v for k, v in always.items()
                if k in ("exact", "f1")}
    if "bleu" in spec.metrics:
        return {f"copy_source_{k}": v
                for k, v in seq2seq_metrics.copy_source_scores(sources, references).items()}
    if "rougeL" in spec.metrics:
        return {f"lead_{k}": v
                for k, v in seq2seq_metrics.lead_baseline_rouge(sources, references).items()}
    return {}


def signatures(spec: TaskSpec) -> dict[str, str]:
    """sacrebleu's signatures of the task's BLEU/chrF ({} for other metrics)."""
    if "bleu" not in spec.metrics:
        return {}
    return seq2seq_metrics.signatures()


def figures(spec: TaskSpec, metrics: dict) -> str:
    """``BLEU 12.3, chrF 40.1`` / ``ROUGE-1 … ROUGE-2 … ROUGE-L …`` / ``EM …, F1 …``."""
    names = {"bleu": "BLEU", "chrf": "chrF", "rouge1": "ROUGE-1", "rouge2": "ROUGE-2",
             "rougeL": "ROUGE-L", "exact": "EM", "f1": "F1"}
    return ", ".join(f"{label} {metrics[k]:.2f}" for k, label in names.items() if k in metrics)


def write_predictions(path: str, ids: Sequence[str], sources: Sequence[str],
                      references: Sequence[str], hypotheses: Sequence[str]) -> None:
    """One JSON object a line: ``id``, ``source``, ``target`` (the reference), ``prediction``."""
    with storage.open_file(path, "w") as f:
        for row in zip(ids, sources, references, hypotheses, strict=True):
            f.write(json.dumps(dict(zip(("id", "source", "target", "prediction"), row,
                                        strict=True)), ensure_ascii=False) + "\n")


@dataclasses.dataclass
class Seq2seqSplit:
    """One split to score by generation: its texts and the encoded sources.

    ``decode(params, source_ids) -> texts`` generates; ``score(params)`` returns the metrics
    (``launch/finetuning/run.py`` calls it for a split that has it) and keeps the last outputs
    in ``hypotheses``.
    """
    name: str
    spec: TaskSpec
    ids: list[str]
    sources: list[str]
    references: list[str]
    source_ids: list[np.ndarray]
    decode: Callable
    hypotheses: list[str] = dataclasses.field(default_factory=list)

    def score(self, params) -> dict[str, float]:
        self.hypotheses = self.decode(params, self.source_ids)
        return scores(self.spec, self.hypotheses, self.references, self.ids, self.name)
