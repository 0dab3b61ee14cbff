"""``attention_impl``: every implementation against the einsum path (BERT with padding, GPT with
causal packed rows; outputs and gradients), the choice ``auto`` makes, the one-line refusals, one
parameter tree for all, and the TPU kernel compiled ahead of time for a v5e topology."""

import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec

from lm import attention, axes
from lm.config import TransformerConfig
from lm.models import make_model
from objectives import total_loss, weighted
from tests.lm.conftest import jit, make_batch

BERT = TransformerConfig(vocab_size=97, hidden_size=32, num_layers=2, num_heads=4, mlp_dim=64,
                         max_length=32, dropout_rate=0.0, attention_dropout_rate=0.0)
GPT = BERT.replace(norm_position="pre", activation="gelu_tanh", layer_norm_eps=1e-5)
OBJECTIVES = {"bert": {"mlm": 1.0, "nsp": 1.0}, "gpt": {"clm": 1.0}}


def gpt_batch(length: int = 16) -> dict[str, jax.Array]:
    """Two packed rows: documents of 5, 7 and 4 tokens; 9 and 4 tokens, then 3 of padding."""
    rng = np.random.default_rng(3)
    segments = np.array([[1] * 5 + [2] * 7 + [3] * 4, [1] * 9 + [2] * 4 + [0] * 3])[:, :length]
    positions = np.zeros_like(segments)
    for row, seg in zip(positions, segments, strict=True):
        for s in set(seg.tolist()) - {0}:
            row[seg == s] = np.arange((seg == s).sum())
    tokens = np.where(segments > 0, rng.integers(7, GPT.vocab_size, segments.shape), 0)
    targets = np.roll(tokens, -1, axis=1)
    weights = (segments > 0) & (np.roll(segments, -1, axis=1) == segments)
    return {"token_ids": jnp.asarray(tokens, jnp.int32),
            "segment_ids": jnp.asarray(segments, jnp.int32),
            "positions": jnp.asarray(positions, jnp.int32),
            "clm_targets": jnp.asarray(targets, jnp.int32),
            "clm_weights": jnp.asarray(weights, jnp.float32)}


def batch_of(arch: str) -> dict[str, jax.Array]:
    return make_batch() if arch == "bert" else gpt_batch()


@functools.cache
def params(arch: str, scan_layers: bool = False):
    model = make_model(arch, (BERT if arch == "bert" else GPT).replace(scan_layers=scan_layers))
    init = jit(lambda b: model.init({"params": jax.random.key(0)}, b, deterministic=True))
    return nn.unbox(init(batch_of(arch))["params"])


def loss_outputs_grads(arch: str, impl: str, mesh=None, **changes):
    """(loss, outputs, grads) of the pretraining loss with ``attention_impl=impl``."""
    config = (BERT if arch == "bert" else GPT).replace(attention_impl=impl, **changes)
    model, objective = make_model(arch, config), weighted(OBJECTIVES[arch])

    def loss_fn(p, batch):
        out = model.apply({"params": p}, batch, deterministic=True)
        return total_loss(objective(out, batch)[0]), out

    fn = jit(jax.value_and_grad(loss_fn, has_aux=True))
    p = params(arch, config.scan_layers)
    if mesh is None:
        (loss, out), grads = fn(p, batch_of(arch))
    else:
        with jax.set_mesh(mesh), nn.logical_axis_rules(axes.DEFAULT_RULES):
            (loss, out), grads = fn(p, batch_of(arch))
    return loss, out, grads


def assert_close(got, want, rtol, atol, where: str):
    for path, g in jax.tree_util.tree_leaves_with_path(got):
        w = functools.reduce(lambda t, k: t[k.key], path, want)
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol,
                                   err_msg=f"{where}{jax.tree_util.keystr(path)}")


def real_positions(out: dict, batch: dict) -> dict:
    """GPT's logits at real tokens only: a padding query sees no key, which the kernels resolve
    differently (and no loss reads it)."""
    return {"logits": out["logits"][np.asarray(batch["segment_ids"]) > 0]}


def test_the_einsum_path_gets_the_bias_it_always_had():
    """The masks' xla bias is what the encoder, decoder and KV cache built before: padding &
    packing, causal & packing, causal from a cache slot & real slots."""
    rng = np.random.default_rng(0)
    segments = jnp.asarray(rng.integers(0, 3, (3, 8)), jnp.int32)
    tokens = jnp.where(segments > 0, 9, 0)
    padding, packing = attention.padding_mask(tokens, 0), attention.packing_mask(segments)
    encoder = attention.AttentionMask(key_valid_BM=tokens != 0, segment_ids_BL=segments)
    np.testing.assert_array_equal(encoder.bias(8, 8), attention.mask_to_bias(padding & packing))
    decoder = attention.AttentionMask(segment_ids_BL=segments, causal=True)
    np.testing.assert_array_equal(decoder.bias(8, 8),
                                  attention.mask_to_bias(attention.causal_mask(8) & packing))
    real = segments > 0
    cache = attention.AttentionMask(key_valid_BM=real, causal=True, query_offset=jnp.int32(5))
    slots = jnp.arange(8)[None, :] <= (5 + jnp.arange(3))[:, None]
    np.testing.assert_array_equal(cache.bias(3, 8), attention.mask_to_bias(
        slots[None, None] & real[:, None, None, :]))


def test_segment_ids_say_what_the_mask_says():
    """Query i sees key j iff their segment ids are equal, and the causal flag: the same as the
    boolean mask, for padding alone, packing alone, and both."""
    rng = np.random.default_rng(1)
    segments = jnp.asarray(rng.integers(0, 3, (4, 10)), jnp.int32)
    valid = jnp.asarray(rng.random((4, 10)) < 0.8)
    for mask in (attention.AttentionMask(key_valid_BM=valid),
                 attention.AttentionMask(segment_ids_BL=segments, causal=True),
                 attention.AttentionMask(key_valid_BM=valid, segment_ids_BL=segments)):
        q, kv = mask.segments(4, 10)
        same = q[:, None, :, None] == kv[:, None, None, :]
        if mask.causal:
            same = same & attention.causal_mask(10)
        np.testing.assert_array_equal(same, jnp.broadcast_to(mask.allowed(10, 10), same.shape))


@pytest.mark.parametrize("arch,changes", [("bert", {}), ("gpt", {}),
                                          ("gpt", {"scan_layers": True, "remat": "full"})])
def test_dot_product_matches_xla_in_float32(arch, changes):
    loss, out, grads = loss_outputs_grads(arch, "xla", **changes)
    got_loss, got_out, got_grads = loss_outputs_grads(arch, "dot_product", **changes)
    np.testing.assert_allclose(got_loss, loss, rtol=1e-6)
    assert_close(got_out, out, 1e-5, 1e-5, "outputs")
    assert_close(got_grads, grads, 1e-5, 1e-6, "grads")


@pytest.mark.parametrize("arch", ["bert", "gpt"])
def test_flash_kernel_interpreted_matches_xla(arch):
    """The splash kernel's own code, in Pallas' interpreter (what ``flash`` runs on CPU), with
    16-token rows padded to its 128-position blocks."""
    loss, out, grads = loss_outputs_grads(arch, "xla")
    got_loss, got_out, got_grads = loss_outputs_grads(arch, "flash")
    if arch == "gpt":
        out, got_out = real_positions(out, gpt_batch()), real_positions(got_out, gpt_batch())
    np.testing.assert_allclose(got_loss, loss, rtol=1e-6)
    assert_close(got_out, out, 1e-5, 1e-5, "outputs")
    assert_close(got_grads, grads, 1e-5, 1e-6, "grads")


def test_flash_under_a_mesh_runs_per_device():
    """shard_map over 2 × 1 × 4 CPU devices: batch on (data, fsdp), heads on tensor, inside
    scanned, rematerialised layers; a batch that does not divide is refused in one line."""
    devices = np.asarray(jax.devices())
    if devices.size < 8:
        pytest.skip("needs 8 devices (the suite forces 8 CPU devices)")
    mesh = jax.sharding.Mesh(devices[:8].reshape(2, 1, 4), axes.MESH_AXES,
                             axis_types=(jax.sharding.AxisType.Auto,) * 3)
    stack = {"scan_layers": True, "remat": "full"}
    loss, out, grads = loss_outputs_grads("gpt", "xla", **stack)
    got_loss, got_out, got_grads = loss_outputs_grads("gpt", "flash", mesh, **stack)
    np.testing.assert_allclose(got_loss, loss, rtol=1e-6)
    assert_close(real_positions(got_out, gpt_batch()), real_positions(out, gpt_batch()), 1e-5,
                 1e-5, "outputs")
    assert_close(got_grads, grads, 1e-5, 1e-6, "grads")
    odd = jax.sharding.Mesh(devices[:8].reshape(4, 1, 2), axes.MESH_AXES,
                            axis_types=(jax.sharding.AxisType.Auto,) * 3)
    with pytest.raises(ValueError, match=r"batch 2 over 4 devices \(\('data', 'fsdp'\)\)"):
        loss_outputs_grads("gpt", "flash", odd)


@pytest.mark.parametrize("arch", ["bert", "gpt"])
def test_cudnn_is_asked_with_a_causal_flag_and_a_full_mask(arch, monkeypatch):
    """No GPU here: on a pretend one, the call ``cudnn`` makes (cuDNN wants the mask as [B, 1,
    L, M], the causal part as its flag) is run by the XLA implementation instead and matches
    xla. What cuDNN itself does runs only on a GPU."""
    calls = []

    def spy(*args, implementation=None, **kwargs):
        calls.append((implementation, kwargs["is_causal"], kwargs["mask"].shape))
        return dot_product(*args, implementation="xla", **kwargs)

    dot_product = jax.nn.dot_product_attention
    monkeypatch.setattr(attention, "platform", lambda: "gpu")
    monkeypatch.setattr(jax.nn, "dot_product_attention", spy)
    config = (BERT if arch == "bert" else GPT).replace(attention_impl="cudnn", dtype="bfloat16")
    batch = batch_of(arch)

    def forward(c):
        model = make_model(arch, c)
        return jit(lambda p, b: model.apply({"params": p}, b, deterministic=True))(params(arch),
                                                                                    batch)

    got, want = forward(config), forward(config.replace(attention_impl="xla"))
    b, length = batch["token_ids"].shape
    assert calls == [("cudnn", arch == "gpt", (b, 1, length, length))] * config.num_layers
    if arch == "gpt":
        got, want = real_positions(got, batch), real_positions(want, batch)
    assert_close(got, want, 2e-2, 2e-2, "bfloat16 outputs")


def test_one_parameter_tree_for_every_impl():
    shapes = {}
    for impl in ("xla", "dot_product", "flash", "auto"):
        model = make_model("bert", BERT.replace(attention_impl=impl))
        shapes[impl] = jax.eval_shape(lambda b, m=model: m.init(jax.random.key(0), b,
                                                                deterministic=True),
                                      make_batch())
    assert all(tree == shapes["xla"] for tree in shapes.values())


def test_auto_picks_by_platform_dtype_and_dropout():
    auto = BERT.replace(attention_impl="auto")
    bf16 = auto.replace(dtype="bfloat16")
    picks = {(name, c.dtype): attention.resolve_impl(c, name)
             for name in ("cpu", "gpu", "tpu") for c in (auto, bf16)}
    assert picks == {("cpu", "float32"): "xla", ("cpu", "bfloat16"): "xla",
                     ("gpu", "float32"): "xla", ("gpu", "bfloat16"): "cudnn",
                     ("tpu", "float32"): "flash", ("tpu", "bfloat16"): "flash"}
    dropout = bf16.replace(attention_dropout_rate=0.1)
    assert {attention.resolve_impl(dropout, name) for name in ("cpu", "gpu", "tpu")} == {"xla"}
    assert attention.resolve_impl(BERT, "tpu") == "xla"  # the default stays xla everywhere


def test_refusals_are_one_line_and_name_the_fix():
    refusals = [
        (lambda: BERT.replace(attention_impl="flash", attention_dropout_rate=0.1),
         "has no attention-probability dropout.*set attention_dropout_rate=0"),
        (lambda: BERT.replace(attention_impl="dot_product", attention_dropout_rate=0.1),
         "'dot_product' has no attention-probability dropout"),
        (lambda: BERT.replace(attention_impl="cudnn"), "computes in bfloat16.*dtype='bfloat16'"),
        (lambda: BERT.replace(attention_impl="fast"), "'fast' is not one of xla, dot_product"),
        (lambda: attention.resolve_impl(BERT.replace(attention_impl="cudnn", dtype="bfloat16"),
                                        "cpu"),
         "runs on GPUs only, and this computation runs on cpu"),
        (lambda: attention.resolve_impl(BERT.replace(attention_impl="flash"), "gpu"),
         "on GPUs use attention_impl='cudnn'"),
    ]
    for make, message in refusals:
        with pytest.raises(ValueError, match=message) as e:
            make()
        assert "\n" not in str(e.value)


@pytest.fixture
def tpu_devices(monkeypatch):
    """The 4 chips of a v5e 2×2 slice as libtpu describes them on this host (no TPU needed)."""
    pytest.importorskip("libtpu")
    from jax.experimental import topologies
    # libtpu reads these once, when its plugin starts: they name the slice (silencing its
    # metadata lookups) and let it load beside another process that holds its lock file.
    for name, value in (("TPU_ACCELERATOR_TYPE", "v5litepod-4"),
                        ("TPU_WORKER_HOSTNAMES", "localhost"), ("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")):
        monkeypatch.setenv(name, os.environ.get(name, value))
    return topologies.get_topology_desc(topology_name="v5e:2x2", platform="tpu").devices


@pytest.mark.parametrize("arch,length", [("bert", 128), ("gpt", 64)])
def test_flash_compiles_for_a_tpu_topology(tpu_devices, arch, length):
    """A jitted forward and backward with ``auto`` (flash on TPU), batch over 2 chips and heads
    over 2, lowered from ShapeDtypeStructs and compiled for v5e by libtpu: the splash kernels are
    in it (64-token GPT rows padded to the kernel's 128)."""
    mesh = jax.sharding.Mesh(np.asarray(tpu_devices).reshape(2, 1, 2), axes.MESH_AXES,
                             axis_types=(jax.sharding.AxisType.Auto,) * 3)
    config = (BERT if arch == "bert" else GPT).replace(
        attention_impl="auto", vocab_size=128, max_length=128, dtype="bfloat16")
    model = make_model(arch, config)
    rows = NamedSharding(mesh, PartitionSpec(("data", "fsdp")))
    keys = ("token_ids", "type_ids") if arch == "bert" else ("token_ids", "segment_ids",
                                                               "positions")
    batch = {k: jax.ShapeDtypeStruct((4, length), jnp.int32, sharding=rows) for k in keys}
    if arch == "bert":
        batch["mlm_positions"] = jax.ShapeDtypeStruct((4, 8), jnp.int32, sharding=rows)
    abstract = jax.eval_shape(lambda b: model.init(jax.random.key(0), b, deterministic=True),
                              batch)
    shardings = nn.logical_to_mesh_sharding(nn.get_partition_spec(abstract), mesh,
                                            axes.DEFAULT_RULES)
    params = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                          nn.unbox(abstract)["params"], nn.unbox(shardings)["params"])
    with jax.set_mesh(mesh), nn.logical_axis_rules(axes.DEFAULT_RULES):
        def loss(p, b):  # any scalar of the outputs: the gradient runs the backward kernels
            out = model.apply({"params": p}, b, deterministic=True)
            return sum(jnp.sum(x.astype(jnp.float32) ** 2) for x in out.values())

        lowered = jax.jit(jax.value_and_grad(loss)).lower(params, batch)
        compiled = lowered.compile()
    program = compiled.as_text()
    assert all(f"splash_mha_{part}_segmented" in program for part in ("fwd", "dq", "dkv"))
    assert compiled.memory_analysis().temp_size_in_bytes > 0
