"""Logical axis names and the default logical→mesh rules (docs/DESIGN.md §3).

Models name every parameter and every constrained activation with the names below and never see a
mesh. The mapping to mesh axes lives in run configs (``config.logical_axis_rules``); these defaults
are what configs start from.
"""

from __future__ import annotations

# Parameter axes.
VOCAB = "vocab"
EMBED = "embed"
FACTOR = "factor"  # ALBERT's factorised embedding width E
MLP = "mlp"
HEADS = "heads"
KV = "kv"
LAYERS = "layers"
POS = "pos"
TYPES = "types"
CLASSES = "classes"  # small task heads (NSP, classifiers)

# Activation axes.
BATCH = "batch"
LENGTH = "length"
KV_LENGTH = "kv_length"
ACT_EMBED = "act_embed"
ACT_MLP = "act_mlp"
ACT_HEADS = "act_heads"
ACT_KV = "act_kv"
ACT_VOCAB = "act_vocab"

PARAM_AXES = (VOCAB, EMBED, FACTOR, MLP, HEADS, KV, LAYERS, POS, TYPES, CLASSES)
ACTIVATION_AXES = (BATCH, LENGTH, KV_LENGTH, ACT_EMBED, ACT_MLP, ACT_HEADS, ACT_KV, ACT_VOCAB)
ALL_AXES = PARAM_AXES + ACTIVATION_AXES

MESH_AXES = ("data", "fsdp", "tensor")

# logical name → mesh axis (or tuple of mesh axes, or None = replicated).
DEFAULT_RULES: tuple[tuple[str, str | tuple[str, ...] | None], ...] = (
    (BATCH, ("data", "fsdp")),
    (EMBED, "fsdp"),
    (MLP, "tensor"),
    (HEADS, "tensor"),
    (VOCAB, "tensor"),
    (ACT_MLP, "tensor"),
    (ACT_HEADS, "tensor"),
    (ACT_VOCAB, "tensor"),
    (FACTOR, None),
    (KV, None),
    (LAYERS, None),
    (POS, None),
    (TYPES, None),
    (CLASSES, None),
    (LENGTH, None),
    (KV_LENGTH, None),
    (ACT_EMBED, None),
    (ACT_KV, None),
)


def check_rules(rules) -> None:
    """Raises ValueError if a rule names an unknown logical axis or an unknown mesh axis."""
    for logical, mesh in rules:
        if logical not in ALL_AXES:
            raise ValueError(
                f"logical axis rule names {logical!r}, which lm/axes.py does not define; "
                f"known: {ALL_AXES}")
        targets = (mesh,) if isinstance(mesh, str) or mesh is None else tuple(mesh)
        for t in targets:
            if t is not None and t not in MESH_AXES:
                raise ValueError(f"rule {logical!r} → {mesh!r} names mesh axis {t!r}; "
                                 f"mesh axes are {MESH_AXES}")
