"""The bidirectional Transformer encoder (BERT's body; ALBERT reuses it)."""

from __future__ import annotations

from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from lm import attention, axes, heads, layers, stack
from lm.config import TransformerConfig

_ACT_BLD = (axes.BATCH, axes.LENGTH, axes.ACT_EMBED)


class TransformerBlock(nn.Module):
    """Self-attention then MLP, each a residual branch with dropout; post- or pre-LayerNorm.

    Post-LN (BERT): ``x = LN(x + drop(attn(x))); x = LN(x + drop(mlp(x)))``.
    Pre-LN: ``x = x + drop(attn(LN(x))); x = x + drop(mlp(LN(x)))``.
    """

    config: TransformerConfig

    @nn.compact
    def __call__(self, x_BLD: jax.Array, mask: attention.AttentionMask, deterministic: bool
                 ) -> tuple[jax.Array, None]:
        """One layer.

        ``deterministic`` is positional so ``nn.remat`` can mark it static and ``nn.scan`` can
        broadcast it; the ``(x, None)`` return is the carry/output pair ``nn.scan`` expects.

        Args:
          x_BLD: [B, L, D] in the compute dtype.
          mask: which keys each query sees.
          deterministic: disables dropout.

        Returns:
          ``(x_BLD, None)``.
        """
        cfg = self.config
        pre = cfg.norm_position == "pre"
        drop = layers.Dropout(cfg.dropout_rate)
        attn_norm = layers.layer_norm(cfg, name="attention_norm")
        mlp_norm = layers.layer_norm(cfg, name="mlp_norm")
        x_BLD = nn.with_logical_constraint(x_BLD, _ACT_BLD)

        h_BLD = attn_norm(x_BLD) if pre else x_BLD
        h_BLD = attention.SelfAttention(cfg, name="attention")(
            h_BLD, mask, deterministic=deterministic)
        x_BLD = x_BLD + drop(h_BLD, deterministic=deterministic)
        x_BLD = x_BLD if pre else attn_norm(x_BLD)

        h_BLD = mlp_norm(x_BLD) if pre else x_BLD
        h_BLD = layers.Mlp(cfg, name="mlp")(h_BLD)
        x_BLD = x_BLD + drop(h_BLD, deterministic=deterministic)
        x_BLD = x_BLD if pre else mlp_norm(x_BLD)
        return nn.with_logical_constraint(x_BLD, _ACT_BLD), None


def attention_mask(batch: Mapping[str, jax.Array], pad_id: int) -> attention.AttentionMask:
    """Never attend to padding; within a packed example only (with ``segment_ids``)."""
    return attention.AttentionMask(key_valid_BM=batch["token_ids"] != pad_id,
                                   segment_ids_BL=batch.get("segment_ids"))


class Encoder(nn.Module):
    """Embeddings → N Transformer blocks (→ final LayerNorm when pre-LN); plus BERT's pooler.

    Parameter names: ``embeddings``, ``layers_0 … layers_{N-1}`` (or ``layers``, stacked, when
    ``scan_layers``), ``final_norm`` (pre-LN only), ``pooler`` (created by ``pool``).
    """

    config: TransformerConfig

    def setup(self):
        cfg = self.config
        self.embeddings = layers.Embeddings(cfg)
        self.setup_layers()
        if cfg.norm_position == "pre":
            self.final_norm = layers.layer_norm(cfg)
        # (embed, mlp): a square kernel needs two distinct logical names.
        self.pooler = layers.dense(cfg, cfg.hidden_size, (axes.EMBED, axes.MLP))

    def __call__(self, batch: Mapping[str, jax.Array], *, deterministic: bool) -> jax.Array:
        """The sequence output.

        Args:
          batch: ``token_ids`` [B, L]; optional ``type_ids`` (default 0), ``positions`` (default
            0..L-1) and ``segment_ids`` (packing: attention stays inside each example), all int.
          deterministic: disables dropout.

        Returns:
          [B, L, D] in the compute dtype.
        """
        cfg = self.config
        token_ids_BL = batch["token_ids"]
        positions_BL = layers.positions_of(token_ids_BL, batch.get("positions"))
        type_ids_BL = batch.get("type_ids")
        if type_ids_BL is None:
            type_ids_BL = jnp.zeros_like(token_ids_BL)
        x_BLD = self.embeddings(token_ids_BL, type_ids_BL, positions_BL,
                                deterministic=deterministic)
        x_BLD = self.run_layers(x_BLD, attention_mask(batch, cfg.pad_id), deterministic)
        if cfg.norm_position == "pre":
            x_BLD = self.final_norm(x_BLD)
        return nn.with_logical_constraint(x_BLD, _ACT_BLD)

    def setup_layers(self) -> None:
        """Creates the N blocks (called by ``setup``; ALBERT overrides it to share one block)."""
        self.layers = stack.make_layers(TransformerBlock, self.config)

    def run_layers(self, x_BLD: jax.Array, mask: attention.AttentionMask, deterministic: bool
                   ) -> jax.Array:
        """The N blocks in turn: [B, L, D] → [B, L, D]."""
        return stack.run_layers(self.layers, self.config, x_BLD, mask, deterministic)[0]

    def pool(self, x_BLD: jax.Array, token_ids_BL: jax.Array | None = None,
             method: str = "pooler") -> jax.Array:
        """``heads.pooled`` with [CLS] as the summary token; ``pooler`` is BERT's pooler,
        tanh(Dense D→D) of [CLS]. [B, L, D] → [B, D]."""
        return heads.pooled(x_BLD, token_ids_BL, method, pad_id=self.config.pad_id,
                            pooler=self.pooler)

    def attend(self, x_BPE: jax.Array) -> jax.Array:
        """The tied output layer: [..., E] → float32 [..., V] scores against the token table."""
        return self.embeddings.attend(x_BPE)
