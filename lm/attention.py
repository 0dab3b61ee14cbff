"""Multi-head self-attention, the masks it takes, and its implementations.

A layer is told which keys each query may see by an ``AttentionMask``: the structure (key
validity, packed-segment ids, causal), never a dense array, so a fused kernel can use it as it is
(a causal flag, segment ids) while the einsum path builds today's additive bias from it. Boolean
masks are True = may attend, shaped to broadcast against scores [B, H, L, M]; they combine with
``&`` and become an additive float32 bias through ``mask_to_bias``.

``TransformerConfig.attention_impl`` chooses how softmax(Q Kᵀ / √K + mask) V is computed:

* ``xla``: the einsum below (``dot_product_attention``), scores materialised in float32
  [B, H, L, M]; the only one with attention-probability dropout; the default.
* ``dot_product``: ``jax.nn.dot_product_attention`` (in JAX 0.10 its XLA implementation).
* ``cudnn``: the same with ``implementation="cudnn"``: cuDNN's fused flash attention (GPU,
  bfloat16).
* ``flash``: the Pallas splash-attention kernel JAX ships for TPUs (``lm/flash_attention.py``);
  on CPU its interpreter, a slow reference for tests.
* ``auto``: ``flash`` on TPU, ``cudnn`` on GPU in bfloat16, ``xla`` otherwise, and ``xla``
  whenever ``attention_dropout_rate > 0``: the fused kernels have no attention-probability
  dropout.

The KV-cache decoding path (a mask with ``query_offset``) always takes ``xla``. A mask with a
``position_bias`` (T5's relative positions) cannot go to the fused kernels, which take no
learned additive bias (splash attention takes none; cuDNN's bias gradient is not wired for a
bias shared across the batch): ``flash`` and ``cudnn`` (and so ``auto``) then take ``xla``, and
``dot_product`` passes it as ``jax.nn.dot_product_attention``'s ``bias``. Cross-attention (queries
and keys of different sequences, ``key_segment_ids_BM``) with ``flash`` takes ``xla`` too: the
splash wrapper here is for self-attention. So T5 runs its self-attention on ``xla`` (or
``dot_product``) everywhere, and its cross-attention fused on GPUs (``cudnn``). XLNet's
two-stream relative attention (``lm/relative_attention.py``) has its own einsum path and ignores
``attention_impl``. Every implementation has the same parameters.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import struct

from lm import axes, flash_attention, layers
from lm.config import TransformerConfig

# Finite rather than -inf, so a fully masked row softmaxes to uniform instead of NaN, and small
# enough in magnitude that adding two of them stays finite in float32.
NEG_BIAS = -1e9


def padding_mask(token_ids_BM: jax.Array, pad_id: int) -> jax.Array:
    """Keys that are real tokens: int [B, M] → bool [B, 1, 1, M]."""
    return (token_ids_BM != pad_id)[:, None, None, :]


def causal_mask(length: int) -> jax.Array:
    """Each query sees itself and earlier keys: → bool [1, 1, L, L]."""
    return jnp.tril(jnp.ones((length, length), dtype=bool))[None, None]


def packing_mask(segment_ids_BL: jax.Array, key_segment_ids_BM: jax.Array | None = None
                 ) -> jax.Array:
    """Queries see keys of their own packed example only (segment 0 is padding, seen by none).

    Args:
      segment_ids_BL: int [B, L]; 0 = padding, 1..k = k-th packed example.
      key_segment_ids_BM: the keys' ids (cross-attention: the encoder's); None = the queries'.

    Returns:
      bool [B, 1, L, M].
    """
    keys_BM = segment_ids_BL if key_segment_ids_BM is None else key_segment_ids_BM
    same_BLM = segment_ids_BL[:, :, None] == keys_BM[:, None, :]
    real_BM = (keys_BM != 0)[:, None, :]
    return (same_BLM & real_BM)[:, None]


def mask_to_bias(mask: jax.Array, dtype=jnp.float32) -> jax.Array:
    """Additive attention bias: 0 where ``mask`` is True, ``NEG_BIAS`` where False."""
    return jnp.where(mask, 0.0, NEG_BIAS).astype(dtype)


@struct.dataclass
class AttentionMask:
    """Which keys each query may see: the AND of the parts given (none = every key).

    Attributes:
      key_valid_BM: bool [B, M]; False keys (padding, empty cache slots) are seen by none.
      segment_ids_BL: int [B, L] (self-attention, L = M): queries see keys of their own packed
        example only; segment 0 is padding, seen by none.
      causal: each query sees itself and earlier keys (static).
      query_offset: int32 []: the key slot of the first query (decoding into a KV cache, where
        query i sits at slot ``query_offset + i``); None = 0. Only ``xla`` takes it.
      key_segment_ids_BM: int [B, M]: cross-attention's key example ids, compared with
        ``segment_ids_BL`` (the queries'); None = self-attention.
      position_bias: float32 broadcastable to [B, H, L, M], added to the scores (T5's relative
        position bias; the module docstring says which implementations take it).
    """

    key_valid_BM: jax.Array | None = None
    segment_ids_BL: jax.Array | None = None
    causal: bool = struct.field(pytree_node=False, default=False)
    query_offset: jax.Array | None = None
    key_segment_ids_BM: jax.Array | None = None
    position_bias: jax.Array | None = None

    def allowed(self, length: int, kv_length: int, *, with_causal: bool = True
                ) -> jax.Array | None:
        """bool broadcastable to [B, 1, L, M] (None when every key is seen); ``with_causal=False``
        leaves the causal part to a kernel's flag."""
        mask = None
        if self.key_valid_BM is not None:
            mask = self.key_valid_BM[:, None, None, :]
        if self.segment_ids_BL is not None:
            mask = _and(mask, packing_mask(self.segment_ids_BL, self.key_segment_ids_BM))
        if self.causal and with_causal:
            if self.query_offset is None:
                causal = causal_mask(length)
            else:
                query_slot_L = self.query_offset + jnp.arange(length)
                causal = (jnp.arange(kv_length)[None, :] <= query_slot_L[:, None])[None, None]
            mask = _and(mask, causal)
        return mask

    def bias(self, length: int, kv_length: int) -> jax.Array | None:
        """float32 additive bias broadcastable to [B, H, L, M] (``mask_to_bias`` plus any
        ``position_bias``), or None."""
        mask = self.allowed(length, kv_length)
        bias = None if mask is None else mask_to_bias(mask)
        if self.position_bias is None:
            return bias
        position = self.position_bias.astype(jnp.float32)
        return position if bias is None else bias + position

    def segments(self, batch: int, length: int) -> tuple[jax.Array, jax.Array]:
        """The mask but its causal part as (query, key) segment ids, int32 [B, L] each, for
        segment-id kernels (self-attention): query i sees key j iff their ids are equal. Hidden
        keys get -1, which no query has."""
        if self.segment_ids_BL is not None:
            q_BL = self.segment_ids_BL.astype(jnp.int32)
            visible_BL = q_BL != 0
        else:
            q_BL = jnp.ones((batch, length), jnp.int32)
            visible_BL = jnp.ones((batch, length), bool)
        if self.key_valid_BM is not None:
            visible_BL = visible_BL & self.key_valid_BM
        return q_BL, jnp.where(visible_BL, q_BL, -1)


def _and(a: jax.Array | None, b: jax.Array) -> jax.Array:
    return b if a is None else a & b


def dot_product_attention(q_BLHK: jax.Array, k_BMHK: jax.Array, v_BMHK: jax.Array,
                          bias_BHLM: jax.Array | None = None, *, dropout_rate: float = 0.0,
                          dropout_rng: jax.Array | None = None, scale: float | None = None
                          ) -> jax.Array:
    """softmax(Q Kᵀ / √K + bias) V with the softmax in float32.

    Args:
      q_BLHK: queries [B, L, H, K].
      k_BMHK: keys [B, M, H, K].
      v_BMHK: values [B, M, H, K].
      bias_BHLM: additive bias broadcastable to [B, H, L, M], or None.
      dropout_rate: dropout on the attention probabilities.
      dropout_rng: key for that dropout; None disables it (deterministic).
      scale: the factor of Q Kᵀ; None = 1/√K (T5: 1, its initialisation absorbs it).

    Returns:
      [B, L, H, K] in the dtype of ``v_BMHK``.
    """
    q_BLHK = q_BLHK * jnp.asarray(_scale(q_BLHK, scale), q_BLHK.dtype)
    scores_BHLM = jnp.einsum("BLHK,BMHK->BHLM", q_BLHK, k_BMHK,
                             preferred_element_type=jnp.float32)
    if bias_BHLM is not None:
        scores_BHLM = scores_BHLM + bias_BHLM.astype(jnp.float32)
    probs_BHLM = jax.nn.softmax(scores_BHLM, axis=-1)
    if dropout_rng is not None and dropout_rate > 0.0:
        probs_BHLM = layers.dropout(probs_BHLM, dropout_rate, dropout_rng)
    return jnp.einsum("BHLM,BMHK->BLHK", probs_BHLM.astype(v_BMHK.dtype), v_BMHK)


def _scale(q_BLHK: jax.Array, scale: float | None) -> float:
    return q_BLHK.shape[-1] ** -0.5 if scale is None else scale


def fallback(impl: str, mask: AttentionMask, length: int, kv_length: int) -> str:
    """The implementation that computes ``mask`` when ``impl`` cannot (module docstring): a KV
    cache takes ``xla``; a position bias takes ``xla`` from ``flash`` and ``cudnn``;
    cross-attention takes ``xla`` from ``flash``."""
    if mask.query_offset is not None:
        return "xla"
    if mask.position_bias is not None and impl in ("flash", "cudnn"):
        return "xla"
    cross = mask.key_segment_ids_BM is not None or length != kv_length
    return "xla" if impl == "flash" and cross else impl


def platform() -> str:
    """The platform of the computation being traced: the context mesh's (``jax.set_mesh``; a
    compile for a TPU topology on a CPU host says ``tpu``), else JAX's default backend."""
    mesh = jax.sharding.get_abstract_mesh()
    device = None if mesh.empty else mesh.abstract_device
    return device.platform if device is not None else jax.default_backend()


_GPU = ("gpu", "cuda", "rocm")


def resolve_impl(config: TransformerConfig, platform_name: str) -> str:
    """``config.attention_impl`` on ``platform_name``, ``auto`` made concrete (module docstring).

    Raises:
      ValueError: in one line, for ``cudnn`` off a GPU or ``flash`` on one.
    """
    impl = config.attention_impl
    if impl == "auto":
        if config.attention_dropout_rate > 0.0:
            return "xla"
        if platform_name == "tpu":
            return "flash"
        return "cudnn" if platform_name in _GPU and config.dtype == "bfloat16" else "xla"
    if impl == "cudnn" and platform_name not in _GPU:
        raise ValueError(f"attention_impl='cudnn' runs on GPUs only, and this computation runs "
                         f"on {platform_name}: use attention_impl='auto' or 'xla'")
    if impl == "flash" and platform_name in _GPU:
        raise ValueError("attention_impl='flash' is the TPU Pallas kernel (interpreted on CPU, "
                         "for tests); on GPUs use attention_impl='cudnn' or 'auto'")
    return impl


def attend(config: TransformerConfig, q_BLHK: jax.Array, k_BMHK: jax.Array, v_BMHK: jax.Array,
           mask: AttentionMask, dropout_rng: jax.Array | None = None, *,
           scale: float | None = None) -> jax.Array:
    """softmax(Q Kᵀ / √K + mask) V by ``config.attention_impl`` (see the module docstring).

    Args:
      config: ``attention_impl``, ``attention_dropout_rate`` and ``dtype``.
      q_BLHK: queries [B, L, H, K].
      k_BMHK, v_BMHK: keys and values [B, M, H, K].
      mask: which keys each query sees; one with ``query_offset`` (a KV cache) always takes xla.
      dropout_rng: the key of attention-probability dropout (xla only); None disables it.
      scale: the factor of Q Kᵀ; None = 1/√K.

    Returns:
      [B, L, H, K] in the dtype of ``v_BMHK``.
    """
    name = platform()
    length, kv_length = q_BLHK.shape[1], k_BMHK.shape[1]
    impl = fallback(resolve_impl(config, name), mask, length, kv_length)
    if impl == "xla":
        return dot_product_attention(q_BLHK, k_BMHK, v_BMHK, mask.bias(length, kv_length),
                                     dropout_rate=config.attention_dropout_rate,
                                     dropout_rng=dropout_rng, scale=scale)
    if impl == "flash":
        q_BLHK = q_BLHK * jnp.asarray(_scale(q_BLHK, scale), q_BLHK.dtype)
        q_seg_BL, kv_seg_BL = mask.segments(q_BLHK.shape[0], length)
        return flash_attention.splash_attention(q_BLHK, k_BMHK, v_BMHK, q_seg_BL, kv_seg_BL,
                                                causal=mask.causal, interpret=name != "tpu")
    allowed = mask.allowed(length, kv_length, with_causal=False)
    if impl == "cudnn" and allowed is not None:  # cuDNN takes a mask (as a bias) of [·, ·, L, M]
        allowed = jnp.broadcast_to(allowed, (allowed.shape[0], 1, length, kv_length))
    return jax.nn.dot_product_attention(q_BLHK, k_BMHK, v_BMHK, mask=allowed,
                                        bias=mask.position_bias, scale=scale,
                                        is_causal=mask.causal,
                                        implementation="cudnn" if impl == "cudnn" else None)


class SelfAttention(nn.Module):
    """Multi-head self-attention: projections D→(H, K), attention, projection (H, K)→D."""

    config: TransformerConfig

    @nn.compact
    def __call__(self, x_BLD: jax.Array, mask: AttentionMask, *, deterministic: bool
                 ) -> jax.Array:
        """Attends over the sequence itself.

        Args:
          x_BLD: [B, L, D].
          mask: which keys each query sees.
          deterministic: disables attention-probability dropout.

        Returns:
          [B, L, D] in the compute dtype.
        """
        cfg = self.config
        heads = (cfg.num_heads, cfg.kv_dim)
        in_axes = (axes.EMBED, axes.HEADS, axes.KV)
        act_axes = (axes.BATCH, axes.LENGTH, axes.ACT_HEADS, axes.ACT_KV)
        q_BLHK = layers.dense(cfg, heads, in_axes, name="query")(x_BLD)
        k_BLHK = layers.dense(cfg, heads, in_axes, name="key")(x_BLD)
        v_BLHK = layers.dense(cfg, heads, in_axes, name="value")(x_BLD)
        q_BLHK = nn.with_logical_constraint(q_BLHK, act_axes)
        rate = cfg.attention_dropout_rate
        rng = None if deterministic or rate == 0.0 else self.make_rng("dropout")
        out_BLHK = attend(cfg, q_BLHK, k_BLHK, v_BLHK, mask, rng)
        out_BLHK = nn.with_logical_constraint(out_BLHK, act_axes)
        return layers.dense(cfg, cfg.hidden_size, (axes.HEADS, axes.KV, axes.EMBED),
                            contract=2, name="out")(out_BLHK)


_ACT_BLHK = (axes.BATCH, axes.LENGTH, axes.ACT_HEADS, axes.ACT_KV)


class Attention(nn.Module):
    """Multi-head attention in its general form: self- or cross-attention, an optional KV cache,
    optional projection biases and score scale. GPT's decoder uses it with a cache, T5 in all its
    forms; BERT's ``SelfAttention`` computes its plain case with the same parameter names (kept
    as it is, so BERT's compiled step stays unchanged). Parameters: ``query``, ``key``,
    ``value`` [H, K, D] and ``out`` [D, H, K] kernels (and biases with ``use_bias``).

    Attributes:
      config: shapes, dtype, attention implementation and dropout.
      use_bias: projection biases (GPT); T5 has none.
      scale: the factor of Q Kᵀ; None = 1/√K (T5: 1.0).
    """

    config: TransformerConfig
    use_bias: bool = True
    scale: float | None = None

    def setup(self):
        cfg = self.config
        heads, in_axes = (cfg.num_heads, cfg.kv_dim), (axes.EMBED, axes.HEADS, axes.KV)
        self.query = layers.dense(cfg, heads, in_axes, use_bias=self.use_bias)
        self.key = layers.dense(cfg, heads, in_axes, use_bias=self.use_bias)
        self.value = layers.dense(cfg, heads, in_axes, use_bias=self.use_bias)
        self.out = layers.dense(cfg, cfg.hidden_size, (axes.HEADS, axes.KV, axes.EMBED),
                                contract=2, use_bias=self.use_bias)

    def keys_values(self, source_BMD: jax.Array) -> tuple[jax.Array, jax.Array]:
        """The keys and values of ``source_BMD`` [B, M, D]: ([B, M, H, K], [B, M, H, K]); a
        decoder computes its cross-attention's once per source (``__call__``'s ``kv``)."""
        return self.key(source_BMD), self.value(source_BMD)

    def __call__(self, x_BLD: jax.Array, mask: AttentionMask, *, deterministic: bool,
                 source_BMD: jax.Array | None = None, kv=None, index=None):
        """Attends from ``x_BLD`` over itself, over ``source_BMD``, or over a cache.

        Args:
          x_BLD: the queries' sequence [B, L, D].
          mask: which keys each query sees (M keys: the source's, or the cache's slots).
          deterministic: disables attention dropout.
          source_BMD: cross-attention: keys and values from this sequence [B, M, D].
          kv: with ``index``, this layer's self-attention cache ``(key, value)``, each
            [B, M, H, K], into which this chunk is written at slot ``index`` (int32 []); without
            ``index``, precomputed keys and values (``keys_values``) to attend over.

        Returns:
          ``(y_BLD, kv)``: the output in the compute dtype, and the keys and values attended
          over when they are worth keeping: the updated cache, the precomputed ones as given,
          or cross-attention's computed from ``source_BMD``; None for plain self-attention.
        """
        cfg = self.config
        q_BLHK = nn.with_logical_constraint(self.query(x_BLD), _ACT_BLHK)
        if kv is not None and index is None:
            k_BMHK, v_BMHK = kv
        else:
            k_BMHK, v_BMHK = self.keys_values(x_BLD if source_BMD is None else source_BMD)
            if source_BMD is not None:  # kept by a decoder that decodes from this source
                kv = (k_BMHK, v_BMHK)
            elif kv is not None:
                start = (0, index, 0, 0)
                k_BMHK = jax.lax.dynamic_update_slice(kv[0], k_BMHK.astype(kv[0].dtype), start)
                v_BMHK = jax.lax.dynamic_update_slice(kv[1], v_BMHK.astype(kv[1].dtype), start)
                kv = (k_BMHK, v_BMHK)
        rate = cfg.attention_dropout_rate
        rng = None if deterministic or rate == 0.0 else self.make_rng("dropout")
        out_BLHK = attend(cfg, q_BLHK, k_BMHK, v_BMHK, mask, rng, scale=self.scale)
        out_BLHK = nn.with_logical_constraint(out_BLHK, _ACT_BLHK)
        return self.out(out_BLHK), kv
