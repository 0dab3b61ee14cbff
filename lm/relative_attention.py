"""Transformer-XL relative attention, as XLNet's two streams use it.

Scores of query i against key j add three terms (Dai et al. 2019; Yang et al. 2019):

  content   (q_i + u) · k_j                  u = ``content_bias``  (XLNet's r_w_bias)
  position  (q_i + v) · W_r R(i - j)          v = ``position_bias`` (r_r_bias), R sinusoids
  segment   (q_i + s) · e[type_i != type_j]   s = ``segment_bias``  (r_s_bias), e two vectors

so the model sees only distances and "same segment or not", never an absolute position or segment
id. Shape letters: ``R`` = M + L relative distances (M keys of which the last L are the queries'
own positions, earlier ones memory).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from lm import attention, axes, layers
from lm.config import TransformerConfig

_ACT_BLHK = (axes.BATCH, axes.LENGTH, axes.ACT_HEADS, axes.ACT_KV)


def relative_distances(query_len: int, key_len: int) -> jax.Array:
    """float32 [M + L]: the distances ``M, M-1, …, -L+1`` that ``relative_shift`` indexes."""
    return jnp.arange(key_len, -query_len, -1, dtype=jnp.float32)


def sinusoid_table(distances_R: jax.Array, width: int) -> jax.Array:
    """Transformer-XL's position signal: ``[sin(d·f), cos(d·f)]`` with f = 10000^(-2i/D).

    Args:
      distances_R: float [R].
      width: D (even).

    Returns:
      float32 [R, D].
    """
    inv_freq = 1.0 / (10000.0 ** (jnp.arange(0, width, 2, dtype=jnp.float32) / width))
    angles_RF = distances_R[:, None] * inv_freq[None, :]
    return jnp.concatenate([jnp.sin(angles_RF), jnp.cos(angles_RF)], axis=-1)


def relative_shift(x_BHLR: jax.Array, key_len: int) -> jax.Array:
    """Re-indexes scores from distance slots to keys: ``out[.., i, j] = x[.., i, L - i + j]``.

    With slots ordered as ``relative_distances`` (slot r holds distance M - r), query i (at
    absolute position M - L + i) and key j are ``M - L + i - j`` apart, which is slot
    ``L - i + j``. Done with reshapes (no gather), the Transformer-XL trick.

    Args:
      x_BHLR: [B, H, L, R] with R = M + L.
      key_len: M.

    Returns:
      [B, H, L, M].
    """
    b, h, length, slots = x_BHLR.shape
    x = x_BHLR.reshape(b, h, slots, length)[:, :, 1:, :]
    return x.reshape(b, h, length, slots - 1)[..., :key_len]


def segment_differs(type_ids_BL: jax.Array, mem_len: int) -> jax.Array:
    """bool [B, L, M]: query i and key j lie in different segments (memory counts as type 0)."""
    key_types_BM = jnp.pad(type_ids_BL, ((0, 0), (mem_len, 0)))
    return type_ids_BL[:, :, None] != key_types_BM[:, None, :]


class RelativeAttention(nn.Module):
    """One XLNet attention layer's weights, applied to either stream.

    Parameters (no projection biases, as in XLNet): ``query``, ``key``, ``value``, ``position``
    [D, H, K]; ``out`` [H, K, D]; ``content_bias``, ``position_bias``, ``segment_bias`` [H, K];
    ``segment_embed`` [2, H, K]; ``norm`` (post-LN).
    """

    config: TransformerConfig

    def setup(self):
        cfg = self.config
        shape, names = (cfg.hidden_size, cfg.num_heads, cfg.kv_dim), (axes.EMBED, axes.HEADS,
                                                                      axes.KV)
        init = layers.kernel_init(cfg, names)
        for name in ("query", "key", "value", "position"):
            setattr(self, name, self.param(name, init, shape, layers.PARAM_DTYPE))
        self.out = self.param("out", layers.kernel_init(cfg, (axes.HEADS, axes.KV, axes.EMBED)),
                              (cfg.num_heads, cfg.kv_dim, cfg.hidden_size), layers.PARAM_DTYPE)
        bias_init = layers.kernel_init(cfg, (axes.HEADS, axes.KV))
        for name in ("content_bias", "position_bias", "segment_bias"):
            setattr(self, name, self.param(name, bias_init, shape[1:], layers.PARAM_DTYPE))
        self.segment_embed = self.param(
            "segment_embed", layers.kernel_init(cfg, (axes.TYPES, axes.HEADS, axes.KV)),
            (2, *shape[1:]), layers.PARAM_DTYPE)
        self.norm = layers.layer_norm(cfg)
        self.dropout = layers.Dropout(cfg.dropout_rate)
        self.attention_dropout = layers.Dropout(cfg.attention_dropout_rate)

    def _project(self, x_BLD: jax.Array, kernel: jax.Array) -> jax.Array:
        dtype = layers.compute_dtype(self.config)
        return jnp.einsum("...D,DHK->...HK", x_BLD.astype(dtype), kernel.astype(dtype))

    def keys(self, context_BMD: jax.Array, pos_RD: jax.Array):
        """Keys and values of the content (memory + stream), keys of the distances.

        Returns:
          ``(k_BMHK, v_BMHK, kr_RHK)``.
        """
        return (self._project(context_BMD, self.key), self._project(context_BMD, self.value),
                self._project(pos_RD, self.position))

    def queries(self, x_BLD: jax.Array) -> jax.Array:
        """[B, L, D] → [B, L, H, K]."""
        return nn.with_logical_constraint(self._project(x_BLD, self.query), _ACT_BLHK)

    def attend(self, q_BLHK, keys, differs_BLM, bias_BHLM, *, deterministic: bool) -> jax.Array:
        """softmax((content + position + segment scores) / √K + bias) · V.

        Args:
          q_BLHK: queries at positions 0..L-1 of the stream (zeros where unused).
          keys: ``(k_BMHK, v_BMHK, kr_RHK)`` from ``keys``.
          differs_BLM: bool, ``segment_differs``.
          bias_BHLM: additive float32 mask bias (``attention.mask_to_bias``).
          deterministic: disables attention-probability dropout.

        Returns:
          [B, L, H, K].
        """
        k_BMHK, v_BMHK, kr_RHK = keys
        f32 = jnp.float32
        ac = jnp.einsum("BLHK,BMHK->BHLM", q_BLHK + self.content_bias.astype(q_BLHK.dtype),
                        k_BMHK, preferred_element_type=f32)
        bd = jnp.einsum("BLHK,RHK->BHLR", q_BLHK + self.position_bias.astype(q_BLHK.dtype),
                        kr_RHK, preferred_element_type=f32)
        bd = relative_shift(bd, k_BMHK.shape[1])
        seg_BLHS = jnp.einsum("BLHK,SHK->BLHS", q_BLHK + self.segment_bias.astype(q_BLHK.dtype),
                              self.segment_embed.astype(q_BLHK.dtype), preferred_element_type=f32)
        seg_BHLS = seg_BLHS.transpose(0, 2, 1, 3)
        ef = jnp.where(differs_BLM[:, None], seg_BHLS[..., 1:2], seg_BHLS[..., 0:1])
        scores_BHLM = (ac + bd + ef) * (q_BLHK.shape[-1] ** -0.5) + bias_BHLM
        probs_BHLM = jax.nn.softmax(scores_BHLM, axis=-1)
        probs_BHLM = self.attention_dropout(probs_BHLM, deterministic=deterministic)
        out = jnp.einsum("BHLM,BMHK->BLHK", probs_BHLM.astype(v_BMHK.dtype), v_BMHK)
        return nn.with_logical_constraint(out, _ACT_BLHK)

    def post(self, x_BLD: jax.Array, attn_BLHK: jax.Array, *, deterministic: bool) -> jax.Array:
        """Output projection, dropout, residual add, LayerNorm: → [B, L, D]."""
        dtype = layers.compute_dtype(self.config)
        y_BLD = jnp.einsum("BLHK,HKD->BLD", attn_BLHK, self.out.astype(dtype))
        y_BLD = self.dropout(y_BLD, deterministic=deterministic)
        return self.norm(x_BLD + y_BLD)


def stream_masks(can_attend_BLL: jax.Array, is_real_BL: jax.Array, mem_len: int
                 ) -> tuple[jax.Array, jax.Array]:
    """The content and query streams' boolean masks over memory + sequence, [B, 1, L, M].

    The batch carries one permutation mask, ``can_attend`` (content stream: not-later tokens,
    itself included). The query stream's is the same without the diagonal; memory is always
    visible, padding never (except a position to itself in the content stream, so that no content
    row is empty, as in XLNet).
    """
    b, length = is_real_BL.shape
    eye_LL = jnp.eye(length, dtype=bool)
    query_BLL = can_attend_BLL & is_real_BL[:, None, :] & ~eye_LL
    content_BLL = query_BLL | eye_LL
    mem_BLL = jnp.ones((b, length, mem_len), bool)
    return (jnp.concatenate([mem_BLL, content_BLL], -1)[:, None],
            jnp.concatenate([mem_BLL, query_BLL], -1)[:, None])


def mask_bias(mask_B1LM: jax.Array) -> jax.Array:
    """float32 additive bias of a boolean mask (``attention.mask_to_bias``)."""
    return attention.mask_to_bias(mask_B1LM)
