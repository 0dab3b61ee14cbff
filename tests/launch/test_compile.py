"""launch.compile: the real train step compiled ahead of time for a TPU topology on this CPU host
(libtpu from the test extra), its figures, the collectives parser and the fit search."""

import json
import os
import subprocess
import sys

import ml_collections
import pytest

from launch.compiling import fit, hlo
from tests.launch.test_pretrain_e2e import REPO

ENV = {**os.environ, "XLA_FLAGS": ""}


def _compile(*flags: str, tmp_path) -> tuple[subprocess.CompletedProcess, dict | None]:
    out_json = tmp_path / "figures.json"
    p = subprocess.run([sys.executable, "-m", "launch.compile", *flags, f"--json={out_json}"],
                       cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    return p, json.loads(out_json.read_text()) if out_json.exists() else None


def test_tiny_gpt_compiles_for_v5e_2x2(tmp_path):
    p, result = _compile("--config=launch/configs/gpt.py:tiny", "--topology=v5e:2x2",
                         tmp_path=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "compiled for 4 × TPU v5 lite, mesh {'data': 4, 'fsdp': 1, 'tensor': 1}" in p.stdout
    assert "of 16.00 GiB HBM: fits" in p.stdout
    assert "roofline: step ≥" in p.stdout and "MFU ≤" in p.stdout
    assert "all-reduce ×" in p.stdout  # data parallelism: the gradients are summed
    f = result["figures"]
    assert result["fits"] and f["devices"] == 4 and f["parameters"] == 1_461_760
    # The compiled FLOPs of one device are those of a quarter of the batch: within 15% of the
    # model-FLOPs formula's quarter (the formula counts matmuls only).
    assert f["flops_per_device"] == pytest.approx(f["model_flops"] / 4, rel=0.15)
    assert 0 < f["mfu_bound"] <= 1 and f["total_bytes"] < f["hbm_bytes"]
    assert f["argument_bytes"] >= 12 * 1_461_760  # float32 params + Adam's two moments


def test_tiny_bert_fsdp_over_two_slices(tmp_path):
    p, result = _compile("--config=launch/configs/bert.py:tiny", "--topology=v5e:2x2",
                         "--num_slices=2", "--config.mesh.data=2", "--config.mesh.fsdp=-1",
                         tmp_path=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert result["figures"]["mesh"] == {"data": 2, "fsdp": 4, "tensor": 1}
    kinds = {c["kind"] for c in result["figures"]["collectives"]}
    assert "all-gather" in kinds  # FSDP gathers each layer's weights


def test_bad_topology_and_missing_libtpu_are_one_line(tmp_path, monkeypatch):
    p, _ = _compile("--config=launch/configs/gpt.py:tiny", "--topology=v9x:2x2",
                    tmp_path=tmp_path)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith("error: --topology=v9x:2x2: libtpu")
    from launch.compiling import aot
    monkeypatch.setattr(aot.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match=r"needs libtpu.*pretrax\[tpu\]"):
        aot.tpu_devices("v5e:2x2")


_HLO = """\
HloModule m

%body (p: (s32[], f32[4,8])) -> (s32[], f32[4,8]) {
  %p = (s32[], f32[4,8]) parameter(0)
  %ag = bf16[16,8]{1,0} all-gather-start(%x), dimensions={0}
  %ar = (f32[4,8]{1,0}, f32[8]{0}) all-reduce(%a, %b), to_apply=%add
}

%cond (p: (s32[], f32[4,8])) -> pred[] {
  %c = s32[] constant(12)
  ROOT %lt = pred[] compare(%i, %c), direction=LT
}

ENTRY %main (a: f32[4,8]) -> f32[4,8] {
  %w = (s32[], f32[4,8]) while(%t), condition=%cond, body=%body
  %rs = f32[2,8]{1,0} reduce-scatter(%y), dimensions={0}
  %done = bf16[16,8]{1,0} all-gather-done(%ag)
}
"""


def test_collectives_count_loop_trips_and_bytes():
    found = {c.kind: (c.count, c.bytes) for c in hlo.collectives(_HLO)}
    # In the loop body: ×12. all-reduce: both arrays (4·8 + 8 floats); all-gather: the result.
    assert found == {"all-reduce": (12, 12 * (32 + 8) * 4), "all-gather": (12, 12 * 16 * 8 * 2),
                     "reduce-scatter": (1, 2 * 8 * 4)}


def _cfg(remat="none", fsdp=1, microbatches=1, batch=64):
    return ml_collections.ConfigDict({
        "model": {"remat": remat}, "mesh": {"data": -1, "fsdp": fsdp, "tensor": 1},
        "train": {"batch_size": batch, "microbatches": microbatches}})


def test_fit_candidates_in_order_and_search_stops_at_first_fit():
    got = list(fit.candidates(_cfg(), device_count=8))
    fsdp = {"mesh.data": 1, "mesh.fsdp": -1}
    assert got[:3] == [{"model.remat": "full"}, fsdp, {**fsdp, "model.remat": "full"}]
    # Then halving the microbatch down to one row per device: 64 / 8 = 8 microbatches at most.
    assert [c.get("train.microbatches") for c in got[3:]] == [2, 4, 8]
    assert list(fit.candidates(_cfg(remat="full", fsdp=-1), 8)) == [
        {"train.microbatches": 2}, {"train.microbatches": 4}, {"train.microbatches": 8}]

    class Found:
        def __init__(self, fits):
            self.fits = fits
    tried = []

    def try_config(cfg, overrides):
        tried.append(overrides)
        return Found(cfg.train.microbatches >= 4)
    overrides, _ = fit.search(_cfg(), 8, try_config)
    assert overrides == {**fsdp, "model.remat": "full", "train.microbatches": 4}
    assert len(tried) == 5 and fit.flags_of(overrides) == (
        "--config.mesh.data=1 --config.mesh.fsdp=-1 --config.model.remat=full "
        "--config.train.microbatches=4")
    assert fit.search(_cfg(), 8, lambda c, o: Found(False)) is None


def test_fit_search_skips_microbatch_counts_that_cannot_fit():
    gib = 2 ** 30

    class Found:  # 16 GiB: 6 GiB of state etc. beside activations of 40 GiB / microbatches
        def __init__(self, microbatches):
            self.hbm_bytes, self.temp_bytes = 16 * gib, 40 * gib / microbatches
            self.total_bytes = 6 * gib + self.temp_bytes
            self.fits = self.total_bytes <= self.hbm_bytes
    tried = []

    def try_config(cfg, overrides):
        tried.append(cfg.train.microbatches)
        return Found(cfg.train.microbatches)
    overrides, _ = fit.search(_cfg(remat="full", batch=1024), 8, try_config)
    # fsdp at 1 microbatch: 40 GiB of activations for 10 spare → at least 4; 2 is skipped.
    assert overrides["train.microbatches"] == 4 and tried == [1, 4]
    # State alone over the HBM: no microbatch count helps, none is compiled.
    tried.clear()

    class Full(Found):
        def __init__(self, microbatches):
            super().__init__(microbatches)
            self.total_bytes += 20 * gib
            self.fits = False
    assert fit.search(_cfg(remat="full", batch=1024), 8,
                      lambda c, o: tried.append(o) or Full(c.train.microbatches)) is None
    assert tried == [{"mesh.data": 1, "mesh.fsdp": -1}]


@pytest.mark.slow
def test_scanned_step_cost_is_extrapolated_to_the_unrolled_ones():
    """XLA counts a scanned body once; the extrapolation gives the unrolled step's FLOPs."""
    from launch.compiling import aot
    from launch.configs import gpt
    devices = aot.tpu_devices("v5e:2x2")
    cfg = gpt.get_config("tiny")
    unrolled = aot.compile_train_step(cfg, devices)
    scanned = aot.compile_train_step(fit.apply(cfg, {"model.scan_layers": True}), devices)
    assert unrolled.cost_method == "the compiled step"
    assert scanned.cost_method.startswith("extrapolated")
    assert scanned.cost["flops"] == pytest.approx(unrolled.cost["flops"], rel=0.02)
    raw = aot._cost(scanned.executable)["flops"]  # one layer's worth short of the real step
    assert raw < 0.9 * unrolled.cost["flops"]


def test_larger_topologies_double_the_smallest_side():
    assert fit.larger_topologies("v5e:2x4", 3) == ["v5e:4x4", "v5e:4x8", "v5e:8x8"]
    assert fit.larger_topologies("v4:2x2x2", 2) == ["v4:2x2x4", "v4:2x4x4"]
    assert fit.flags_of({"topology": "v5e:4x4", "mesh.fsdp": -1}) == (
        "--topology=v5e:4x4 --config.mesh.fsdp=-1")
