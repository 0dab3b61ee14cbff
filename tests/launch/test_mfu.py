"""MFU: the peak by device kind (or given), Throughput's arithmetic, and the ``mfu`` scalar a
pretraining run logs to metrics.jsonl, TensorBoard and its progress lines (checked on the run of
test_multiprocess.py; test_pretrain_e2e.py checks a CPU run without a peak logs none)."""

import glob
import itertools
import os

import jax
import pytest
import tensorflow as tf

from data import pipeline
from launch.train import data_options, flops, reporting
from tests.launch.test_pretrain_e2e import read_metrics


@pytest.mark.parametrize("kind,peak", [
    ("TPU v4", 275e12), ("TPU v5 lite", 197e12), ("TPU v5e", 197e12), ("TPU v5", 459e12),
    ("TPU v5p", 459e12), ("TPU v6 lite", 918e12), ("TPU v6e", 918e12),
    ("NVIDIA A100-SXM4-80GB", 312e12), ("NVIDIA A100 80GB PCIe", 312e12),
    ("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H100 PCIe", 756e12), ("NVIDIA H200", 989e12),
    ("cpu", None), ("TPU v4 lite", None), ("NVIDIA GeForce RTX 4090", None),
])
def test_peak_by_device_kind(kind, peak):
    assert flops.peak_flops_per_device(0.0, kind) == peak
    assert flops.peak_flops_per_device(1e12, kind) == 1e12  # a given peak wins


def test_a_negative_peak_says_what_to_give():
    with pytest.raises(ValueError, match=r"^train.peak_flops_per_device=-1.0 is negative: give "
                                         r"the peak FLOP/s of one device \(e.g. "
                                         r"--config.train.peak_flops_per_device=275e12 for a "
                                         r"TPU v4 chip\), or 0 to look it up by the device kind$"):
        flops.peak_flops_per_device(-1.0, "cpu")


def test_mfu_is_model_flops_over_step_time_and_peak(monkeypatch):
    clock = itertools.chain([10.0, 10.5, 10.5], itertools.count(20.0))  # 1 s a call after
    monkeypatch.setattr(reporting.time, "perf_counter", lambda: next(clock))
    meter = reporting.Throughput(0, 10, 512, flops_per_step=3e9, peak_flops=4 * 2e12)
    out = meter.update(2)  # 2 steps in 0.5 s
    assert out["mfu"] == pytest.approx(3e9 / 0.25 / 8e12, rel=1e-12)
    assert out["tokens_per_s"] == pytest.approx(512 / 0.25)
    unknown = reporting.Throughput(0, 10, 512, flops_per_step=3e9)  # no peak
    later = unknown.update(1)
    assert "mfu" not in later and later["tokens_per_s"] == pytest.approx(512.0)


def _tensorboard_tags(workdir: str) -> set[str]:
    tags = set()
    for path in glob.glob(os.path.join(workdir, "tensorboard", "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(v.tag for v in event.summary.value)
    return tags


def check_mfu_logged(workdir: str, cfg, stdout: str) -> None:
    """A finished tiny-BERT pretraining run (``cfg``: its config, with a peak given; ``stdout``:
    its progress lines) logged ``mfu`` = model FLOPs × steps/s / (peak × devices) at step 2 (step
    1 compiles: it has no throughput), in metrics.jsonl, TensorBoard and its progress line.
    Called by test_multiprocess.py, whose single-process run gives a peak."""
    step = read_metrics(workdir)[2]
    vocab = pipeline.load_corpus(data_options.corpus_options(cfg.data), process_index=0,
                                 process_count=1).vocab_size
    shape = flops.Shape(arch="bert", hidden=128, layers=2, heads=2, mlp=512, seq=64, batch=8,
                        vocab=vocab, predictions=10)
    peak = cfg.train.peak_flops_per_device
    expected = flops.model_flops(shape) * step["steps_per_s"] / (peak * jax.device_count())
    assert step["mfu"] == pytest.approx(expected, rel=1e-9)
    assert "mfu" in _tensorboard_tags(workdir)
    progress = [line for line in stdout.splitlines() if line.startswith("step=2 ")]
    assert any(f"mfu={step['mfu']:.4g}" in line for line in progress), progress
