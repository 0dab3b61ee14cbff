"""Where a compiled step spends its time: a ``jax.profiler`` trace, broken down by model part.

``breakdown(fn, args, compiled_text, steps)`` runs ``fn(*args)`` ``steps`` times under a trace
(with a Perfetto copy), reads the duration of every XLA operation in it, and classifies each by
the HLO instruction it executes (``compiled_text``: ``compiled.as_text()``):

* **part** from the op's ``op_name`` metadata (the Flax module path and the JAX primitive):
  feed-forward, attention, layer norm, dropout (its random bits and masks), embeddings, output
  heads + loss, optimizer update; ``backward`` when it comes from the transpose (VJP) of the
  forward.
* **kind**: ``matmul`` (a dot, alone or fused), ``layout copy`` (copies and transposes XLA adds to
  feed a dot its preferred layout) or ``elementwise`` (all other fusions: activations, norms,
  softmax, dropout masks, reductions, the optimizer).

Durations are per operation on the thread that ran it, so on a CPU they add up to CPU time (XLA
runs independent operations concurrently) rather than to the step's wall time; shares are what
to compare. Used by ``python -m launch.benchmark --profile``.
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import os
import re
import tempfile
from collections.abc import Callable

import jax

# First matching rule wins; matched against the op_name metadata, lower-cased.
_PARTS = (
    ("dropout", ("dropout", "bernoulli", "random_bits", "threefry", "_uniform")),
    ("layer norm", ("_norm/", "layernorm", "layer_norm")),
    ("attention", ("/attention/", "self_attention", "relative_attention")),
    ("feed-forward", ("/mlp/", "/ffn/")),
    ("embeddings", ("embeddings/", "embed/")),
    ("heads + loss", ("head", "attend", "take_along_axis", "logsumexp", "log_softmax", "nsp",
                      "mlm", "clm", "cross_entropy")),
)
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = \S+ ([\w-]+)\((.*)$", re.M)
_COMPUTATION = re.compile(r"^%([\w.\-]+) .*?\{\n(.*?)\n\}", re.M | re.S)


def classify(op_name: str, opcode: str, body: str) -> tuple[str, str]:
    """(part, kind) of one HLO instruction: see the module docstring."""
    name = op_name.lower()
    if "jvp(" not in name and "transpose(" not in name:
        part = "optimizer update"
    else:
        part = next((p for p, keys in _PARTS if any(k in name for k in keys)), "other")
        if "transpose(" in name:
            part += " (backward)"
    if opcode == "dot" or " dot(" in body:
        kind = "matmul"
    elif opcode in ("copy", "transpose"):
        kind = "layout copy"
    else:
        kind = "elementwise"
    return part, kind


def instructions(compiled_text: str) -> dict[str, tuple[str, str]]:
    """HLO instruction name → (part, kind), for every instruction of the optimised module."""
    bodies = {m.group(1): m.group(2) for m in _COMPUTATION.finditer(compiled_text)}
    out = {}
    for m in _INSTRUCTION.finditer(compiled_text):
        name, opcode, rest = m.groups()
        calls = re.search(r"calls=%([\w.\-]+)", rest)
        op_name = re.search(r'op_name="([^"]+)"', rest)
        body = bodies.get(calls.group(1), "") if calls else ""
        if opcode == "fusion" and re.match(r"(copy|transpose)", name):
            opcode = "copy"
        out[name] = classify(op_name.group(1) if op_name else "", opcode, body)
    return out


def op_durations(trace_dir: str) -> dict[str, float]:
    """Total microseconds of each named event in the Perfetto trace under ``trace_dir``."""
    files = glob.glob(os.path.join(trace_dir, "**", "*.trace.json.gz"), recursive=True)
    if not files:
        raise FileNotFoundError(f"no Perfetto trace (*.trace.json.gz) under {trace_dir}")
    with gzip.open(files[0]) as f:
        trace = json.load(f)
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    totals: dict[str, float] = collections.Counter()
    for e in events:
        if e.get("ph") == "X" and "dur" in e:
            totals[e["name"]] += e["dur"]
    return totals


def breakdown(fn: Callable, args_fn: Callable[[], tuple], compiled_text: str, steps: int = 3
              ) -> dict:
    """Profiles ``steps`` calls of ``fn(*args_fn())`` (``args_fn`` gives each call's arguments,
    e.g. the updated train state) and returns ``{"rows": [...], "total_ms_per_step": …}``, rows
    of ``part``, ``kind``, ``ms_per_step`` and ``share``, largest first."""
    table = instructions(compiled_text)
    with tempfile.TemporaryDirectory() as trace_dir:
        jax.profiler.start_trace(trace_dir, create_perfetto_trace=True)
        try:
            for _ in range(steps):
                jax.block_until_ready(fn(*args_fn()))
        finally:
            jax.profiler.stop_trace()
        totals = op_durations(trace_dir)
    sums: dict[tuple[str, str], float] = collections.Counter()
    for name, micros in totals.items():
        if name in table:
            sums[table[name]] += micros
    total = sum(sums.values())
    if not total:
        raise ValueError("the trace has no XLA operations of the compiled step: was it run on "
                         "this process's devices?")
    rows = [{"part": part, "kind": kind, "ms_per_step": micros / steps / 1e3,
             "share": micros / total} for (part, kind), micros in sums.most_common()]
    return {"rows": rows, "total_ms_per_step": total / steps / 1e3}


def table(result: dict, limit: int = 20) -> str:
    """The printed breakdown."""
    lines = [f"where the step's time goes (XLA operations, {result['total_ms_per_step']:.0f} ms "
             "per step summed over threads):",
             f"  {'part':34} {'kind':12} {'ms/step':>8} {'share':>6}"]
    for r in result["rows"][:limit]:
        lines.append(f"  {r['part']:34} {r['kind']:12} {r['ms_per_step']:8.1f} {r['share']:6.1%}")
    by_kind: dict[str, float] = collections.Counter()
    for r in result["rows"]:
        by_kind[r["kind"]] += r["share"]
    lines.append("  by kind: " + ", ".join(f"{k} {v:.1%}" for k, v in by_kind.most_common()))
    return "\n".join(lines)
