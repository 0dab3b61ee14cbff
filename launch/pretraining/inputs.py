"""What pretraining needs from each objective's input side: its dataset, the unigram baseline's
targets and counts, derived eval metrics and the closing line.

Add an objective here (and its schema in ``data/features.py``) to pretrain with it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence

from data import clm, pipeline, plm
from launch.train import data_options

# The BERT/ALBERT family: MLM and/or one sentence task, all built by data/pipeline.py.
SENTENCE_OBJECTIVES = ("mlm", "nsp", "sop", "order")


def sentence_summary(final: dict) -> str:
    """``eval MLM loss … (unigram baseline …), MLM accuracy …, NSP accuracy …`` for what ran."""
    parts = []
    if "eval/mlm_loss" in final:
        parts.append(f"eval MLM loss {final['eval/mlm_loss']:.3f} (unigram baseline "
                     f"{final['eval/unigram_entropy']:.3f}), MLM accuracy "
                     f"{final['eval/mlm_accuracy']:.3f}")
    for task in ("nsp", "sop", "order"):
        if f"eval/{task}_accuracy" in final:
            parts.append(f"{task.upper()} accuracy {final[f'eval/{task}_accuracy']:.3f}")
    return ", ".join(parts)


def _clm_eval_extras(out: dict) -> dict:
    """Perplexities: ``eval/perplexity`` = exp(eval/clm_loss), ``eval/unigram_perplexity`` =
    exp(eval/unigram_entropy), both per held-out target token."""
    return {"eval/perplexity": math.exp(out["eval/clm_loss"]),
            "eval/unigram_perplexity": math.exp(out["eval/unigram_entropy"])}


def _clm_summary(final: dict) -> str:
    return (f"eval loss {final['eval/clm_loss']:.3f}, perplexity {final['eval/perplexity']:.1f} "
            f"(unigram baseline {final['eval/unigram_perplexity']:.1f}), next-token accuracy "
            f"{final['eval/clm_accuracy']:.3f}")


@dataclasses.dataclass(frozen=True)
class ObjectiveData:
    """What the loop needs from an objective's input side.

    Attributes:
      make_dataset: ``(data_cfg, split, **kw) -> iterator of host batches``; it turns the run
        config's ``data`` section into the pipeline's option records (``_configured``).
      targets, weights: the batch keys the unigram baseline scores.
      unigram_counts: corpus → int64 [V] counts of the training targets' tokens.
      log_probs: summed counts → float32 [V] smoothed unigram log-probabilities.
      eval_extras: eval metrics → further metrics derived from them.
      summary: final metrics → the closing line's figures.
    """
    make_dataset: Callable
    targets: str
    weights: str
    unigram_counts: Callable
    log_probs: Callable
    eval_extras: Callable[[dict], dict]
    summary: Callable[[dict], str]


def _configured(make_dataset: Callable, options: Callable) -> Callable:
    """``make_dataset(corpus_options, options, split, **kw)`` of a ``data/`` pipeline, called
    with the run config's ``data`` section instead (``data_options`` builds the records)."""
    def from_config(data_cfg, split: str, **kw):
        return make_dataset(data_options.corpus_options(data_cfg), options(data_cfg), split, **kw)
    return from_config


def _sentence_data(objectives: tuple[str, ...]) -> ObjectiveData:
    return ObjectiveData(_configured(functools.partial(pipeline.make_dataset,
                                                       objectives=objectives),
                                     data_options.instance_options),
                         "mlm_targets", "mlm_weights", lambda corpus: corpus.unigram_counts,
                         pipeline.unigram_log_probs_from_counts, lambda out: {},
                         sentence_summary)


def _plm_summary(final: dict) -> str:
    return (f"eval PLM loss {final['eval/plm_loss']:.3f} (unigram baseline "
            f"{final['eval/unigram_entropy']:.3f}), PLM accuracy {final['eval/plm_accuracy']:.3f}")


# Objectives that pretrain alone, with their own input pipeline.
OBJECTIVE_DATA = {
    # XLNet: the unigram baseline scores the permutation LM's predicted tokens.
    "plm": ObjectiveData(_configured(plm.make_dataset, data_options.plm_options),
                         "plm_targets", "plm_weights",
                         lambda corpus: corpus.unigram_counts,
                         pipeline.unigram_log_probs_from_counts, lambda out: {}, _plm_summary),
    "clm": ObjectiveData(_configured(clm.make_dataset, data_options.clm_options),
                         "clm_targets", "clm_weights", clm.unigram_counts,
                         clm.unigram_log_probs_from_counts, _clm_eval_extras, _clm_summary),
}


def objective_data(objectives: Sequence[str]) -> ObjectiveData:
    """The input side of a run's objectives (``train_lib.objective_weights``): MLM and/or one
    sentence task share ``data/pipeline.py``; the others stand alone. A ValueError names what
    combines."""
    names = tuple(objectives)
    if names and set(names) <= set(SENTENCE_OBJECTIVES):
        return _sentence_data(names)
    if len(names) == 1 and names[0] in OBJECTIVE_DATA:
        return OBJECTIVE_DATA[names[0]]
    raise ValueError(f"objectives {list(names)} have no pretraining input: combine any of "
                     f"{list(SENTENCE_OBJECTIVES)}, or use one of {sorted(OBJECTIVE_DATA)} alone")
