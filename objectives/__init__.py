"""Objectives: pure functions ``(outputs, batch, **options) -> (terms, metrics)``.

``terms`` maps a loss name to ``(loss_sum, weight_sum)``; the trainer optimises
``total_loss(terms)``. ``metrics`` maps a metric name to ``(sum, weight)``; report ``sum / weight``
after summing over steps and hosts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax

from objectives import finetune
from objectives.losses import Pair, total_loss, weighted_accuracy, weighted_cross_entropy
from objectives.mlm import mlm
from objectives.plm import plm
from objectives.sentence import nsp


def bert_pretrain(outputs: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], **kw
                  ) -> tuple[dict[str, Pair], dict[str, Pair]]:
    """BERT pretraining: masked LM + next-sentence prediction, terms and metrics merged.

    Keyword options (``label_smoothing``, ``z_loss``) apply to both.
    """
    mlm_terms, mlm_metrics = mlm(outputs, batch, **kw)
    nsp_terms, nsp_metrics = nsp(outputs, batch, **kw)
    return {**mlm_terms, **nsp_terms}, {**mlm_metrics, **nsp_metrics}


Objective = Callable[..., tuple[dict[str, Pair], dict[str, Pair]]]

OBJECTIVES: dict[str, Objective] = {
    "bert_pretrain": bert_pretrain,
    "plm": plm,
    # Fine-tuning: keyed by the task kind (data.tasks.TaskSpec.kind).
    "classification": finetune.classification,
    "regression": finetune.regression,
    "span_qa": finetune.span_qa,
}

__all__ = ["OBJECTIVES", "Objective", "Pair", "bert_pretrain", "mlm", "nsp", "plm", "total_loss",
           "weighted_accuracy", "weighted_cross_entropy"]
