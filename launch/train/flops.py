"""Model FLOPs of a train step and the peak FLOP/s of the devices: the two halves of MFU.

``model_flops`` counts matmuls only, 3 × the forward (backward = 2 × forward), as
``launch/benchmarking/run.py``'s docstring details. The benchmark and the train loop's ``mfu``
scalar share it, so both report the same utilisation for the same step time.
"""

from __future__ import annotations

import dataclasses

import jax

from objectives import registry


@dataclasses.dataclass(frozen=True)
class Shape:
    """One step's shape. ``predictions`` (P) is BERT's gathered MLM positions a sequence."""
    arch: str = "bert"
    hidden: int = 256
    layers: int = 4
    heads: int = 4
    mlp: int = 1024
    seq: int = 128
    batch: int = 32
    vocab: int = 8192
    predictions: int = 20
    dropout: float = 0.1
    dtype: str = "float32"

    @property
    def tokens(self) -> int:
        return self.batch * self.seq


def model_flops(shape: Shape, embed_dim: int | None = None) -> float:
    """Training FLOPs of one step (module docstring): 3 × the forward's matmul FLOPs."""
    d, f, n, length, v = shape.hidden, shape.mlp, shape.layers, shape.seq, shape.vocab
    per_token = n * (2 * (4 * d * d + 2 * d * f) + 4 * length * d)
    if embed_dim and embed_dim != d:
        per_token += 2 * embed_dim * d
    forward = shape.tokens * per_token
    if shape.arch == "gpt":
        forward += shape.tokens * 2 * d * v
    else:
        forward += shape.batch * shape.predictions * (2 * d * d + 2 * d * v)
        forward += shape.batch * (2 * d * d + 4 * d)
    return 3.0 * forward


@dataclasses.dataclass(frozen=True)
class Chip:
    """One accelerator chip's published figures (one JAX device each; TPU v4 and v5p as
    megacores).

    Attributes:
      peak_flops: dense bf16 FLOP/s.
      hbm_bytes: high-bandwidth memory.
      hbm_bandwidth: HBM bytes/s.
    """
    peak_flops: float
    hbm_bytes: float
    hbm_bandwidth: float


_GIB = 2 ** 30
# By the ``device_kind`` JAX reports (lower case); TPU v5e and v6e report themselves as "lite",
# v5p as "TPU v5". Sources: the Cloud TPU system-architecture pages (v4, v5e, v5p, v6e) and
# NVIDIA's datasheets (SXM boards; dense, without sparsity).
CHIPS = {
    "tpu v4": Chip(275e12, 32 * _GIB, 1228e9),
    "tpu v5 lite": Chip(197e12, 16 * _GIB, 819e9), "tpu v5e": Chip(197e12, 16 * _GIB, 819e9),
    "tpu v5": Chip(459e12, 95 * _GIB, 2765e9), "tpu v5p": Chip(459e12, 95 * _GIB, 2765e9),
    "tpu v6 lite": Chip(918e12, 32 * _GIB, 1640e9), "tpu v6e": Chip(918e12, 32 * _GIB, 1640e9),
}
# NVIDIA kinds carry the board after the chip ("NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3"):
# matched by prefix, the first that matches. The PCIe H100 is clocked lower than the SXM one.
_NVIDIA_CHIPS = (("nvidia h100 pcie", Chip(756e12, 80e9, 2000e9)),
                 ("nvidia a100-sxm4-40gb", Chip(312e12, 40e9, 1555e9)),
                 ("nvidia a100", Chip(312e12, 80e9, 2039e9)),
                 ("nvidia h100", Chip(989e12, 80e9, 3350e9)),
                 ("nvidia h200", Chip(989e12, 141e9, 4800e9)))
PEAK_FLOPS = {kind: chip.peak_flops for kind, chip in CHIPS.items()}


def chip(device_kind: str) -> Chip | None:
    """The published figures of ``device_kind``, or None (a CPU, an unlisted accelerator)."""
    kind = device_kind.strip().lower()
    if kind in CHIPS:
        return CHIPS[kind]
    return next((c for prefix, c in _NVIDIA_CHIPS if kind.startswith(prefix)), None)


def peak_flops_per_device(given: float, device_kind: str) -> float | None:
    """``given`` (``train.peak_flops_per_device``) when set, else the published peak of
    ``device_kind``; None when neither is known (a CPU, an unlisted accelerator).

    Raises:
      ValueError: a negative ``given``.
    """
    if given < 0:
        raise ValueError(f"train.peak_flops_per_device={given!r} is negative: give the peak "
                         "FLOP/s of one device (e.g. --config.train.peak_flops_per_device=275e12 "
                         "for a TPU v4 chip), or 0 to look it up by the device kind")
    if given:
        return float(given)
    found = chip(device_kind)
    return None if found is None else found.peak_flops


def pretraining_shape(cfg, model_cfg, objectives) -> Shape | None:
    """The ``Shape`` of a pretraining step (BERT, ALBERT, GPT); None for XLNet, whose two-stream
    attention the formula does not count."""
    if cfg.model.arch not in ("bert", "albert", "gpt"):
        return None
    predictions = cfg.data.get("max_predictions_per_seq", 0) if registry.MLM in objectives else 0
    return Shape(arch="gpt" if cfg.model.arch == "gpt" else "bert",
                 hidden=model_cfg.hidden_size, layers=model_cfg.num_layers,
                 heads=model_cfg.num_heads, mlp=model_cfg.mlp_dim, seq=cfg.data.max_seq_length,
                 batch=cfg.train.batch_size, vocab=model_cfg.vocab_size,
                 predictions=predictions if cfg.model.arch != "gpt" else 0)


def utilisation_terms(cfg, model_cfg, objectives, peak_per_device: float | None) -> dict:
    """``reporting.Throughput``'s ``flops_per_step`` and ``peak_flops`` (all devices) for a
    pretraining run, or {} when either is unknown (then no ``mfu`` is logged)."""
    shape = pretraining_shape(cfg, model_cfg, objectives)
    if peak_per_device is None or shape is None:
        return {}
    return {"flops_per_step": model_flops(shape, model_cfg.embed_dim),
            "peak_flops": peak_per_device * jax.device_count()}
