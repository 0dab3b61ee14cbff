"""Scoring a fine-tuned model on a task split: predictions on device, metrics on the host.

Metrics such as F1, Matthews correlation or SQuAD's exact match are not sums over batches, so the
model's outputs for a whole split are gathered first (every process sees the global batch's
outputs) and scored once.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import numpy as np
from jax.experimental import multihost_utils

from data import qa, squad_metrics, tasks
from launch.evaluation import classification
from launch.train import mesh as mesh_lib
from launch.train import step_fns
from objectives import task_metrics


@dataclasses.dataclass
class EvalSplit:
    """One split, ready to score: global on-device batches plus what post-processing needs.

    Attributes:
      batches: global batches (jax.Arrays), the last one padded with ``example_weights`` 0.
      num_rows: real (unpadded) rows: examples, or QA windows.
      qa_features: span QA only: the windows, for turning logits back into answer text.
      qa_examples: span QA only: the examples (ids, gold answers).
    """

    batches: list[dict]
    num_rows: int
    qa_features: qa.QaFeatures | None = None
    qa_examples: list | None = None


def make_predict_fn(model, params_shardings, mesh, rules) -> Callable:
    """jit: (params, global batch) → (outputs, its label keys), batch-sharded like the input.

    The outputs stay where they were computed (no collective in the step); `gather` brings
    them to the host, from every process.
    """
    batch_sh = mesh_lib.batch_sharding(mesh, rules)

    def predict(params, batch):
        outputs = model.apply({"params": params}, batch, deterministic=True)
        keep = {k: v for k, v in batch.items() if k not in ("token_ids", "type_ids")}
        return outputs, keep

    fn = jax.jit(predict, in_shardings=(params_shardings, batch_sh), out_shardings=batch_sh)
    return step_fns.in_mesh(fn, mesh, rules)


def _to_host(tree):
    if jax.process_count() == 1:
        return jax.device_get(tree)
    return multihost_utils.process_allgather(tree, tiled=True)


def gather(predict_fn, params, split: EvalSplit) -> tuple[dict, dict]:
    """Outputs and batch values of the whole split as host arrays, padding rows dropped.

    Each batch is fetched before the next is dispatched, which keeps device memory flat.
    """
    outs, keeps = [], []
    for batch in split.batches:
        o, k = _to_host(predict_fn(params, batch))
        outs.append(o)
        keeps.append(k)
    cat = functools.partial(_concat, n=split.num_rows)
    return cat(outs), cat(keeps)


def _concat(parts: list[dict], n: int) -> dict:
    # Padding rows come last (the data pipelines pad only the final batch).
    return {k: np.concatenate([p[k] for p in parts])[:n] for k in parts[0]}


def score(predict_fn, params, split: EvalSplit, spec: tasks.TaskSpec) -> dict[str, float]:
    """The task's metrics on one split (classification: with the expected calibration error,
    ``ece``), and its ``examples`` count."""
    return score_gathered(*gather(predict_fn, params, split), split, spec)


def score_gathered(outputs: dict, batch: dict, split: EvalSplit, spec: tasks.TaskSpec
                   ) -> dict[str, float]:
    """``score`` of outputs ``gather`` already brought to the host."""
    if spec.kind == "span_qa":
        predictions = qa.postprocess(outputs["start_logits"], outputs["end_logits"],
                                     split.qa_features, split.qa_examples)
        return squad_metrics.squad_v2_scores(predictions, split.qa_examples)
    logits = outputs["logits"]
    predictions = logits[:, 0] if spec.kind == "regression" else np.argmax(logits, axis=-1)
    out = task_metrics.compute(spec.metrics, predictions, batch["labels"],
                               batch["example_weights"])
    if spec.kind == "classification":  # calibration beside accuracy, in every run's results
        out["ece"] = classification.expected_calibration_error(
            classification.softmax(logits), batch["labels"], batch["example_weights"])
    out["examples"] = float(np.sum(batch["example_weights"]))
    return out


def predictions_of(predict_fn, params, split: EvalSplit, spec: tasks.TaskSpec) -> np.ndarray:
    """Predicted class ids (float predictions for regression) of a classification split."""
    outputs, _ = gather(predict_fn, params, split)
    logits = outputs["logits"]
    return logits[:, 0] if spec.kind == "regression" else np.argmax(logits, axis=-1)
