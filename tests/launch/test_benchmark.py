"""launch.benchmarking.run: the FLOPs formula, and one tiny end-to-end benchmark with PyTorch."""

import dataclasses

import jax
import pytest

from launch.benchmarking import run as bm
from launch.benchmarking import shapes
from launch.train import profiling

TINY = dataclasses.replace(shapes.SHAPES["reference"], hidden=32, layers=1, heads=2, mlp=64, seq=16,
                           batch=8, vocab=512, predictions=3)


def test_bert_flops_by_hand():
    s = dataclasses.replace(TINY, layers=2)
    d, f, length, v = 32, 64, 16, 512
    per_layer_token = 2 * (3 * d * d + d * d + 2 * d * f) + 2 * 2 * length * d
    b = 8
    forward = (b * length * 2 * per_layer_token + b * 3 * (2 * d * d + 2 * d * v)
               + b * (2 * d * d + 4 * d))
    assert bm.model_flops(s) == 3 * forward


def test_gpt_flops_count_the_lm_head_on_every_token():
    s = dataclasses.replace(TINY, arch="gpt", predictions=0)
    body = bm.model_flops(dataclasses.replace(s, vocab=0))
    assert bm.model_flops(s) - body == 3 * s.tokens * 2 * s.hidden * s.vocab


@pytest.mark.parametrize("arch", ["bert", "gpt"])
def test_synthetic_batches_follow_the_schema(arch):
    from data import features
    s = dataclasses.replace(TINY, arch=arch, predictions=3 if arch == "bert" else 0)
    batch = shapes.synthetic_batch(s)
    want = features.shapes(bm.objective_names(s), B=s.batch, L=s.seq, P=s.predictions)
    assert {k: (v.shape, str(v.dtype)) for k, v in batch.items()} == want


def test_benchmark_end_to_end_with_pytorch():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    result = bm.benchmark(TINY, steps=2, rounds=2, warmup=1, peak_tflops=0.2,
                          pipeline_batches=4, log=lambda _: None)
    runs = result["runs"]
    assert set(runs) == {"pretrax", "pytorch"}
    # The same model on both sides: equal parameter counts (HF's NSP head and ours included).
    assert runs["pretrax"]["params_m"] == pytest.approx(runs["pytorch"]["params_m"], rel=1e-3)
    for r in runs.values():
        assert r["ms_per_step"] > 0 and len(r["rounds_ms"]) == 2 and 0 < r["mfu"] < 1
    assert result["pretrax_over_pytorch"] > 0 and result["pipeline"]["batches_per_s"] > 0
    assert runs["pretrax"]["temporaries_mib"] >= 0
    assert "pretrax / pytorch" in bm.table(result)
    assert jax.device_count() >= 1


def test_profile_breaks_the_step_down_by_part_and_kind():
    """A tiny step's trace (no PyTorch needed): every XLA operation lands in a row, the matmuls of
    the feed-forward block, forward and backward, among them."""
    result = bm.benchmark(TINY, steps=1, rounds=1, warmup=1, peak_tflops=0.2, with_torch=False,
                          with_pipeline=False, profile_steps=2, log=lambda _: None)
    prof = result["profile"]
    rows = {(r["part"], r["kind"]): r for r in prof["rows"]}
    assert sum(r["share"] for r in prof["rows"]) == pytest.approx(1.0)
    assert prof["total_ms_per_step"] > 0
    for part in ("feed-forward", "feed-forward (backward)", "attention", "heads + loss"):
        assert (part, "matmul") in rows, sorted(rows)
    assert ("optimizer update", "elementwise") in rows
    assert ("dropout", "elementwise") in rows
    assert "where the step's time goes" in profiling.table(prof)


def test_classify_by_op_name_and_opcode():
    jvp = "jit(train_step)/jvp(BertForPretraining)/encoder/layers_0/"
    bwd = "jit(train_step)/transpose(jvp(BertForPretraining))/encoder/layers_0/"
    assert profiling.classify(jvp + "mlp/wi/dot_general", "dot", "") == ("feed-forward", "matmul")
    assert profiling.classify(bwd + "mlp/add_any", "copy", "") == (
        "feed-forward (backward)", "layout copy")
    assert profiling.classify(jvp + "attention/jit(_bernoulli)/add", "fusion", "x = add(a, b)"
                              ) == ("dropout", "elementwise")
    assert profiling.classify(jvp + "attention/BLHK,BMHK->BHLM/x", "fusion",
                              "  d = f32[2] dot(a, b)") == ("attention", "matmul")
    assert profiling.classify("jit(train_step)/adam/mul", "fusion", "") == (
        "optimizer update", "elementwise")


def test_cpu_devices_one_per_core_as_many_as_divide_the_batch():
    assert [bm.cpu_devices_for(b, c) for b, c in [(32, 2), (32, 3), (30, 4), (7, 2), (8, 0)]] == [
        2, 2, 3, 1, 1]


def test_pipelines_time_each_named_shape_xlnet_included():
    """--pipeline_only: rows/s (wall and CPU) of each pipeline, XLNet's too (no model)."""
    named = {arch: dataclasses.replace(TINY, arch=arch, seq=32, predictions=4)
             for arch in ("bert", "xlnet")}
    result = bm.pipelines(named, rows=32, log=lambda _: None)
    assert result["cores"] >= 1 and set(result["pipelines"]) == {"bert", "xlnet"}
    for p in result["pipelines"].values():
        assert p["rows_per_s"] > 0 and p["rows_per_cpu_s"] > 0 and p["first_batch_s"] > 0
        assert p["tokens_per_s"] == pytest.approx(p["rows_per_s"] * 32)
    xlnet = result["pipelines"]["xlnet"]
    assert xlnet["over_original"] == pytest.approx(
        xlnet["rows_per_s"] * bm.ORIGINAL_XLNET_MS_PER_ROW / 1e3)
    assert "over_original" not in result["pipelines"]["bert"]
    table = bm.pipelines_table(result)
    assert "xlnet" in table and "rows/CPU s" in table
    assert f"{xlnet['over_original']:.1f}x (wall)" in table and "3.3 ms a row" in table


def test_xlnet_shapes_are_for_the_pipeline_only():
    assert set(shapes.PIPELINE_SHAPES) <= set(shapes.SHAPES)
    xlnet = shapes.resolve("xlnet_base_512", {"batch": "8", "seq": None})
    assert (xlnet.arch, xlnet.batch, xlnet.seq, xlnet.predictions) == ("xlnet", 8, 512, 85)
    assert bm.objective_names(xlnet) == ("plm",)
    assert bm.run_config(xlnet).data.max_predictions_per_seq == 85
    with pytest.raises(ValueError, match="pipeline_only"):
        bm.benchmark(xlnet, with_torch=False, log=lambda _: None)
    with pytest.raises(ValueError, match="known shapes"):
        shapes.resolve("nope", {})
