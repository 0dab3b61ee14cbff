"""One record per objective: its loss, the batch keys and model outputs it reads, its input
family, its sentence head's class count, its metric names and its context-free baseline.

A run config names its objectives as ``objectives = {name: weight}`` (weight 0 = not used); the
trainer optimises :func:`weighted` of them. Fine-tuning kinds (``data.tasks.TaskSpec.kind``) have
records too, looked up by kind. Nothing here reads data: ``launch/pretraining/inputs.py`` maps an
input family to its ``data/`` pipeline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import jax

from objectives import finetune
from objectives.clm import clm
from objectives.losses import Pair
from objectives.mlm import mlm
from objectives.plm import plm
from objectives.sentence import nsp, num_order_classes, order, sop
from objectives.seq2seq import seq2seq

# Objective names (a run config's ``objectives`` keys; fine-tuning task kinds).
MLM, NSP, SOP, ORDER, CLM, PLM = "mlm", "nsp", "sop", "order", "clm", "plm"
SEQ2SEQ = "seq2seq"
CLASSIFICATION, REGRESSION, SPAN_QA = "classification", "regression", "span_qa"

# Input families: which pipeline builds an objective's batches. Objectives of one run share one.
SENTENCE_INPUTS = "sentence"  # BERT/ALBERT instances: MLM and/or one sentence task
CLM_INPUTS = "clm"  # packed documents, next-token targets
PLM_INPUTS = "plm"  # XLNet's permuted sentence pairs
TASK_INPUTS = "tasks"  # fine-tuning rows of a classification or regression task
QA_INPUTS = "qa"  # fine-tuning span-QA features
# Encoder–decoder rows (data/features.py: seq2seq): T5 span corruption or BART sentence
# permutation in pretraining (data/seq2seq_pretraining.py, ``data.denoising``), a task's
# (source, target) pairs in fine-tuning.
SEQ2SEQ_INPUTS = "seq2seq"

LossFn = Callable[..., tuple[dict[str, Pair], dict[str, Pair]]]


@dataclasses.dataclass(frozen=True)
class Baseline:
    """The context-free baseline: a unigram distribution scoring the tokens of ``targets``,
    weighted by ``weights`` (batch keys)."""
    targets: str
    weights: str


@dataclasses.dataclass(frozen=True)
class Objective:
    """What the trainer and the composition root need to know of one objective.

    Attributes:
      name: the key in ``OBJECTIVES`` (and in a config's ``objectives``).
      loss: ``(outputs, batch, *, label_smoothing, z_loss, **options) -> (terms, metrics)``.
      batch_keys: the batch keys ``loss`` reads (a subset of ``data.features.schema(name)``).
      inputs: the input family that builds its batches (``SENTENCE_INPUTS``, …).
      outputs: the model outputs ``loss`` reads.
      metrics: the metric names ``loss`` returns at evaluation (no z-loss); ``order`` adds
        ``order_accuracy_k{k}`` per segment count k.
      baseline: the unigram baseline's batch keys; None for a sentence-level objective.
      head_classes: the run's data options → the class count of the model's head for it, where
        the objective decides it (the sentence tasks); None otherwise.
      options: keyword options the run must bind (``weighted``), e.g. ``sep_id``.
    """
    name: str
    loss: LossFn
    batch_keys: tuple[str, ...]
    inputs: str
    outputs: tuple[str, ...]
    metrics: tuple[str, ...]
    baseline: Baseline | None = None
    head_classes: Callable[[Any], int] | None = None
    options: tuple[str, ...] = ()


def _two_classes(data_options) -> int:
    """NSP (is next / random) and SOP (in order / swapped)."""
    del data_options
    return 2


def _order_classes(data_options) -> int:
    """Σ_{k ≤ order_max_segments} k! permutation classes."""
    return num_order_classes(data_options.order_max_segments)


def _token_level(name: str, loss: LossFn, inputs: str, output: str) -> Objective:
    """A token-prediction objective: ``{name}_targets`` / ``{name}_weights``, scored against
    the unigram baseline on those same keys."""
    keys = (f"{name}_targets", f"{name}_weights")
    return Objective(name, loss, keys, inputs, (output,), (f"{name}_loss", f"{name}_accuracy"),
                     baseline=Baseline(*keys))


def _sentence_level(name: str, loss: LossFn, head_classes: Callable[[Any], int],
                    batch_keys: tuple[str, ...] = (), options: tuple[str, ...] = ()
                    ) -> Objective:
    """A sentence task on the pooled output: ``{name}_logits`` against ``{name}_labels``."""
    return Objective(name, loss, (f"{name}_labels", *batch_keys), SENTENCE_INPUTS,
                     (f"{name}_logits",), (f"{name}_loss", f"{name}_accuracy"),
                     head_classes=head_classes, options=options)


_WEIGHTED_ROWS = ("labels", "example_weights")

OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    _token_level(MLM, mlm, SENTENCE_INPUTS, "mlm_logits"),
    _sentence_level(NSP, nsp, _two_classes),
    _sentence_level(SOP, sop, _two_classes),
    # The segment count (one [SEP] ends each segment) selects the classes an instance can have.
    _sentence_level(ORDER, order, _order_classes, ("token_ids",), ("sep_id",)),
    _token_level(CLM, clm, CLM_INPUTS, "logits"),
    _token_level(PLM, plm, PLM_INPUTS, "plm_logits"),
    Objective(SEQ2SEQ, seq2seq, ("decoder_target_ids", "decoder_weights"), SEQ2SEQ_INPUTS,
              ("logits",), ("seq2seq_loss", "seq2seq_accuracy"),
              baseline=Baseline("decoder_target_ids", "decoder_weights")),
    Objective(CLASSIFICATION, finetune.classification, _WEIGHTED_ROWS, TASK_INPUTS, ("logits",),
              ("task_loss", "task_accuracy")),
    Objective(REGRESSION, finetune.regression, _WEIGHTED_ROWS, TASK_INPUTS, ("logits",),
              ("task_loss",)),
    Objective(SPAN_QA, finetune.span_qa, ("start_positions", "end_positions", "example_weights"),
              QA_INPUTS, ("start_logits", "end_logits"),
              ("task_loss", "start_accuracy", "end_accuracy")),
)}

# What a pretraining run config's ``objectives`` may name.
PRETRAINING = tuple(n for n, o in OBJECTIVES.items()
                    if o.inputs in (SENTENCE_INPUTS, CLM_INPUTS, PLM_INPUTS, SEQ2SEQ_INPUTS))


def get(name: str) -> Objective:
    """``OBJECTIVES[name]``.

    Raises:
      ValueError: for an unknown name (one line naming the known ones).
    """
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; known: {', '.join(sorted(OBJECTIVES))}")
    return OBJECTIVES[name]


def active_weights(weights: Mapping[str, float], known: tuple[str, ...] = PRETRAINING
                   ) -> dict[str, float]:
    """``weights`` without its zero weights, in its order, as floats.

    Raises:
      ValueError: (one line) for a name not in ``known``, a negative weight or none positive.
    """
    unknown = [name for name in weights if name not in known]
    if unknown:
        raise ValueError(f"unknown objectives {unknown}; known: {', '.join(sorted(known))}")
    active = {name: float(w) for name, w in weights.items() if w}
    if not active or any(w < 0 for w in active.values()):
        raise ValueError(f"objective weights {dict(weights)}: need at least one positive weight "
                         "and no negative ones")
    return active


def _check_reads(spec: Objective, outputs: Mapping[str, jax.Array],
                 batch: Mapping[str, jax.Array]) -> None:
    """A one-line ValueError when the model or the batch lacks what ``spec.loss`` reads."""
    missing = [f"output {k}" for k in spec.outputs if k not in outputs]
    missing += [f"batch key {k}" for k in spec.batch_keys if k not in batch]
    if missing:
        raise ValueError(f"objective {spec.name} needs {', '.join(missing)}; the model gives "
                         f"{sorted(outputs)} and the batch has {sorted(batch)}")


def weighted(weights: Mapping[str, float], **options: Any) -> LossFn:
    """The objective ``Σ weight · objective`` over the pretraining objectives in ``weights``.

    Each objective's loss terms are scaled by its weight (``total_loss`` then gives
    ``Σ weight · mean loss``); its metrics are not, so ``sop_loss`` etc. stay comparable across
    weightings. A weight of 0 leaves the objective out (no outputs or batch keys needed). Terms
    and metrics come in the order of ``weights``. ``options`` (e.g. ``sep_id``) go to the
    objectives that declare them (``Objective.options``).

    Raises:
      ValueError: for an unknown name, a negative weight, none positive (``active_weights``) or
        an option an active objective needs and ``options`` lacks.
    """
    active = active_weights(weights)
    needed = [f"{n}: {o}" for n in active for o in OBJECTIVES[n].options if o not in options]
    if needed:
        raise ValueError(f"objectives need options {needed}")

    def objective(outputs, batch, **kw):
        terms, metrics = {}, {}
        for name, w in active.items():
            spec = OBJECTIVES[name]
            _check_reads(spec, outputs, batch)
            t, m = spec.loss(outputs, batch, **kw, **{o: options[o] for o in spec.options})
            terms.update({k: (w * s, n) for k, (s, n) in t.items()})
            metrics.update(m)
        return terms, metrics

    return objective
