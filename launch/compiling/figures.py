"""What a compiled train step says about a run: per-device memory against the chip's HBM, FLOPs,
a roofline bound on the step time and MFU, and the collectives.

Sources: XLA's ``memory_analysis()`` (argument, output, temporary and aliased bytes of one device's
program) and ``cost_analysis()`` (its FLOPs and HBM bytes accessed), the chip's published peak
FLOP/s, HBM size and bandwidth (``launch/train/flops.py:CHIPS``; a local accelerator's own memory
limit where JAX reports one), and the HLO (``hlo.collectives``).

The roofline bound is ``max(FLOPs / peak, bytes accessed / HBM bandwidth)``: no step can be
faster, and communication is not counted, so real steps are slower. The MFU bound divides the
model's FLOPs (``flops.model_flops``: 6·N·tokens-style matmul FLOPs, no recomputation) by
devices × peak × that time; with ``remat`` the compiled FLOPs exceed the model's and the bound
drops accordingly. XLNet's two-stream attention has no model-FLOPs formula: its bound uses the
compiled FLOPs (hardware FLOPs utilisation).
"""

from __future__ import annotations

import dataclasses
import types

from launch.compiling import hlo
from launch.train import flops, modeling

_GIB = 2 ** 30


@dataclasses.dataclass
class Figures:
    """Everything ``launch.compile`` prints about one compiled step (bytes, FLOPs, seconds)."""
    devices: int
    device_kind: str
    mesh: dict
    parameters: int
    argument_bytes: int
    output_bytes: int
    temp_bytes: int
    alias_bytes: int
    code_bytes: int
    hbm_bytes: float | None
    flops_per_device: float
    bytes_accessed: float
    peak_flops: float | None
    hbm_bandwidth: float | None
    model_flops: float | None
    tokens: int
    collectives: list
    compile_seconds: float
    cost_method: str
    refused: bool = False

    @property
    def total_bytes(self) -> int:
        """Peak HBM a device needs: arguments + temporaries + outputs not aliased to
        arguments (the donated state is updated in place) + the program itself."""
        return (self.argument_bytes + self.temp_bytes + self.output_bytes - self.alias_bytes +
                self.code_bytes)

    @property
    def fits(self) -> bool | None:
        if self.refused:
            return False
        return None if self.hbm_bytes is None else self.total_bytes <= self.hbm_bytes

    @property
    def bound_flops(self) -> float:
        """The FLOPs the compute bound uses: the compiled count, or the model's when that is
        larger. XLA counts each loop body once, including loops it makes itself (collective
        matmuls over FSDP shards), and nothing inside Pallas kernels (fused attention), so its
        count can fall below the model's; the work the model needs is done either way."""
        model = self.model_flops / self.devices if self.model_flops else 0.0
        return max(self.flops_per_device, model)

    @property
    def step_seconds_bound(self) -> float | None:
        if not self.peak_flops or not self.hbm_bandwidth or not self.flops_per_device:
            return None
        return max(self.bound_flops / self.peak_flops,
                   self.bytes_accessed / self.hbm_bandwidth)

    @property
    def mfu_bound(self) -> float | None:
        bound = self.step_seconds_bound
        if not bound:
            return None
        useful = (self.model_flops / self.devices if self.model_flops
                  else self.flops_per_device)
        return useful / (self.peak_flops * bound)


def _local_hbm(device) -> float | None:
    try:
        stats = device.memory_stats()
    except Exception:  # noqa: BLE001 - abstract (topology) devices and CPUs have none
        return None
    return float(stats["bytes_limit"]) if stats and "bytes_limit" in stats else None


def figures(cfg, compiled) -> Figures:
    """The figures of ``compiled`` (an ``aot.Compiled``) for run config ``cfg``."""
    device = compiled.devices[0]
    chip = flops.chip(device.device_kind)
    if compiled.refused:
        required, available = compiled.refused
        state = compiled.device_state_bytes  # the donated state in and out, in place
        memory = types.SimpleNamespace(
            argument_size_in_bytes=state, output_size_in_bytes=state, alias_size_in_bytes=state,
            temp_size_in_bytes=int(required), generated_code_size_in_bytes=0)
        chip = dataclasses.replace(chip, hbm_bytes=available) if chip else None
    else:
        memory = compiled.executable.memory_analysis()
    cost = compiled.cost
    model_cfg = modeling.model_config(cfg, cfg.model.vocab_size)
    shape = flops.pretraining_shape(cfg, model_cfg, tuple(modeling.objective_weights(cfg)))
    hbm = _local_hbm(device) if getattr(device, "platform", "") != "tpu" else None
    return Figures(
        devices=len(compiled.devices), device_kind=device.device_kind,
        mesh=dict(compiled.mesh.shape), parameters=compiled.parameters,
        argument_bytes=memory.argument_size_in_bytes, output_bytes=memory.output_size_in_bytes,
        temp_bytes=memory.temp_size_in_bytes, alias_bytes=memory.alias_size_in_bytes,
        code_bytes=memory.generated_code_size_in_bytes,
        hbm_bytes=hbm or (chip.hbm_bytes if chip else None),
        flops_per_device=float(cost.get("flops", 0.0)),
        bytes_accessed=float(cost.get("bytes accessed", 0.0)),
        peak_flops=chip.peak_flops if chip else None,
        hbm_bandwidth=chip.hbm_bandwidth if chip else None,
        model_flops=None if shape is None else flops.model_flops(shape, model_cfg.embed_dim),
        tokens=cfg.train.batch_size * cfg.data.max_seq_length,
        collectives=[] if compiled.refused else hlo.collectives(compiled.executable.as_text()),
        compile_seconds=compiled.seconds, cost_method=compiled.cost_method,
        refused=compiled.refused is not None)


def _gib(n: float) -> str:
    return f"{n / _GIB:.2f} GiB"


def _flop(n: float) -> str:
    return f"{n / 1e12:,.2f} TFLOP" if n >= 1e12 else f"{n / 1e9:,.2f} GFLOP"


def report(f: Figures) -> str:
    """The figures as the lines ``launch.compile`` prints."""
    verdict = {True: "fits", False: "DOES NOT FIT", None: "fit unknown"}[f.fits]
    of = f"of {_gib(f.hbm_bytes)} HBM" if f.hbm_bytes else "(this device's memory is unknown)"
    if f.refused:
        return (f"refused by the compiler for {f.devices} × {f.device_kind}, mesh {f.mesh}, after "
                f"{f.compile_seconds:.0f} s: its temporaries need {_gib(f.temp_bytes)}, more "
                f"than the {_gib(f.hbm_bytes)} of HBM it has (the train state: "
                f"{_gib(f.argument_bytes)} a device); {f.parameters / 1e6:,.1f}M parameters: "
                "DOES NOT FIT")
    lines = [
        f"compiled for {f.devices} × {f.device_kind}, mesh {f.mesh}, in {f.compile_seconds:.0f} s; "
        f"{f.parameters / 1e6:,.1f}M parameters",
        f"memory per device: arguments {_gib(f.argument_bytes)}, temporaries "
        f"{_gib(f.temp_bytes)}, outputs {_gib(f.output_bytes)} ({_gib(f.alias_bytes)} aliased "
        f"to arguments), code {_gib(f.code_bytes)}; total {_gib(f.total_bytes)} {of}: {verdict}",
        (f"FLOPs per device per step: {_flop(f.flops_per_device)} compiled"
         + (f", {_flop(f.model_flops / f.devices)} model" if f.model_flops else "")
         + f"; HBM bytes accessed {f.bytes_accessed / 1e9:,.1f} GB ({f.cost_method})")
        if f.flops_per_device else "FLOPs per device per step: not counted"]
    bound = f.step_seconds_bound
    if bound:
        limit = ("compute" if f.bound_flops / f.peak_flops >= f.bytes_accessed /
                 f.hbm_bandwidth else "HBM bandwidth")
        if f.bound_flops > f.flops_per_device:
            lines.append("(XLA's FLOP count is below the model's: it counts each loop body once, "
                         "loops it made included, and nothing inside Pallas kernels; the bound "
                         "uses the model's)")
        kind = "MFU" if f.model_flops else "HFU (no model-FLOPs formula)"
        lines.append(f"roofline: step ≥ {bound * 1e3:,.1f} ms ({limit}-bound; peak "
                     f"{f.peak_flops / 1e12:.0f} TFLOP/s, {f.hbm_bandwidth / 1e9:,.0f} GB/s), "
                     f"≤ {f.tokens / bound:,.0f} tokens/s, {kind} ≤ {f.mfu_bound:.1%}")
    elif not f.flops_per_device:
        lines.append("roofline: not computed (the cost is counted only for a step that fits)")
    else:
        lines.append("roofline: the chip's peak FLOP/s and HBM bandwidth are unknown")
    lines.append("collectives per step: " + ("; ".join(
        f"{c.kind} ×{c.count} ({c.bytes / 1e6:,.1f} MB)" for c in f.collectives) or "none"))
    return "\n".join(lines)


def as_json(f: Figures) -> dict:
    """The figures and their derived values, for ``--json``."""
    out = dataclasses.asdict(f)
    out.update(total_bytes=f.total_bytes, fits=f.fits, step_seconds_bound=f.step_seconds_bound,
               mfu_bound=f.mfu_bound)
    return out
