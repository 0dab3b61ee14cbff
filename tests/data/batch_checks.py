"""A checker for pretraining batches: ``data/features.py``'s keys, shapes and dtypes, and the
value rules every BERT-layout batch (MLM and/or one sentence task) must keep.

``check_sentence_batch`` raises AssertionError naming the row and the rule that broke, so a
property-based test that feeds it arbitrary text reports the first batch that is wrong.
"""

from __future__ import annotations

import numpy as np

from data import features, sentence_order

_STRUCTURE = (features.PAD_ID, features.CLS_ID, features.SEP_ID, features.MASK_ID,
              features.BOS_ID, features.EOS_ID)


def check_schema(batch: dict, objectives, **dims: int) -> None:
    """Keys, shapes and dtypes exactly ``features.shapes(objectives, **dims)``."""
    want = features.shapes(objectives, **dims)
    got = {k: (tuple(v.shape), v.dtype.name) for k, v in batch.items()}
    assert got == want, f"batch schema {got} != {want}"


def _check_mlm_row(row: int, orig: np.ndarray, batch: dict, masked_lm_prob: float,
                   vocab_size: int, exact_count: bool) -> None:
    weights = batch["mlm_weights"][row]
    positions, targets = batch["mlm_positions"][row], batch["mlm_targets"][row]
    assert set(np.unique(weights).tolist()) <= {0.0, 1.0}, f"row {row}: mlm_weights {weights}"
    n = int(weights.sum())
    assert np.all(weights[:n] == 1), f"row {row}: mlm_weights not a prefix of ones: {weights}"
    assert np.all(positions[n:] == 0) and np.all(targets[n:] == 0), (
        f"row {row}: unused prediction slots are not zero")
    pos = positions[:n]
    assert np.all(np.diff(pos) > 0), f"row {row}: mlm_positions not increasing: {pos}"
    candidates = int((orig >= features.NUM_SPECIAL_IDS).sum())
    if exact_count:
        want = min(len(weights), max(1, round(candidates * masked_lm_prob)), candidates)
        assert n == want, f"row {row}: {n} predictions, want {want} of {candidates} candidates"
    assert n <= candidates, f"row {row}: {n} predictions but {candidates} candidates"
    if n:
        assert np.all(orig[pos] >= features.NUM_SPECIAL_IDS), (
            f"row {row}: a special token is predicted at {pos}")
        assert np.array_equal(targets[:n], orig[pos]), f"row {row}: mlm_targets != tokens"
        shown = batch["token_ids"][row][pos]
        ok = (shown == features.MASK_ID) | (shown == targets[:n]) | (
            (shown >= features.NUM_SPECIAL_IDS) & (shown < vocab_size))
        assert np.all(ok), f"row {row}: a masked position shows {shown}"


def _check_layout_row(row: int, orig: np.ndarray, types: np.ndarray, label: int | None,
                      task: str, max_segments: int) -> None:
    real = int((orig != features.PAD_ID).sum())
    assert real >= 3 and np.all(orig[:real] != features.PAD_ID), (
        f"row {row}: padding not contiguous at the end: {orig}")
    assert orig[0] == features.CLS_ID and orig[real - 1] == features.SEP_ID, (
        f"row {row}: not [CLS] … [SEP]: {orig[:real]}")
    seps = np.flatnonzero(orig[:real] == features.SEP_ID)
    k = len(seps)
    assert 1 <= k <= (max_segments if task == "order" else 2), f"row {row}: {k} [SEP]s"
    if task in ("nsp", "sop"):
        assert k == 2, f"row {row}: {task} needs 2 segments, got {k}"
    starts = np.concatenate([[1], seps[:-1] + 1])
    assert np.all(seps - starts >= 1), f"row {row}: an empty segment: {orig[:real]}"
    body = np.delete(orig[1:real], seps - 1)
    assert not np.isin(body, _STRUCTURE).any(), f"row {row}: a special id inside a segment"
    want_types = np.zeros_like(types)
    for j, (start, sep) in enumerate(zip(starts, seps, strict=True)):
        want_types[start:sep + 1] = j % 2
    assert np.array_equal(types, want_types), f"row {row}: type_ids {types} != {want_types}"
    if task in ("nsp", "sop"):
        assert label in (0, 1), f"row {row}: {task} label {label}"
    elif label is not None:
        first = sentence_order.num_order_classes(k - 1) if k > 1 else 0
        assert first <= label < sentence_order.num_order_classes(k), (
            f"row {row}: order label {label} is not a permutation of {k} segments")


def check_sentence_batch(batch: dict, objectives, *, batch_size: int, max_seq_length: int,
                         max_predictions: int, vocab_size: int, masked_lm_prob: float = 0.15,
                         max_segments: int = 3, exact_count: bool = True) -> None:
    """Asserts that a ``data.pipeline`` batch keeps every rule of its schema.

    Args:
      batch: numpy dict from ``data.pipeline.make_dataset`` (or its functions).
      objectives: ``mlm`` and/or one sentence task, as given to ``make_dataset``.
      batch_size, max_seq_length, max_predictions: B, L, P.
      vocab_size: V; every id must be below it.
      masked_lm_prob: the config's, for the exact prediction count.
      max_segments: order's ``order_max_segments``.
      exact_count: check the number of predictions per row exactly (token masking; whole-word
        masking may choose fewer).
    """
    objectives = list(objectives)
    dims = dict(B=batch_size, L=max_seq_length, P=max_predictions)
    check_schema(batch, objectives, **dims)
    tokens = batch["token_ids"]
    assert np.all((tokens >= 0) & (tokens < vocab_size)), "token_ids outside [0, V)"
    task = sentence_order.sentence_task(objectives)
    labels = batch.get(f"{task}_labels")
    for row in range(batch_size):
        orig = tokens[row].copy()
        if "mlm" in objectives:
            n = int(batch["mlm_weights"][row].sum())
            orig[batch["mlm_positions"][row][:n]] = batch["mlm_targets"][row][:n]
            _check_mlm_row(row, orig, batch, masked_lm_prob, vocab_size, exact_count)
        label = None if labels is None else int(labels[row])
        _check_layout_row(row, orig, batch["type_ids"][row], label, task, max_segments)
