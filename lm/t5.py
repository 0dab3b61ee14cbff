"""T5 v1.1: the encoder–decoder family (Raffel et al. 2020; the v1.1 checkpoints' changes).

Why T5 v1.1 rather than BART: T5 has no position table (a learned bias per relative-distance
bucket, shared by the layers of each stack), so nothing caps the input or output length; span
corruption, the objective it was designed with, is its native pretraining input; Hugging Face's
``T5ForConditionalGeneration`` checkpoints convert to it exactly (``lm/interop/t5.py``); and v1.1
normalises as today's decoders do (pre-norm RMSNorm, no biases, gated GELU), where BART keeps
BERT's post-LayerNorm, learned absolute positions (1,024 at most) and biases everywhere.

The architecture, as transformers' ``T5ForConditionalGeneration`` with ``feed_forward_proj=
"gated-gelu"`` and untied embeddings computes it:

  shared token table (encoder and decoder inputs) → dropout
  encoder: N × [x += drop(attn(rms(x)) + relative bias); x += drop(gated_mlp(rms(x)))] → rms → drop
  decoder: N' × [causal self-attention with its own relative bias; cross-attention over the
           encoder output (no position bias); gated MLP], each pre-RMSNorm → rms → drop
  lm_head: an untied [V, D] table, no rescaling (v1.1), float32 logits

Attention scores are not scaled by 1/√K (T5 folds it into the initialisation) and no projection
has a bias. Parameters here are initialised as pretrax initialises every family (truncated normal,
``initializer_range``), not with T5's fan-in scales. ``attention_impl`` applies as
``lm/attention.py`` describes: the relative bias keeps self-attention on ``xla`` (or
``dot_product``); cross-attention may go to cuDNN.

Batch keys (``data/features.py``, ``seq2seq``): ``encoder_input_ids`` [B, S], ``decoder_input_ids``
[B, T] (the targets shifted right, starting with the decoder start id = pad id 0) and, optional
here, ``encoder_segment_ids`` [B, S] / ``decoder_segment_ids`` [B, T] (0 = padding, 1..k = the
k-th packed example; absent: the encoder's come from ``encoder_input_ids != pad_id`` and every
decoder position is real). Decoding (``lm/generation.py``) uses ``start`` and ``extend``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from lm import attention, axes, heads, layers, stack
from lm.config import TransformerConfig

_ACT_BLD = (axes.BATCH, axes.LENGTH, axes.ACT_EMBED)


def relative_position_bucket(relative_LM: jax.Array, *, bidirectional: bool, num_buckets: int,
                             max_distance: int) -> jax.Array:
    """T5's bucket of each relative position ``key - query`` (as transformers computes it).

    Half the buckets are exact distances, the rest logarithmically wider up to
    ``max_distance``; the encoder (bidirectional) spends half of them on each direction, the
    decoder all on the past.

    Args:
      relative_LM: int [L, M], key position minus query position.

    Returns:
      int32 [L, M] in ``[0, num_buckets)``.
    """
    buckets = jnp.zeros_like(relative_LM, jnp.int32)
    if bidirectional:
        num_buckets //= 2
        buckets = (relative_LM > 0).astype(jnp.int32) * num_buckets
        distance = jnp.abs(relative_LM)
    else:
        distance = -jnp.minimum(relative_LM, 0)
    max_exact = num_buckets // 2
    ratio = jnp.log(distance.astype(jnp.float32) / max_exact) / math.log(max_distance / max_exact)
    large = max_exact + (ratio * (num_buckets - max_exact)).astype(jnp.int32)
    large = jnp.minimum(large, num_buckets - 1)
    return buckets + jnp.where(distance < max_exact, distance, large).astype(jnp.int32)


class RelativePositionBias(nn.Module):
    """One stack's relative-position bias: a learned scalar per (bucket, head), parameter
    ``embedding`` [buckets, H] with axes (``pos``, ``heads``)."""

    config: TransformerConfig
    bidirectional: bool

    @nn.compact
    def __call__(self, query_offset, length: int, kv_length: int) -> jax.Array:
        """float32 [1, H, L, M]: the bias of queries at ``query_offset + 0..L-1`` over keys at
        ``0..M-1`` (``query_offset``: an int or int32 [], the first query's cache slot)."""
        cfg = self.config
        table = self.param("embedding", layers.kernel_init(cfg, (axes.POS, axes.HEADS)),
                           (cfg.relative_buckets, cfg.num_heads), layers.PARAM_DTYPE)
        relative_LM = (jnp.arange(kv_length)[None, :] -
                       (query_offset + jnp.arange(length))[:, None])
        bucket_LM = relative_position_bucket(
            relative_LM, bidirectional=self.bidirectional, num_buckets=cfg.relative_buckets,
            max_distance=cfg.relative_max_distance)
        return jnp.take(table, bucket_LM, axis=0).transpose(2, 0, 1)[None]


def _attention(cfg: TransformerConfig, name: str) -> attention.Attention:
    return attention.Attention(cfg, use_bias=False, scale=1.0, name=name)


class EncoderBlock(nn.Module):
    """``x += drop(attn(rms(x))); x += drop(gated_mlp(rms(x)))``."""

    config: TransformerConfig

    @nn.compact
    def __call__(self, x_BLD: jax.Array, mask: attention.AttentionMask, deterministic: bool):
        """One layer; returns ``(x_BLD, None)`` (``lm/stack.py``'s protocol)."""
        cfg = self.config
        drop = layers.Dropout(cfg.dropout_rate)
        x_BLD = nn.with_logical_constraint(x_BLD, _ACT_BLD)
        h_BLD = layers.RmsNorm(cfg, name="attention_norm")(x_BLD)
        h_BLD, _ = _attention(cfg, "attention")(h_BLD, mask, deterministic=deterministic)
        x_BLD = x_BLD + drop(h_BLD, deterministic=deterministic)
        h_BLD = layers.GatedMlp(cfg, name="mlp")(layers.RmsNorm(cfg, name="mlp_norm")(x_BLD),
                                                  deterministic)
        x_BLD = x_BLD + drop(h_BLD, deterministic=deterministic)
        return nn.with_logical_constraint(x_BLD, _ACT_BLD), None


class DecoderBlock(nn.Module):
    """Causal self-attention, cross-attention over the encoder output, gated MLP; each
    ``x += drop(f(rms(x)))``."""

    config: TransformerConfig

    @nn.compact
    def __call__(self, x_BLD: jax.Array, mask: attention.AttentionMask,
                 cross_mask: attention.AttentionMask, deterministic: bool, source_BSD=None,
                 kv=None, cross_kv=None, index=None):
        """One layer (``deterministic`` positional for ``nn.remat``/``nn.scan``).

        Args:
          source_BSD: the encoder output [B, S, D]; None when ``cross_kv`` holds its keys and
            values already (decoding after the first step).
          kv: this layer's self-attention cache (key, value), written at ``index``; or None.
          cross_kv: this layer's cross-attention keys and values, or None.

        Returns:
          ``(x_BLD, (kv, cross_kv))``: the carry, the updated cache and the cross-attention's
          keys and values (computed from ``source_BSD``, or ``cross_kv`` as given).
        """
        cfg = self.config
        drop = layers.Dropout(cfg.dropout_rate)
        x_BLD = nn.with_logical_constraint(x_BLD, _ACT_BLD)
        h_BLD = layers.RmsNorm(cfg, name="attention_norm")(x_BLD)
        h_BLD, kv = _attention(cfg, "attention")(h_BLD, mask, deterministic=deterministic, kv=kv,
                                                 index=index)
        x_BLD = x_BLD + drop(h_BLD, deterministic=deterministic)
        h_BLD = layers.RmsNorm(cfg, name="cross_attention_norm")(x_BLD)
        h_BLD, cross_kv = _attention(cfg, "cross_attention")(
            h_BLD, cross_mask, deterministic=deterministic, source_BMD=source_BSD, kv=cross_kv)
        x_BLD = x_BLD + drop(h_BLD, deterministic=deterministic)
        h_BLD = layers.GatedMlp(cfg, name="mlp")(layers.RmsNorm(cfg, name="mlp_norm")(x_BLD),
                                                  deterministic)
        x_BLD = x_BLD + drop(h_BLD, deterministic=deterministic)
        return nn.with_logical_constraint(x_BLD, _ACT_BLD), (kv, cross_kv)


# After the carry: self mask, cross mask, deterministic, source (shared by every layer); the
# cache and cross keys/values (each layer its slice); the slot index (shared).
_DECODER_IN_AXES = (nn.broadcast,) * 4 + (0, 0, nn.broadcast)


class Stack(nn.Module):
    """One side of T5: its relative position bias, N blocks, final RMSNorm, dropout.

    Parameter names: ``relative_bias``, ``layers_0 … layers_{N-1}`` (or ``layers``, stacked,
    when ``scan_layers``), ``final_norm``.
    """

    config: TransformerConfig
    decoder: bool

    def setup(self):
        cfg = self.config
        self.relative_bias = RelativePositionBias(cfg, bidirectional=not self.decoder)
        if self.decoder:
            self.layers = stack.make_layers(DecoderBlock, cfg, in_axes=_DECODER_IN_AXES,
                                            deterministic_argnum=4)
        else:
            self.layers = stack.make_layers(EncoderBlock, cfg)
        self.final_norm = layers.RmsNorm(cfg)
        self.dropout = layers.Dropout(cfg.dropout_rate)

    def __call__(self, x_BLD: jax.Array, mask: attention.AttentionMask, *, deterministic: bool,
                 cross_mask=None, source_BSD=None, kv=None, cross_kv=None, index=None):
        """Embedded inputs [B, L, D] → ``(outputs [B, L, D], per-layer keys and values)``.

        ``mask`` gets this stack's relative bias (queries from ``index``, 0 without a cache);
        the decoder's other arguments are ``DecoderBlock``'s, stacked on a leading N axis.
        """
        length = x_BLD.shape[1]
        kv_length = length if kv is None else kv[0].shape[2]
        offset = 0 if index is None else index
        mask = mask.replace(position_bias=self.relative_bias(offset, length, kv_length))
        x_BLD = self.dropout(x_BLD, deterministic=deterministic)
        if self.decoder:
            x_BLD, kvs = stack.run_layers(self.layers, self.config, x_BLD, mask, cross_mask,
                                          deterministic, source_BSD, kv, cross_kv, index,
                                          in_axes=_DECODER_IN_AXES)
        else:
            x_BLD, kvs = stack.run_layers(self.layers, self.config, x_BLD, mask, deterministic)
        x_BLD = self.dropout(self.final_norm(x_BLD), deterministic=deterministic)
        return nn.with_logical_constraint(x_BLD, _ACT_BLD), kvs


def _segments(batch: Mapping[str, jax.Array], pad_id: int):
    """(encoder segment ids [B, S], decoder segment ids [B, T] or None), defaults filled in."""
    source_BS = batch["encoder_input_ids"]
    enc_BS = batch.get("encoder_segment_ids")
    if enc_BS is None:
        enc_BS = (source_BS != pad_id).astype(jnp.int32)
    return enc_BS, batch.get("decoder_segment_ids")


def cross_mask(enc_BS: jax.Array, dec_BT: jax.Array | None) -> attention.AttentionMask:
    """Decoder tokens see the encoder tokens of their own example (none of its padding)."""
    if dec_BT is None:
        return attention.AttentionMask(key_valid_BM=enc_BS != 0)
    return attention.AttentionMask(segment_ids_BL=dec_BT, key_segment_ids_BM=enc_BS)


def _encode(model: nn.Module, source_ids_BS: jax.Array, segment_ids_BS: jax.Array | None,
            deterministic: bool) -> jax.Array:
    """``model.shared`` → ``model.encoder`` (a T5 model's body): the encoder output [B, S, D]."""
    if segment_ids_BS is None:
        segment_ids_BS = (source_ids_BS != model.config.pad_id).astype(jnp.int32)
    mask = attention.AttentionMask(segment_ids_BL=segment_ids_BS)
    return model.encoder(model.shared(source_ids_BS), mask, deterministic=deterministic)[0]


class T5ForPretraining(nn.Module):
    """T5 v1.1: shared token table, encoder, decoder, untied LM head.

    Parameter tree: ``shared/embedding`` [V, D], ``encoder``, ``decoder`` (``Stack``s; the
    decoder with ``config.decoder_layers`` layers), ``lm_head/embedding`` [V, D].
    """

    config: TransformerConfig

    def setup(self):
        cfg = self.config
        self.shared = layers.Embed(cfg.vocab_size, cfg.hidden_size, (axes.VOCAB, axes.EMBED), cfg)
        self.encoder = Stack(cfg, decoder=False)
        self.decoder = Stack(cfg.replace(num_layers=cfg.decoder_layers), decoder=True)
        self.lm_head = layers.Embed(cfg.vocab_size, cfg.hidden_size, (axes.VOCAB, axes.EMBED),
                                    cfg)

    def __call__(self, batch: Mapping[str, jax.Array], *, deterministic: bool = True
                 ) -> dict[str, jax.Array]:
        """Teacher-forced logits of every target position.

        Args:
          batch: see the module docstring (``encoder_input_ids``, ``decoder_input_ids``, …).
          deterministic: disables dropout.

        Returns:
          ``{"logits": float32 [B, T, V]}``.
        """
        enc_BS, dec_BT = _segments(batch, self.config.pad_id)
        source_BSD = self.encode(batch["encoder_input_ids"], enc_BS, deterministic=deterministic)
        mask = attention.AttentionMask(segment_ids_BL=dec_BT, causal=True)
        x_BTD, _ = self.decoder(self.shared(batch["decoder_input_ids"]), mask,
                                deterministic=deterministic, cross_mask=cross_mask(enc_BS, dec_BT),
                                source_BSD=source_BSD)
        return {"logits": self._logits(x_BTD)}

    def encode(self, source_ids_BS: jax.Array, segment_ids_BS: jax.Array | None = None, *,
               deterministic: bool = True) -> jax.Array:
        """The encoder output [B, S, D]; ``segment_ids_BS`` default: ``source != pad_id``."""
        return _encode(self, source_ids_BS, segment_ids_BS, deterministic)

    def start(self, source_ids_BS: jax.Array, max_length: int, start_id: int = 0
              ) -> tuple[jax.Array, dict]:
        """Decoding's first step: encodes the source once, computes every decoder layer's
        cross-attention keys and values from it, and runs the decoder start token.

        Args:
          source_ids_BS: int [B, S], padded with ``pad_id`` (anywhere).
          max_length: M, the cache's slots: the start token and the tokens to be generated.
          start_id: the decoder start id (T5: the pad id, 0).

        Returns:
          ``(logits float32 [B, 1, V], cache)``: the first target token's logits and the cache:
          ``key``/``value`` [N', B, M, H, K], ``is_real`` bool [B, M], ``index`` int32 [],
          ``cross_key``/``cross_value`` [N', B, S, H, K], ``source_valid`` bool [B, S].
        """
        cfg = self.config
        b = source_ids_BS.shape[0]
        source_valid_BS = source_ids_BS != cfg.pad_id
        source_BSD = self.encode(source_ids_BS)
        shape = (cfg.decoder_layers, b, max_length, cfg.num_heads, cfg.kv_dim)
        zeros = jnp.zeros(shape, layers.compute_dtype(cfg))
        cache = {"key": zeros, "value": zeros, "is_real": jnp.zeros((b, max_length), bool),
                 "index": jnp.zeros((), jnp.int32), "source_valid": source_valid_BS}
        token_B1 = jnp.full((b, 1), start_id, jnp.int32)
        return self._step(token_B1, cache, source_BSD)

    def extend(self, token_ids_BL: jax.Array, positions_BL: jax.Array, is_real_BL: jax.Array,
               cache: dict) -> tuple[jax.Array, dict]:
        """Appends L decoder tokens to ``cache`` (from ``start``), without dropout.

        ``positions_BL`` and ``is_real_BL`` are ``lm.generation``'s common interface: T5's
        positions are the cache slots (relative), and every decoder token is real.

        Returns:
          ``(logits float32 [B, L, V], cache)``.
        """
        del positions_BL, is_real_BL
        return self._step(token_ids_BL, cache, None)

    def _step(self, token_ids_BL, cache, source_BSD):
        index, length = cache["index"], token_ids_BL.shape[1]
        is_real_BM = jax.lax.dynamic_update_slice(
            cache["is_real"], jnp.ones(token_ids_BL.shape, bool), (0, index))
        mask = attention.AttentionMask(key_valid_BM=is_real_BM, causal=True, query_offset=index)
        cross = (None if source_BSD is not None else (cache["cross_key"], cache["cross_value"]))
        x_BLD, ((k, v), (ck, cv)) = self.decoder(
            self.shared(token_ids_BL), mask, deterministic=True,
            cross_mask=cross_mask(cache["source_valid"].astype(jnp.int32), None),
            source_BSD=source_BSD, kv=(cache["key"], cache["value"]), cross_kv=cross,
            index=index)
        new = dict(cache, key=k, value=v, is_real=is_real_BM, index=index + length,
                   cross_key=ck, cross_value=cv)
        return self._logits(x_BLD), new

    def _logits(self, x_BLD: jax.Array) -> jax.Array:
        """The untied LM head: [B, L, D] → float32 [B, L, V] (v1.1: no 1/√D rescaling)."""
        return nn.with_logical_constraint(self.lm_head.attend(x_BLD),
                                          (axes.BATCH, axes.LENGTH, axes.ACT_VOCAB))


class T5ForClassification(nn.Module):
    """T5's encoder with a sentence-level head, for classification (C scores) or regression
    (C = 1): probes and classification fine-tuning of a T5 run (its decoder is not used).

    Parameter tree: ``shared`` and ``encoder`` (the pretraining checkpoint's groups of the same
    names: ``lm.models.body_groups("t5")``) and ``classifier_head`` (always new). The encoder's
    outputs are pooled by ``heads.pooled``: ``mean`` over the real tokens (Sentence-T5's
    encoder-mean; also what ``pooler``, the fine-tuning configs' default, means here: T5 has
    no pooler), ``cls`` the first token's state.
    """

    config: TransformerConfig
    num_outputs: int
    pooling: str = "mean"

    def setup(self):
        cfg = self.config
        self.shared = layers.Embed(cfg.vocab_size, cfg.hidden_size, (axes.VOCAB, axes.EMBED), cfg)
        self.encoder = Stack(cfg, decoder=False)
        self.classifier_head = heads.ClassifierHead(cfg, self.num_outputs)

    def __call__(self, batch: Mapping[str, jax.Array], *, deterministic: bool = True
                 ) -> dict[str, jax.Array]:
        """``{"logits": float32 [B, C]}`` from ``token_ids`` [B, L] (``type_ids`` unused)."""
        ids_BL = batch["token_ids"]
        x_BLD = _encode(self, ids_BL, None, deterministic)
        method = "mean" if self.pooling == "pooler" else self.pooling
        pooled_BD = heads.pooled(x_BLD, ids_BL, method, pad_id=self.config.pad_id)
        return {"logits": self.classifier_head(pooled_BD, deterministic=deterministic)}
