"""The batch schema: every pipeline's output keys, dims and dtypes, declared once.

Plain Python (no TensorFlow, no JAX) so that models, objectives, pipelines and tests can all import
it. Dims use the shape letters of docs/DESIGN.md §3: ``B`` batch, ``L`` length, ``P`` predictions
per sequence, ``S`` / ``T`` an encoder–decoder's source / target length.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

# The special ids of pretrax's own SentencePiece models (the shipped one and those
# data/tokenizer.py trains; it checks them on load). Other tokenizers (data/hf_tokenizers.py) have
# their own: fine-tuning rows (data/tasks.py, data/qa.py), generation and the model config
# (pad_id, sep_id) take them from ``tokenizer.special_ids``. The pretraining pipelines (mlm,
# nsp/sop/order, clm, plm) use these constants: they accept only pretrax's SentencePiece models
# (``Tokenizer.load`` refuses ``hf:``).
PAD_ID = 0
UNK_ID = 1
CLS_ID = 2
SEP_ID = 3
MASK_ID = 4
BOS_ID = 5
EOS_ID = 6
NUM_SPECIAL_IDS = 7


@dataclasses.dataclass(frozen=True)
class SpecialIds:
    """A tokenizer's special token ids; None where it has no such token (GPT-2 has no [CLS]).

    ``pad`` is the id that padding uses; it is never attended to or scored.
    """
    pad: int | None
    unk: int | None
    cls: int | None
    sep: int | None
    mask: int | None
    bos: int | None
    eos: int | None


EMBEDDED_SPECIAL_IDS = SpecialIds(pad=PAD_ID, unk=UNK_ID, cls=CLS_ID, sep=SEP_ID, mask=MASK_ID,
                                  bos=BOS_ID, eos=EOS_ID)

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
    # Causal LM over packed rows: segment 0 = padding; clm_weights 0 where the next token is in
    # another document (or off the row).
    "clm": {
        "token_ids": (("B", "L"), "int32"),
        "segment_ids": (("B", "L"), "int32"),
        "positions": (("B", "L"), "int32"),
        "clm_targets": (("B", "L"), "int32"),
        "clm_weights": (("B", "L"), "float32"),
    },
    # Pretraining objectives that combine (a run config's ``objectives``): a batch has the union
    # of its objectives' keys, ``schema(["mlm", "sop"])``.
    "mlm": {
        "token_ids": (("B", "L"), "int32"),
        "type_ids": (("B", "L"), "int32"),
        "mlm_positions": (("B", "P"), "int32"),
        "mlm_targets": (("B", "P"), "int32"),
        "mlm_weights": (("B", "P"), "float32"),
    },
    "nsp": {
        "token_ids": (("B", "L"), "int32"),
        "type_ids": (("B", "L"), "int32"),
        "nsp_labels": (("B",), "int32"),
    },
    "sop": {  # sentence-order prediction: 0 = in order, 1 = swapped
        "token_ids": (("B", "L"), "int32"),
        "type_ids": (("B", "L"), "int32"),
        "sop_labels": (("B",), "int32"),
    },
    "order": {  # shuffled-segment order recovery: the permutation's class
        "token_ids": (("B", "L"), "int32"),
        "type_ids": (("B", "L"), "int32"),
        "order_labels": (("B",), "int32"),
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
    # Encoder–decoder (T5, lm/t5.py; objectives/seq2seq.py). The decoder reads
    # ``decoder_input_ids`` = the targets shifted right by one, starting with the decoder start
    # id, which is the pad id (0) as in T5; it predicts ``decoder_target_ids``, scored where
    # ``decoder_weights`` > 0 (1.0 on real target tokens, EOS included; 0 on padding). Built by
    # data/seq2seq_batches.py (tasks) and data/denoising.py (span corruption, sentence
    # permutation). Segment ids: 0 = padding, 1..k = the k-th example
    # packed into the row, the same k on both sides (an unpacked row: 1 on real tokens; every
    # decoder position of an unpacked row is 1, the start token included). Attention stays
    # within an example; relative positions need no per-example positions.
    "seq2seq": {
        "encoder_input_ids": (("B", "S"), "int32"),
        "encoder_segment_ids": (("B", "S"), "int32"),
        "decoder_input_ids": (("B", "T"), "int32"),
        "decoder_target_ids": (("B", "T"), "int32"),
        "decoder_segment_ids": (("B", "T"), "int32"),
        "decoder_weights": (("B", "T"), "float32"),
        # Each token's position within its packed example (0, 1, …; 0 on padding): built by
        # data/seq2seq_batches.py and data/denoising.py; T5's relative attention does not read
        # them, a family with absolute positions would.
        "encoder_positions": (("B", "S"), "int32"),
        "decoder_positions": (("B", "T"), "int32"),
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
# Seq2seq fine-tuning (translation, summarisation, generative QA): the seq2seq keys and the
# example weights of eval padding rows.
FEATURES["seq2seq_task"] = {**FEATURES["seq2seq"], "example_weights": (("B",), "float32")}


def schema(objective: str | Sequence[str]) -> dict[str, tuple[tuple[str, ...], str]]:
    """``FEATURES[objective]``; for a list of objectives, the union of their keys, in order.

    Raises:
      KeyError: for an unknown objective.
    """
    names = [objective] if isinstance(objective, str) else list(objective)
    out = {}
    for name in names:
        if name not in FEATURES:
            raise KeyError(f"unknown objective {name!r}; known: {sorted(FEATURES)}")
        out.update(FEATURES[name])
    return out


def shapes(objective: str | Sequence[str], **dims: int) -> dict[str, tuple[tuple[int, ...], str]]:
    """Concrete ``{key: (shape, dtype)}`` for ``objective`` (a name, or a list of names whose keys
    are merged) given sizes for its dims.

    Example: ``shapes("bert_pretrain", B=32, L=128, P=20)``, ``shapes(["mlm", "sop"], ...)``.

    Raises:
      KeyError: for an unknown objective or a dim letter without a size.
    """
    out = {}
    for key, (letters, dtype) in schema(objective).items():
        missing = [d for d in letters if d not in dims]
        if missing:
            raise KeyError(f"{objective}.{key} needs sizes for dims {missing}")
        out[key] = (tuple(dims[d] for d in letters), dtype)
    return out
