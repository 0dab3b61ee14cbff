"""``launch.compile``: compile, report, and when the step does not fit, search for a setting
that does (launch/compiling/fit.py)."""

from __future__ import annotations

import jax

from launch.compiling import aot, fit
from launch.compiling import figures as figures_lib
from launch.train import reporting


def _try(cfg, devices, label: str):
    """Compiles ``cfg`` for ``devices`` and prints its figures; None (and why) when the config
    cannot even be compiled that way (e.g. a mesh that does not divide the batch)."""
    reporting.say(f"compiling {label} …")
    try:
        found = _compile(cfg, devices)
    except ValueError as e:  # a setting that does not apply here: say so, try the next
        reporting.say(f"  not compiled: {e}")
        return None
    print(figures_lib.report(found), flush=True)
    return found


def _compile(cfg, devices) -> figures_lib.Figures:
    """The step's figures; its cost (two more compiles with scanned layers: ``aot.step_cost``)
    counted only for a step that can fit."""
    compiled = aot.compile_train_step(cfg, devices, with_cost=False)
    found = figures_lib.figures(cfg, compiled)
    if found.fits is not False:
        compiled.cost, compiled.cost_method = aot.step_cost(cfg, devices, compiled.executable)
        found = figures_lib.figures(cfg, compiled)
    return found


def _run_summary(cfg) -> dict:
    m = cfg.model
    return {"arch": m.arch, "hidden_size": m.hidden_size, "num_layers": m.num_layers,
            "dtype": m.dtype, "remat": m.remat, "scan_layers": m.scan_layers,
            "attention_impl": m.get("attention_impl", "xla"), "seq": cfg.data.max_seq_length,
            "batch": cfg.train.batch_size, "microbatches": cfg.train.microbatches,
            "mesh": dict(cfg.mesh)}


def compile_and_report(cfg, *, topology: str = "", num_slices: int = 1,
                       suggest: bool = True) -> dict:
    """Compiles ``cfg``'s train step for the topology (or this host's devices), prints its
    figures, and when it does not fit and ``suggest``, the first candidate setting that fits.

    Returns:
      {"fits": True, False or None (the device's memory is unknown, e.g. a CPU), "where": …,
      "run": …, "figures": …, "suggestion": flags or None, "suggested_figures": …}.

    Raises:
      ValueError: (one line) for a topology libtpu cannot make or a config that cannot compile.
    """
    devices = aot.tpu_devices(topology, num_slices) if topology else jax.devices()
    where = f"{topology}{f' × {num_slices} slices' if num_slices > 1 else ''}" if topology \
        else f"this host's {len(devices)} × {devices[0].device_kind}"
    found = _compile(cfg, devices)
    reporting.say(f"{cfg.model.arch}, batch {cfg.train.batch_size} × {cfg.data.max_seq_length} "
                  f"tokens, {cfg.model.dtype}, remat {cfg.model.remat}, attention "
                  f"{cfg.model.get('attention_impl', 'xla')}, on {where}:")
    print(figures_lib.report(found), flush=True)
    result = {"fits": found.fits, "where": where, "run": _run_summary(cfg),
              "figures": figures_lib.as_json(found), "suggestion": None,
              "suggested_figures": None}
    if found.fits is not False or not suggest:
        return result
    reporting.say("does not fit; compiling candidate settings (launch/compiling/fit.py) …")
    hit = fit.search(cfg, len(devices), lambda c, o: _try(c, devices, fit.flags_of(o)))
    if hit is None and topology:
        hit = _on_more_chips(cfg, topology, num_slices)
    if hit is None:
        reporting.say("no candidate fits: use more chips (a larger --topology or --num_slices) "
                      "or a smaller batch")
        return result
    overrides, suggested = hit
    reporting.say(f"suggestion: {fit.flags_of(overrides)} (total "
                  f"{suggested.total_bytes / 2 ** 30:.2f} GiB a device)")
    result.update(suggestion=fit.flags_of(overrides),
                  suggested_figures=figures_lib.as_json(suggested))
    return result


def _on_more_chips(cfg, topology: str, num_slices: int, doublings: int = 3):
    """The first fit on 2×, 4×, 8× the chips of ``topology``: the config as it is, then the
    candidates (``fit.search``); as (overrides with ``topology``, figures), or None."""
    for bigger in fit.larger_topologies(topology, doublings):
        reporting.say(f"nothing fits {topology}; trying {bigger} …")
        devices = aot.tpu_devices(bigger, num_slices)
        found = _try(cfg, devices, f"--topology={bigger}")
        if found is not None and found.fits:
            return {"topology": bigger}, found
        hit = fit.search(cfg, len(devices), lambda c, o, d=devices, t=bigger: _try(
            c, d, fit.flags_of({"topology": t, **o})))
        if hit is not None:
            return {"topology": bigger, **hit[0]}, hit[1]
    return None
