"""When a step does not fit: the settings to try, cheapest in speed first, and the search.

Each candidate is a set of config overrides, in the order a practitioner would reach for them:
recompute activations in the backward pass (``model.remat=full``: ~⅓ more FLOPs), shard
parameters, gradients and optimizer state over every device (``mesh.fsdp``: ZeRO-3, an
all-gather of each layer's weights per step), both, then the same batch in more, smaller
microbatches (activations shrink with each split; the update is the same). The first candidate
whose compiled step fits is the suggestion.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator


def _set(cfg, path: str, value) -> None:
    node, *rest = path.split(".")
    if rest:
        _set(cfg[node], ".".join(rest), value)
    else:
        cfg[node] = value


def apply(cfg, overrides: dict):
    """A copy of ``cfg`` with ``overrides`` (dotted path → value)."""
    out = copy.deepcopy(cfg)
    with out.unlocked():
        for path, value in overrides.items():
            _set(out, path, value)
    return out


def candidates(cfg, device_count: int) -> Iterator[dict]:
    """Overrides to try, in order (module docstring); each includes the ones before it where
    they save memory together."""
    base = {}
    if cfg.model.remat != "full":
        base = {"model.remat": "full"}
        yield dict(base)
    if int(cfg.mesh.fsdp) != -1 and int(cfg.mesh.fsdp) != device_count // int(cfg.mesh.tensor):
        fsdp = {"mesh.data": 1, "mesh.fsdp": -1}
        yield dict(fsdp)
        if base:
            yield {**fsdp, **base}
        base = {**fsdp, **base}
    batch_ways = device_count // max(1, int(cfg.mesh.tensor))
    microbatches = int(cfg.train.microbatches)
    while True:
        microbatches *= 2
        per_microbatch = cfg.train.batch_size // microbatches
        if cfg.train.batch_size % microbatches or per_microbatch < batch_ways or \
                per_microbatch % batch_ways:
            return
        yield {**base, "train.microbatches": microbatches}


def flags_of(overrides: dict) -> str:
    """``--config.PATH=VALUE`` for each override (``--topology=…`` for the key ``topology``)."""
    return " ".join(f"--{k}={v}" if k == "topology" else f"--config.{k}={v}"
                    for k, v in overrides.items())


def larger_topologies(topology: str, doublings: int) -> list[str]:
    """``topology`` with 2×, 4×, … its chips: the smallest side doubled each time, the sides kept
    in ascending order (v5e:2x4 → v5e:4x4 → v5e:4x8; v4:2x2x2 → v4:2x2x4)."""
    chip, _, shape = topology.partition(":")
    sides = [int(d) for d in shape.split("x")]
    out = []
    for _ in range(doublings):
        sides[sides.index(min(sides))] *= 2
        sides.sort()
        out.append(f"{chip}:{'x'.join(map(str, sides))}")
    return out


def _microbatch_floor(found, microbatches: int) -> float:
    """The fewest microbatches that could fit, from a step that did not: its temporaries (mostly
    activations, which shrink about in proportion) against the HBM left beside the rest."""
    hbm = getattr(found, "hbm_bytes", None)
    if not hbm:
        return 0.0
    spare = hbm - (found.total_bytes - found.temp_bytes)
    return float("inf") if spare <= 0 else microbatches * found.temp_bytes / spare


def search(cfg, device_count: int, try_config: Callable) -> tuple[dict, object] | None:
    """The first candidate for which ``try_config(cfg with it, overrides)`` returns figures that
    fit, as (overrides, figures); None when none does. ``try_config`` prints as it goes (and
    returns None for a candidate that cannot compile). Microbatch counts that a failed step's
    memory shows cannot fit (``_microbatch_floor``) are skipped, not compiled."""
    floor = 0.0
    for overrides in candidates(cfg, device_count):
        microbatches = overrides.get("train.microbatches", int(cfg.train.microbatches))
        if "train.microbatches" in overrides and microbatches < floor:
            continue
        found = try_config(apply(cfg, overrides), overrides)
        if found is None:
            continue
        if found.fits:
            return overrides, found
        if "train.microbatches" in overrides or "mesh.fsdp" in overrides:
            floor = max(floor, _microbatch_floor(found, microbatches))
    return None
