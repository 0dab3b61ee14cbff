"""``attention_impl="flash"``: the Pallas splash-attention kernel JAX ships for TPUs, per device.

Splash attention (``jax.experimental.pallas.ops.tpu.splash_attention``) rather than the older
``pallas.ops.tpu.flash_attention``: it takes the same segment ids, skips the key blocks a causal
mask hides (about half a GPT row's work), is the kernel MaxText trains with, and has an
interpreter (``interpret=True``), so CPU tests run the kernel's own code; the older kernel only
has a ``debug`` print.

The kernel sees one device's arrays, so under a mesh (``jax.set_mesh``) it runs in
``jax.shard_map``: batch on the mesh axes of the ``batch`` rule, heads on those of ``act_heads``
(the logical rules in context, as everywhere in ``lm/``); the sequence and head width stay whole.
Its blocks are multiples of 128 positions, so a sequence of another length is padded to one
with positions that see only each other, and sliced off again.
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_kernel as splash
from jax.experimental.pallas.ops.tpu.splash_attention import splash_attention_mask as masks

from lm import axes

LANES = 128  # the kernel's key blocks are multiples of this many positions
_PADDING_SEGMENT = -2  # the padded positions' segment id: neither a real segment nor hidden (-1)


def splash_attention(q_BLHK: jax.Array, k_BLHK: jax.Array, v_BLHK: jax.Array,
                     q_segments_BL: jax.Array, kv_segments_BL: jax.Array, *, causal: bool,
                     interpret: bool = False) -> jax.Array:
    """softmax(Q Kᵀ + mask) V, the mask given as segment ids and a causal flag (Q pre-scaled).

    Args:
      q_BLHK: queries [B, L, H, K], already scaled by 1/√K.
      k_BLHK, v_BLHK: keys and values [B, L, H, K] (self-attention: as many as queries).
      q_segments_BL, kv_segments_BL: int32 [B, L]; query i sees key j iff their ids are equal
        (``AttentionMask.segments``).
      causal: query i sees only keys j ≤ i as well.
      interpret: run the kernel in Pallas' interpreter (any platform; slow, for tests).

    Returns:
      [B, L, H, K] in the dtype of ``q_BLHK``.

    Raises:
      ValueError: in one line, when the logical rules shard the sequence or head width.
    """
    local = functools.partial(_local, causal=causal, interpret=interpret)
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return local(q_BLHK, k_BLHK, v_BLHK, q_segments_BL, kv_segments_BL)
    spec = nn.logical_to_mesh_axes((axes.BATCH, axes.LENGTH, axes.ACT_HEADS, axes.ACT_KV))
    if spec[1] is not None or spec[3] is not None:
        raise ValueError(f"attention_impl='flash' keeps each sequence and head whole on a device, "
                         f"but the logical rules shard them ({axes.LENGTH}→{spec[1]}, "
                         f"{axes.ACT_KV}→{spec[3]}): map them to None or use attention_impl='xla'")
    _check_divisible(q_BLHK.shape, spec, mesh)
    rows = jax.sharding.PartitionSpec(spec[0], None)
    # check_vma=False: the kernel's pallas_call states no per-axis variance of its outputs.
    return jax.shard_map(local, in_specs=(spec, spec, spec, rows, rows), out_specs=spec,
                         check_vma=False)(q_BLHK, k_BLHK, v_BLHK, q_segments_BL, kv_segments_BL)


def _check_divisible(shape_BLHK, spec, mesh) -> None:
    """Raises ValueError in one line unless the batch and heads divide over their mesh axes."""
    def ways(entry) -> int:
        names = () if entry is None else (entry,) if isinstance(entry, str) else tuple(entry)
        return math.prod(mesh.shape[n] for n in names)

    (b, _, h, _), (b_ways, h_ways) = shape_BLHK, (ways(spec[0]), ways(spec[2]))
    if b % b_ways or h % h_ways:
        raise ValueError(f"attention_impl='flash' runs per device: batch {b} over {b_ways} "
                         f"devices ({spec[0]}) and {h} heads over {h_ways} ({spec[2]}) must "
                         "divide evenly; change the batch size or mesh, or use "
                         "attention_impl='xla'")


def _local(q_BLHK, k_BLHK, v_BLHK, q_segments_BL, kv_segments_BL, *, causal: bool,
           interpret: bool) -> jax.Array:
    """``splash_attention`` on one device's arrays: padded to whole blocks, one kernel call per
    row (vmapped), in the kernel's [H, L, K] layout."""
    length, heads = q_BLHK.shape[1], q_BLHK.shape[2]
    padded = -(-length // LANES) * LANES
    pad = padded - length

    def layout(x_BLHK):  # [B, L, H, K] → [B, H, L', K]
        return jnp.pad(x_BLHK, ((0, 0), (0, pad), (0, 0), (0, 0))).transpose(0, 2, 1, 3)

    def segments(ids_BL):
        return jnp.pad(ids_BL.astype(jnp.int32), ((0, 0), (0, pad)),
                       constant_values=_PADDING_SEGMENT)

    kernel = _kernel(heads, padded, causal, interpret)
    ids = splash.SegmentIds(segments(q_segments_BL), segments(kv_segments_BL))
    out_BHLK = jax.vmap(kernel)(layout(q_BLHK), layout(k_BLHK), layout(v_BLHK), segment_ids=ids)
    return out_BHLK.transpose(0, 2, 1, 3)[:, :length]


def _kernel(heads: int, length: int, causal: bool, interpret: bool):
    """A splash kernel for ``heads`` heads of ``length`` (a multiple of 128) positions, with the
    largest blocks of 512, 256 or 128 positions that divide it."""
    block = next(b for b in (512, 256, LANES) if length % b == 0)
    sizes = splash.BlockSizes(block_q=block, block_kv=block, block_kv_compute=block,
                              block_q_dkv=block, block_kv_dkv=block, block_kv_dkv_compute=block,
                              block_q_dq=block, block_kv_dq=block)
    head_mask = (masks.CausalMask((length, length)) if causal
                 else masks.FullMask((length, length)))
    return splash.make_splash_mha(masks.MultiHeadMask([head_mask] * heads), block_sizes=sizes,
                                  head_shards=1, q_seq_shards=1, interpret=interpret)
