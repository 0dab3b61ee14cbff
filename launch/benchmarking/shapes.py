"""The benchmark's named shapes and its synthetic batches (shared by both sides of the
comparison: pretrax's step and the PyTorch reference)."""

from __future__ import annotations

import dataclasses

import numpy as np

from data import features
from launch.train.flops import Shape

# The reference (a plain Flax BERT and HF PyTorch were measured at it before pretrax), and
# the accelerator shapes whose MFU the README reports.
SHAPES = {
    "reference": Shape(),
    "bert_base_512": Shape(hidden=768, layers=12, heads=12, mlp=3072, seq=512, batch=32,
                           vocab=30522, predictions=76, dtype="bfloat16"),
    "gpt2_small": Shape(arch="gpt", hidden=768, layers=12, heads=12, mlp=3072, seq=1024, batch=8,
                        vocab=50257, predictions=0, dtype="bfloat16"),
    "gpt_reference": Shape(arch="gpt", predictions=0),
    # XLNet-base's data (85 targets: K = 6 of 512 tokens); its step is not benchmarked, only the
    # input pipeline (--pipeline_only).
    "xlnet_base_512": Shape(arch="xlnet", hidden=768, layers=12, heads=12, mlp=3072, seq=512,
                            batch=32, vocab=32000, predictions=85, dtype="bfloat16"),
}
# What --pipeline_only times by default: BERT-base's and XLNet-base's input at seq 512.
PIPELINE_SHAPES = ("bert_base_512", "xlnet_base_512")


def resolve(name: str, overrides: dict[str, str | None]) -> Shape:
    """The named shape with the fields given as strings in ``overrides`` (None = keep)."""
    if name not in SHAPES:
        raise ValueError(f"shape {name!r}: known shapes {sorted(SHAPES)}")
    base = SHAPES[name]
    types = {f.name: f.type for f in dataclasses.fields(base)}
    casts = {"int": int, "float": float, "str": str}
    return dataclasses.replace(base, **{k: casts[types[k]](v) for k, v in overrides.items()
                                        if v is not None})


def synthetic_batch(shape: Shape, seed: int = 0) -> dict[str, np.ndarray]:
    """A full batch in ``data/features.py``'s schema: random ids, no padding."""
    rng = np.random.default_rng(seed)
    b, length, v = shape.batch, shape.seq, shape.vocab
    ids = rng.integers(features.NUM_SPECIAL_IDS, v, size=(b, length), dtype=np.int32)
    if shape.arch == "gpt":
        return {"token_ids": ids, "segment_ids": np.ones((b, length), np.int32),
                "positions": np.broadcast_to(np.arange(length, dtype=np.int32), (b, length)).copy(),
                "clm_targets": np.roll(ids, -1, axis=1),
                "clm_weights": np.ones((b, length), np.float32)}
    p = shape.predictions
    positions = np.sort(np.stack([rng.choice(np.arange(1, length), p, replace=False)
                                  for _ in range(b)]), axis=1).astype(np.int32)
    type_ids = np.zeros((b, length), np.int32)
    type_ids[:, length // 2:] = 1
    return {"token_ids": ids, "type_ids": type_ids, "mlm_positions": positions,
            "mlm_targets": np.take_along_axis(ids, positions, axis=1),
            "mlm_weights": np.ones((b, p), np.float32),
            "nsp_labels": rng.integers(0, 2, size=(b,), dtype=np.int32)}
