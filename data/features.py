"""The batch schema: every pipeline's output keys, dims and dtypes, declared once.

Plain Python (no TensorFlow, no JAX) so that models, objectives, pipelines and tests can all import
it. Dims use the shape letters of DESIGN.md §3: ``B`` batch, ``L`` length, ``P`` predictions per
sequence.
"""

from __future__ import annotations

# Special token ids, defined once for the whole stack. The shipped SentencePiece model is trained
# so that these ids hold (data/tokenizer.py checks it on load).
PAD_ID = 0
UNK_ID = 1
CLS_ID = 2
SEP_ID = 3
MASK_ID = 4
BOS_ID = 5
EOS_ID = 6
NUM_SPECIAL_IDS = 7

# objective → key → (dims, dtype)
FEATURES: dict[str, dict[str, tuple[tuple[str, ...], str]]] = {
    "bert_pretrain": {
        "token_ids": (("B", "L"), "int32"),
        "type_ids": (("B", "L"), "int32"),
        "mlm_positions": (("B", "P"), "int32"),
        "mlm_targets": (("B", "P"), "int32"),
        "mlm_weights": (("B", "P"), "float32"),
        "nsp_labels": (("B",), "int32"),
    },
    # XLNet permutation LM (data/plm.py). ``can_attend`` is the content stream's mask (True = may
    # attend; the query stream's is it without the diagonal). type_ids: XLNet gives <cls> type 2.
    "plm": {
        "token_ids": (("B", "L"), "int32"),
        "type_ids": (("B", "L"), "int32"),
        "can_attend": (("B", "L", "L"), "bool"),
        "plm_target_mapping": (("B", "P", "L"), "float32"),
        "plm_targets": (("B", "P"), "int32"),
        "plm_weights": (("B", "P"), "float32"),
    },
    # Fine-tuning. ``example_weights`` is 1.0 for a real example and 0.0 for the rows that pad the
    # last eval batch to the static batch size, so every example is scored exactly once.
    "classification": {
        "token_ids": (("B", "L"), "int32"),
        "type_ids": (("B", "L"), "int32"),
        "labels": (("B",), "int32"),
        "example_weights": (("B",), "float32"),
    },
    "regression": {
        "token_ids": (("B", "L"), "int32"),
        "type_ids": (("B", "L"), "int32"),
        "labels": (("B",), "float32"),
        "example_weights": (("B",), "float32"),
    },
    # Span QA: 0 = no answer, which points at the [CLS] position.
    "span_qa": {
        "token_ids": (("B", "L"), "int32"),
        "type_ids": (("B", "L"), "int32"),
        "start_positions": (("B",), "int32"),
        "end_positions": (("B",), "int32"),
        "example_weights": (("B",), "float32"),
    },
}


def shapes(objective: str, **dims: int) -> dict[str, tuple[tuple[int, ...], str]]:
    """Concrete ``{key: (shape, dtype)}`` for ``objective`` given sizes for its dims.

    Example: ``shapes("bert_pretrain", B=32, L=128, P=20)``.

    Raises:
      KeyError: for an unknown objective or a dim letter without a size.
    """
    if objective not in FEATURES:
        raise KeyError(f"unknown objective {objective!r}; known: {sorted(FEATURES)}")
    out = {}
    for key, (letters, dtype) in FEATURES[objective].items():
        missing = [d for d in letters if d not in dims]
        if missing:
            raise KeyError(f"{objective}.{key} needs sizes for dims {missing}")
        out[key] = (tuple(dims[d] for d in letters), dtype)
    return out
