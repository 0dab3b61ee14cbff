"""The README's "Choosing a mesh" table from ``launch.compile --json`` files.

  python -m launch.compiling.table DIR      # DIR: the JSON files scripts/compile_table.sh wrote

Each file is one row, named ``NN_label.json``; rows come out in file-name order.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import sys

from launch.compiling import figures

_GIB = 2 ** 30


def _memory(f: dict) -> str:
    return f"{f['total_bytes'] / _GIB:.1f} / {f['hbm_bytes'] / _GIB:.0f} GiB"


def _derived(f: dict) -> dict:
    """``f`` with its bounds computed by this version's ``figures.Figures`` from the raw
    figures (not the ones stored when it was written)."""
    fields = {k.name for k in dataclasses.fields(figures.Figures)}
    found = figures.Figures(**{k: v for k, v in f.items() if k in fields})
    return {**f, "step_seconds_bound": found.step_seconds_bound, "mfu_bound": found.mfu_bound}


def row(label: str, result: dict) -> str:
    """One markdown row: the run, where, the mesh, per-device memory, the roofline bounds."""
    run, f = result["run"], _derived(result["figures"])
    mesh = "×".join(str(f["mesh"][a]) for a in ("data", "fsdp", "tensor"))
    fits = "yes" if result["fits"] else "**no**"
    bound = f["step_seconds_bound"]
    cells = [label, f"{f['parameters'] / 1e6:,.0f}M", f"{run['batch']}×{run['seq']}",
             result["where"], mesh, run["remat"] + (f", {run['microbatches']} µb"
                                                     if run["microbatches"] > 1 else ""),
             run["attention_impl"], _memory(f), fits,
             f"{f['flops_per_device'] / 1e12:,.1f}" if f["flops_per_device"] else "–",
             f"{bound * 1e3:,.0f}" if bound else "–",
             f"{f['mfu_bound']:.0%}" if f.get("mfu_bound") else "–"]
    line = "| " + " | ".join(cells) + " |"
    if result.get("suggestion"):
        s = _derived(result["suggested_figures"])
        line += (f"\n| ↳ suggested: `{result['suggestion']}` | | | | "
                 f"{'×'.join(str(s['mesh'][a]) for a in ('data', 'fsdp', 'tensor'))} | | | "
                 f"{_memory(s)} | yes | {s['flops_per_device'] / 1e12:,.1f} | "
                 f"{s['step_seconds_bound'] * 1e3:,.0f} | {s['mfu_bound']:.0%} |")
    return line


HEADER = ("| run | params | batch × seq | compiled for | mesh d×f×t | remat | attention | "
          "memory / device | fits | TFLOP / device / step | step ≥ ms | MFU ≤ |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|")


def table(directory: str) -> str:
    rows = []
    for path in sorted(pathlib.Path(directory).glob("*.json")):
        label = path.stem.split("_", 1)[1] if "_" in path.stem else path.stem
        rows.append(row(label.replace("_", " "), json.loads(path.read_text())))
    return HEADER + "\n" + "\n".join(rows)


if __name__ == "__main__":
    print(table(sys.argv[1]))
