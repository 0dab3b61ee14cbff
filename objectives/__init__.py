"""Objectives: pure functions ``(outputs, batch, **options) -> (terms, metrics)``, one registry
record each (``OBJECTIVES``, objectives/registry.py).

``terms`` maps a loss name to ``(loss_sum, weight_sum)``; the trainer optimises
``total_loss(terms)``. ``metrics`` maps a metric name to ``(sum, weight)``; report ``sum / weight``
after summing over steps and hosts. A pretraining run optimises ``weighted(cfg.objectives)``.
"""

from __future__ import annotations

from objectives.clm import clm
from objectives.losses import Pair, total_loss, weighted_accuracy, weighted_cross_entropy
from objectives.mlm import mlm
from objectives.plm import plm
from objectives.registry import OBJECTIVES, PRETRAINING, Baseline, LossFn, Objective, weighted
from objectives.sentence import nsp, order, sop
from objectives.seq2seq import seq2seq

__all__ = ["OBJECTIVES", "PRETRAINING", "Baseline", "LossFn", "Objective", "Pair", "clm", "mlm",
           "nsp", "order", "plm", "seq2seq", "sop", "total_loss", "weighted", "weighted_accuracy",
           "weighted_cross_entropy"]
