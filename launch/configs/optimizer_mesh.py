"""Config pieces recipes share: AdamW (with the NaN guard), the device mesh, pretraining's
profiling and MFU."""

import ml_collections

from lm import axes


def add_optimizer(train: ml_collections.ConfigDict) -> None:
    """AdamW as BERT trains it: weight decay 0.01, eps 1e-6, global-norm clipping at 1."""
    train.end_learning_rate = 0.0
    train.weight_decay = 0.01
    train.adam_b1 = 0.9
    train.adam_b2 = 0.999
    train.adam_eps = 1e-6
    train.grad_clip_norm = 1.0
    train.label_smoothing = 0.0
    train.z_loss = 0.0
    # A step whose loss or gradient norm is NaN/Inf is skipped (counted as `skipped_steps`);
    # this many in a row stop the run (exit status 65) with the last good checkpoint intact.
    train.max_nonfinite_steps = 20


def add_mesh(c: ml_collections.ConfigDict) -> None:
    """All devices on the data axis, and the default logical→mesh rules."""
    c.mesh = ml_collections.ConfigDict()
    c.mesh.data = -1
    c.mesh.fsdp = 1
    c.mesh.tensor = 1
    c.logical_axis_rules = [list(r) for r in axes.DEFAULT_RULES]


def add_profiling(train: ml_collections.ConfigDict) -> None:
    """``train.profile_steps``: "START:STOP" writes a jax.profiler trace of steps START..STOP-1
    to WORKDIR/profile (TensorBoard's profile tab); "" traces nothing.

    ``train.peak_flops_per_device``: one device's peak FLOP/s, for the ``mfu`` scalar (model
    FLOPs / step time / (peak × devices)); 0 looks it up by the device kind
    (``launch/train/flops.py:PEAK_FLOPS``: published bf16 dense peaks of TPU v4, v5e, v5p, v6e,
    NVIDIA A100, H100, H200). Unknown (a CPU): no ``mfu``."""
    train.profile_steps = ""
    train.peak_flops_per_device = 0.0
