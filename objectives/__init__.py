"""Objectives: pure functions ``(outputs, batch, **options) -> (terms, metrics)``.

``terms`` maps a loss name to ``(loss_sum, weight_sum)``; the trainer optimises
``total_loss(terms)``. ``metrics`` maps a metric name to ``(sum, weight)``; report ``sum / weight``
after summing over steps and hosts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import jax

from objectives import finetune
from objectives.clm import clm
from objectives.losses import Pair, total_loss, weighted_accuracy, weighted_cross_entropy
from objectives.mlm import mlm
from objectives.plm import plm
from objectives.sentence import nsp, order, sop


def bert_pretrain(outputs: Mapping[str, jax.Array], batch: Mapping[str, jax.Array], **kw
                  ) -> tuple[dict[str, Pair], dict[str, Pair]]:
    """BERT pretraining: masked LM + next-sentence prediction, terms and metrics merged.

    Keyword options (``label_smoothing``, ``z_loss``) apply to both.
    """
    mlm_terms, mlm_metrics = mlm(outputs, batch, **kw)
    nsp_terms, nsp_metrics = nsp(outputs, batch, **kw)
    return {**mlm_terms, **nsp_terms}, {**mlm_metrics, **nsp_metrics}


Objective = Callable[..., tuple[dict[str, Pair], dict[str, Pair]]]

# Named objectives that are sums of others, as weights (what a config's ``objectives`` holds).
COMBINATIONS: dict[str, dict[str, float]] = {"bert_pretrain": {"mlm": 1.0, "nsp": 1.0}}

OBJECTIVES: dict[str, Objective] = {
    "bert_pretrain": bert_pretrain,
    "clm": clm,
    "plm": plm,
    # Pretraining objectives that combine with weights (``weighted``).
    "mlm": mlm,
    "nsp": nsp,
    "sop": sop,
    "order": order,
    # Fine-tuning: keyed by the task kind (data.tasks.TaskSpec.kind).
    "classification": finetune.classification,
    "regression": finetune.regression,
    "span_qa": finetune.span_qa,
}



def weighted(weights: Mapping[str, float]) -> Objective:
    """The objective ``Σ weight · objective`` over ``OBJECTIVES`` named in ``weights``.

    Each objective's loss terms are scaled by its weight (``total_loss`` then gives
    ``Σ weight · mean loss``); its metrics are not, so ``sop_loss`` etc. stay comparable across
    weightings. A weight of 0 leaves the objective out (no outputs or batch keys needed).

    Raises:
      KeyError: for a name not in ``OBJECTIVES``; ValueError: for a negative weight or none left.
    """
    active = {name: float(w) for name, w in weights.items() if w}
    unknown = [name for name in active if name not in OBJECTIVES]
    if unknown:
        raise KeyError(f"unknown objectives {unknown}; known: {sorted(OBJECTIVES)}")
    if not active or any(w < 0 for w in active.values()):
        raise ValueError(f"objective weights {dict(weights)}: need at least one positive weight "
                         "and no negative ones")

    def objective(outputs, batch, **kw):
        terms, metrics = {}, {}
        for name, w in active.items():
            t, m = OBJECTIVES[name](outputs, batch, **kw)
            terms.update({k: (w * s, n) for k, (s, n) in t.items()})
            metrics.update(m)
        return terms, metrics

    return objective


__all__ = ["COMBINATIONS", "OBJECTIVES", "Objective", "Pair", "bert_pretrain", "clm", "mlm", "nsp",
           "order", "plm", "sop", "total_loss", "weighted", "weighted_accuracy",
           "weighted_cross_entropy"]
