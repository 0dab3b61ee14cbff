"""Multi-head self-attention and the mask builders it consumes.

Masks are boolean with True = may attend, shaped to broadcast against scores [B, H, L, M]; they
combine with ``&`` and become an additive float32 bias through ``mask_to_bias``.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from lm import axes, layers
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


def packing_mask(segment_ids_BL: jax.Array) -> jax.Array:
    """Queries see keys of their own packed example only (segment 0 is padding, seen by none).

    Args:
      segment_ids_BL: int [B, L]; 0 = padding, 1..k = k-th packed example.

    Returns:
      bool [B, 1, L, L].
    """
    same_BLM = segment_ids_BL[:, :, None] == segment_ids_BL[:, None, :]
    real_BM = (segment_ids_BL != 0)[:, None, :]
    return (same_BLM & real_BM)[:, None]


def mask_to_bias(mask: jax.Array, dtype=jnp.float32) -> jax.Array:
    """Additive attention bias: 0 where ``mask`` is True, ``NEG_BIAS`` where False."""
    return jnp.where(mask, 0.0, NEG_BIAS).astype(dtype)


def dot_product_attention(q_BLHK: jax.Array, k_BMHK: jax.Array, v_BMHK: jax.Array,
                          bias_BHLM: jax.Array | None = None, *, dropout_rate: float = 0.0,
                          dropout_rng: jax.Array | None = None) -> jax.Array:
    """softmax(Q Kᵀ / √K + bias) V with the softmax in float32.

    Args:
      q_BLHK: queries [B, L, H, K].
      k_BMHK: keys [B, M, H, K].
      v_BMHK: values [B, M, H, K].
      bias_BHLM: additive bias broadcastable to [B, H, L, M], or None.
      dropout_rate: dropout on the attention probabilities.
      dropout_rng: key for that dropout; None disables it (deterministic).

    Returns:
      [B, L, H, K] in the dtype of ``v_BMHK``.
    """
    q_BLHK = q_BLHK * jnp.asarray(q_BLHK.shape[-1] ** -0.5, q_BLHK.dtype)
    scores_BHLM = jnp.einsum("BLHK,BMHK->BHLM", q_BLHK, k_BMHK,
                             preferred_element_type=jnp.float32)
    if bias_BHLM is not None:
        scores_BHLM = scores_BHLM + bias_BHLM.astype(jnp.float32)
    probs_BHLM = jax.nn.softmax(scores_BHLM, axis=-1)
    if dropout_rng is not None and dropout_rate > 0.0:
        probs_BHLM = layers.dropout(probs_BHLM, dropout_rate, dropout_rng)
    return jnp.einsum("BHLM,BMHK->BLHK", probs_BHLM.astype(v_BMHK.dtype), v_BMHK)


class SelfAttention(nn.Module):
    """Multi-head self-attention: projections D→(H, K), attention, projection (H, K)→D."""

    config: TransformerConfig

    @nn.compact
    def __call__(self, x_BLD: jax.Array, bias_BHLM: jax.Array | None, *,
                 deterministic: bool) -> jax.Array:
        """Attends over the sequence itself.

        Args:
          x_BLD: [B, L, D].
          bias_BHLM: additive float32 bias broadcastable to [B, H, L, L] (see ``mask_to_bias``).
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
        out_BLHK = dot_product_attention(q_BLHK, k_BLHK, v_BLHK, bias_BHLM, dropout_rate=rate,
                                         dropout_rng=rng)
        out_BLHK = nn.with_logical_constraint(out_BLHK, act_axes)
        return layers.dense(cfg, cfg.hidden_size, (axes.HEADS, axes.KV, axes.EMBED),
                            contract=2, name="out")(out_BLHK)
