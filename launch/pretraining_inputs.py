"""What pretraining needs from each objective's input side: its dataset, the unigram baseline's
targets and counts, derived eval metrics and the closing line.

Add an objective here (and its schema in ``data/features.py``) to pretrain with it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from data import clm, pipeline


def bert_summary(final: dict) -> str:
    return (f"eval MLM loss {final['eval/mlm_loss']:.3f} (unigram baseline "
            f"{final['eval/unigram_entropy']:.3f}), MLM accuracy "
            f"{final['eval/mlm_accuracy']:.3f}, NSP accuracy {final['eval/nsp_accuracy']:.3f}")


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
      make_dataset: ``(data_cfg, split, **kw) -> iterator of host batches``.
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


OBJECTIVE_DATA = {
    "bert_pretrain": ObjectiveData(pipeline.make_dataset, "mlm_targets", "mlm_weights",
                                   lambda corpus: corpus.unigram_counts,
                                   pipeline.unigram_log_probs_from_counts, lambda out: {},
                                   bert_summary),
    "clm": ObjectiveData(clm.make_dataset, "clm_targets", "clm_weights", clm.unigram_counts,
                         clm.unigram_log_probs_from_counts, _clm_eval_extras, _clm_summary),
}


def objective_data(objective: str) -> ObjectiveData:
    """The input side of a pretraining objective; a ValueError names the known ones."""
    if objective not in OBJECTIVE_DATA:
        raise ValueError(f"objective={objective!r} has no pretraining input; known: "
                         f"{sorted(OBJECTIVE_DATA)}")
    return OBJECTIVE_DATA[objective]
