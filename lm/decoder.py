"""The GPT decoder: a causal pre-LN Transformer with learned positions, and its KV cache.

Training runs the whole sequence at once (``Decoder.__call__``): causal attention, restricted to
each packed document by ``segment_ids`` (0 = padding), with ``positions`` restarting per document.
Decoding appends tokens to an explicit, fixed-shape cache (``Decoder.extend``), so a decode loop
of any length compiles once. The cache is a plain dict pytree::

    {"key", "value": [N, B, M, H, K],   # every layer's keys and values, slot by slot
     "is_real": bool [B, M],            # slots that hold a real token (not padding, not empty)
     "index": int32 []}                 # the next slot to write; the same for every row

Rows of different lengths are left-padded (padding slots are never attended), so every row
writes its next token to the same slot; each token's position comes from the caller.
"""

from __future__ import annotations

from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from lm import attention, axes, layers, stack
from lm.config import TransformerConfig

_ACT_BLD = (axes.BATCH, axes.LENGTH, axes.ACT_EMBED)


def init_cache(config: TransformerConfig, batch_size: int, max_length: int) -> dict:
    """An empty cache for ``batch_size`` rows of up to ``max_length`` (M) tokens."""
    shape = (config.num_layers, batch_size, max_length, config.num_heads, config.kv_dim)
    dtype = layers.compute_dtype(config)
    return {"key": jnp.zeros(shape, dtype), "value": jnp.zeros(shape, dtype),
            "is_real": jnp.zeros((batch_size, max_length), bool),
            "index": jnp.zeros((), jnp.int32)}


def causal_packing_mask(segment_ids_BL: jax.Array) -> attention.AttentionMask:
    """Each token sees itself and earlier tokens of its own document (segment 0: padding)."""
    return attention.AttentionMask(segment_ids_BL=segment_ids_BL, causal=True)


def cache_mask(is_real_BM: jax.Array, index: jax.Array) -> attention.AttentionMask:
    """New tokens at slots ``index …`` of a cache of M slots: each sees the real slots up to and
    including its own (``xla`` only: the KV-cache path)."""
    return attention.AttentionMask(key_valid_BM=is_real_BM, causal=True, query_offset=index)


class DecoderBlock(nn.Module):
    """Pre-LN layer: ``x += drop(attn(LN(x))); x += drop(mlp(LN(x)))``.

    Parameter names are those of ``encoder.TransformerBlock`` with ``norm_position="pre"``.
    """

    config: TransformerConfig

    @nn.compact
    def __call__(self, x_BLD: jax.Array, mask: attention.AttentionMask, deterministic: bool,
                 kv=None, index=None):
        """One layer; ``deterministic`` is positional for ``nn.remat``/``nn.scan``.

        Returns:
          ``(x_BLD, kv)``: the carry and this layer's updated cache (None without one).
        """
        cfg = self.config
        drop = layers.Dropout(cfg.dropout_rate)
        x_BLD = nn.with_logical_constraint(x_BLD, _ACT_BLD)
        h_BLD = layers.layer_norm(cfg, name="attention_norm")(x_BLD)
        h_BLD, kv = attention.Attention(cfg, name="attention")(
            h_BLD, mask, deterministic=deterministic, kv=kv, index=index)
        x_BLD = x_BLD + drop(h_BLD, deterministic=deterministic)
        h_BLD = layers.layer_norm(cfg, name="mlp_norm")(x_BLD)
        h_BLD = layers.Mlp(cfg, name="mlp")(h_BLD)
        x_BLD = x_BLD + drop(h_BLD, deterministic=deterministic)
        return nn.with_logical_constraint(x_BLD, _ACT_BLD), kv


# Per argument after the carry: the mask and ``deterministic`` are the same for every layer; the
# cache (key, value) [N, …] gives each layer its own slice; the slot index is shared.
_IN_AXES = (nn.broadcast, nn.broadcast, 0, nn.broadcast)


class GptEmbeddings(nn.Module):
    """Token + learned position embeddings → dropout (GPT-2 has no embedding LayerNorm)."""

    config: TransformerConfig

    def setup(self):
        cfg = self.config
        self.token_embed = layers.Embed(cfg.vocab_size, cfg.hidden_size,
                                        (axes.VOCAB, axes.EMBED), cfg)
        self.position_embed = layers.Embed(cfg.max_length, cfg.hidden_size,
                                           (axes.POS, axes.EMBED), cfg)
        self.embed_dropout = layers.Dropout(cfg.dropout_rate)

    def __call__(self, token_ids_BL: jax.Array, positions_BL: jax.Array, *,
                 deterministic: bool) -> jax.Array:
        """Int ids and positions [B, L] → [B, L, D] in the compute dtype."""
        x_BLD = self.token_embed(token_ids_BL) + self.position_embed(positions_BL)
        return self.embed_dropout(x_BLD, deterministic=deterministic)

    def attend(self, x_BLD: jax.Array) -> jax.Array:
        """The tied LM head: [..., D] → float32 [..., V] = x · token_embeddingᵀ."""
        return self.token_embed.attend(x_BLD)


class Decoder(nn.Module):
    """Embeddings → N pre-LN causal blocks → final LayerNorm.

    Parameter names: ``embeddings/{token_embed,position_embed}``, ``layers_0 … layers_{N-1}`` (or
    ``layers``, stacked, when ``scan_layers``), ``final_norm``.
    """

    config: TransformerConfig

    def setup(self):
        cfg = self.config
        self.embeddings = GptEmbeddings(cfg)
        self.layers = stack.make_layers(DecoderBlock, cfg, in_axes=_IN_AXES)
        self.final_norm = layers.layer_norm(cfg)

    def __call__(self, batch: Mapping[str, jax.Array], *, deterministic: bool) -> jax.Array:
        """The whole sequence at once.

        Args:
          batch: ``token_ids`` [B, L]; optional ``segment_ids`` (default: 1 for real tokens,
            0 for padding) and ``positions`` (default 0..L-1), all int.
          deterministic: disables dropout.

        Returns:
          [B, L, D] in the compute dtype.
        """
        token_ids_BL = batch["token_ids"]
        positions_BL = layers.positions_of(token_ids_BL, batch.get("positions"))
        segment_ids_BL = batch.get("segment_ids")
        if segment_ids_BL is None:
            segment_ids_BL = (token_ids_BL != self.config.pad_id).astype(jnp.int32)
        x_BLD = self.embeddings(token_ids_BL, positions_BL, deterministic=deterministic)
        x_BLD, _ = self._blocks(x_BLD, causal_packing_mask(segment_ids_BL), deterministic)
        return nn.with_logical_constraint(self.final_norm(x_BLD), _ACT_BLD)

    def extend(self, token_ids_BL: jax.Array, positions_BL: jax.Array, is_real_BL: jax.Array,
               cache: dict) -> tuple[jax.Array, dict]:
        """Appends L tokens to the cache (without dropout) and returns their outputs.

        Args:
          token_ids_BL, positions_BL: int [B, L].
          is_real_BL: bool [B, L]; False marks padding (no later token attends to it).
          cache: see the module docstring; ``index + L`` must not exceed M.

        Returns:
          ``(x_BLD, cache)``: the outputs of the L tokens, and the cache holding them.
        """
        index, length = cache["index"], token_ids_BL.shape[1]
        is_real_BM = jax.lax.dynamic_update_slice(cache["is_real"], is_real_BL, (0, index))
        x_BLD = self.embeddings(token_ids_BL, positions_BL, deterministic=True)
        x_BLD, (k, v) = self._blocks(x_BLD, cache_mask(is_real_BM, index), True,
                                     (cache["key"], cache["value"]), index)
        new = {"key": k, "value": v, "is_real": is_real_BM, "index": index + length}
        return self.final_norm(x_BLD), new

    def _blocks(self, x_BLD, mask, deterministic: bool, kv=None, index=None):
        """Runs the layers; ``kv`` is ``(key, value)`` stacked [N, B, M, H, K], or None."""
        return stack.run_layers(self.layers, self.config, x_BLD, mask, deterministic, kv, index,
                                in_axes=_IN_AXES)

    def attend(self, x_BLD: jax.Array) -> jax.Array:
        """The tied LM head: [..., D] → float32 [..., V]."""
        return self.embeddings.attend(x_BLD)
