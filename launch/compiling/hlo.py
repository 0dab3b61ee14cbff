"""The collectives of a compiled program, read from its optimised HLO text.

Each collective instruction (all-reduce, all-gather, reduce-scatter, all-to-all,
collective-permute, and their async ``-start`` halves) is counted as often as it runs in one step:
instructions inside a ``while`` body (the scanned layers, the microbatch loop) are multiplied by
the loop's trip count, read from its condition (``counter < N``). Bytes are the per-device size
of what the collective produces (all arrays of a combined all-reduce; the gathered/scattered
result of the others), a proxy for its traffic on the interconnect.
"""

from __future__ import annotations

import collections
import dataclasses
import math
import re

KINDS = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute")
_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s4": 0.5, "u4": 0.5, "f8e4m3fn": 1, "f8e5m2": 1,
          "bf16": 2, "f16": 2, "s16": 2, "u16": 2, "f32": 4, "s32": 4, "u32": 4, "f64": 8,
          "s64": 8, "u64": 8}
_HEADER = re.compile(r"^(?:ENTRY )?%([^\s(]+) \(.*\{$")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%\S+ = (.+?) ([a-z][a-z0-9-]*)\(")
_ARRAY = re.compile(r"\b([a-z]+[0-9]*[a-z0-9]*)\[([0-9,]*)\]")
_WHILE = re.compile(r"condition=%([^\s,]+).*?body=%([^\s,]+)")
_LIMIT = re.compile(r"constant\((\d+)\)")


@dataclasses.dataclass
class Collective:
    """One kind of collective in a step: how many run, and the bytes they produce per device."""
    kind: str
    count: int = 0
    bytes: float = 0.0


def _array_bytes(shape_text: str) -> list[float]:
    sizes = []
    for dtype, dims in _ARRAY.findall(shape_text):
        if dtype in _BYTES:
            sizes.append(_BYTES[dtype] * math.prod(int(d) for d in dims.split(",") if d))
    return sizes


def _computations(hlo: str) -> dict[str, list[str]]:
    """Computation name → its instruction lines."""
    out, name = {}, None
    for line in hlo.splitlines():
        header = _HEADER.match(line)
        if header:
            name = header.group(1)
            out[name] = []
        elif line.startswith("}"):
            name = None
        elif name is not None:
            out[name].append(line)
    return out


def _trip_count(condition: list[str]) -> int:
    """N of a loop whose condition is ``counter < N`` (the largest constant there); 1 if none."""
    limits = [int(m) for line in condition for m in _LIMIT.findall(line)]
    return max(limits) if limits else 1


def _multipliers(computations: dict[str, list[str]]) -> dict[str, int]:
    """How many times each computation runs per step (while bodies × their trip counts)."""
    called = {}
    for name, lines in computations.items():
        for line in lines:
            match = _WHILE.search(line) if " while(" in line else None
            if match and match.group(1) in computations:
                called[match.group(2)] = (name, _trip_count(computations[match.group(1)]))

    def times(name: str, depth: int = 0) -> int:
        if name not in called or depth > 16:
            return 1
        parent, trips = called[name]
        return trips * times(parent, depth + 1)
    return {name: times(name) for name in computations}


def collectives(hlo: str) -> list[Collective]:
    """The collectives of one step of ``hlo`` (a compiled program's ``as_text()``), by kind."""
    computations = _computations(hlo)
    multipliers = _multipliers(computations)
    found = collections.OrderedDict((k, Collective(k)) for k in KINDS)
    for name, lines in computations.items():
        for line in lines:
            match = _INSTRUCTION.match(line)
            if not match:
                continue
            op = match.group(2)
            kind = op[:-len("-start")] if op.endswith("-start") else op
            if kind not in found:
                continue
            sizes = _array_bytes(match.group(1))
            if not sizes:
                continue
            produced = sum(sizes) if kind == "all-reduce" else max(sizes)
            found[kind].count += multipliers[name]
            found[kind].bytes += produced * multipliers[name]
    return [c for c in found.values() if c.count]
