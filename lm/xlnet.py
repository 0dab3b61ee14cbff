"""XLNet (Yang et al., 2019): two-stream self-attention with Transformer-XL relative encoding.

Two streams run through every layer with the same weights:

* the content stream ``h`` starts from the token embeddings; position i attends to the tokens not
  later than i in the factorisation order, itself included (``can_attend``);
* the query stream ``g`` starts from one learned vector (``mask_emb``) at each of the P predicted
  positions; it attends to the content of the tokens strictly earlier in the order, never its own
  token, so it can predict that token. Its queries are placed at their positions with
  ``plm_target_mapping`` [B, P, L] and mapped back after attention, as XLNet does.

Without ``plm_target_mapping`` only the content stream runs (fine-tuning); without
``can_attend`` every position sees every real token. Positions enter only as distances
(``relative_attention``), so left padding or a memory of earlier segments (``mems``) shifts no
output.

Fine-tuning (``XLNetForClassification``, ``XLNetForSpanQa``) runs the content stream only (no
permutation, every real token visible) and keeps the body under ``encoder``, the subtree
``XLNetForPretraining`` saves, so fine-tuning restores it.
"""

from __future__ import annotations

from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from lm import axes, heads, layers, stack
from lm import relative_attention as rel
from lm.config import TransformerConfig

_ACT_BLD = (axes.BATCH, axes.LENGTH, axes.ACT_EMBED)


class XLNetLayer(nn.Module):
    """Relative attention then the feed-forward block (post-LN), applied to both streams."""

    config: TransformerConfig

    def setup(self):
        cfg = self.config
        self.attention = rel.RelativeAttention(cfg)
        self.mlp = layers.Mlp(cfg)
        self.mlp_norm = layers.layer_norm(cfg)
        self.dropout = layers.Dropout(cfg.dropout_rate)

    def _feed_forward(self, x, deterministic: bool):
        y = self.dropout(self.mlp(x), deterministic=deterministic)
        return self.mlp_norm(x + y)

    def __call__(self, streams, mem_BMD, pos_RD, differs_BLM, content_bias, query_bias,
                 target_mapping_BPL, deterministic: bool):
        """One layer of both streams (a ``lm.stack`` block: carry, then per-layer arguments).

        Args:
          streams: ``(h_BLD, g_BPD)``: the content stream [B, L, D] and the query stream
            [B, P, D] (None: the content stream only).
          mem_BMD: memory [B, M - L, D] prepended to the keys, or None.
          pos_RD: sinusoids of the R = M + L distances (``rel.relative_distances``).
          differs_BLM: bool, query and key in different segments.
          content_bias, query_bias: float32 [B, 1, L, M] mask biases of the two streams.
          target_mapping_BPL: float [B, P, L] one-hot predicted positions (with ``g_BPD``).
          deterministic: disables dropout (positional so ``nn.remat`` can make it static).

        Returns:
          ``((h_BLD, g_BPD), None)``; ``g_BPD`` is None when it came in None.
        """
        h_BLD, g_BPD = streams
        attn = self.attention
        context_BMD = h_BLD if mem_BMD is None else jnp.concatenate(
            [mem_BMD.astype(h_BLD.dtype), h_BLD], axis=1)
        keys = attn.keys(context_BMD, pos_RD)
        a_BLHK = attn.attend(attn.queries(h_BLD), keys, differs_BLM, content_bias,
                             deterministic=deterministic)
        h_out = self._feed_forward(attn.post(h_BLD, a_BLHK, deterministic=deterministic),
                                   deterministic)
        if g_BPD is None:
            return (nn.with_logical_constraint(h_out, _ACT_BLD), None), None
        tm_BPL = target_mapping_BPL.astype(g_BPD.dtype)
        q_BLHK = jnp.einsum("BPHK,BPL->BLHK", attn.queries(g_BPD), tm_BPL)
        a_BLHK = attn.attend(q_BLHK, keys, differs_BLM, query_bias, deterministic=deterministic)
        a_BPHK = jnp.einsum("BLHK,BPL->BPHK", a_BLHK, tm_BPL)
        g_out = self._feed_forward(attn.post(g_BPD, a_BPHK, deterministic=deterministic),
                                   deterministic)
        return (nn.with_logical_constraint(h_out, _ACT_BLD), g_out), None


# Per argument after the streams: each layer its own memory; the rest shared by every layer.
_IN_AXES = (0,) + (nn.broadcast,) * 6
_DETERMINISTIC_ARGNUM = 8  # counts self: (self, streams, mem, …, deterministic)


class XLNetEncoder(nn.Module):
    """Token embedding, ``mask_emb`` and N ``XLNetLayer``s; the body fine-tuning restores.

    Parameter names: ``word_embedding``, ``mask_emb`` [D], ``layers_0 … layers_{N-1}``.
    """

    config: TransformerConfig

    def setup(self):
        cfg = self.config
        if cfg.scan_layers:
            raise ValueError("XLNet does not support scan_layers yet; set model.scan_layers=False")
        self.word_embedding = layers.Embed(cfg.vocab_size, cfg.hidden_size,
                                           (axes.VOCAB, axes.EMBED), cfg)
        self.mask_emb = self.param("mask_emb", layers.kernel_init(cfg, (axes.EMBED,)),
                                   (cfg.hidden_size,), layers.PARAM_DTYPE)
        self.layers = stack.make_layers(XLNetLayer, cfg, in_axes=_IN_AXES,
                                        deterministic_argnum=_DETERMINISTIC_ARGNUM)
        self.dropout = layers.Dropout(cfg.dropout_rate)

    def __call__(self, batch: Mapping[str, jax.Array], *, deterministic: bool,
                 mems: jax.Array | None = None) -> dict[str, jax.Array]:
        """Both streams.

        Args:
          batch: ``token_ids`` [B, L]; optional ``type_ids`` [B, L] (only "same segment or not"
            matters; XLNet gives [CLS] its own type 2), ``can_attend`` bool [B, L, L] (content
            stream; default: all), ``plm_target_mapping`` [B, P, L] (runs the query stream).
          deterministic: disables dropout.
          mems: [N, B, Lm, D] states of an earlier segment (each layer's input), always
            visible, or None.

        Returns:
          ``content`` [B, L, D]; ``query`` [B, P, D] with a target mapping; ``new_mems``
          [N, B, L, D], the inputs of the layers (keep the last Lm for the next segment).
        """
        cfg = self.config
        token_ids_BL = batch["token_ids"]
        b, length = token_ids_BL.shape
        mem_len = 0 if mems is None else mems.shape[2]
        type_ids_BL = batch.get("type_ids", jnp.zeros_like(token_ids_BL))
        can_attend_BLL = batch.get("can_attend", jnp.ones((b, length, length), bool))
        content_m, query_m = rel.stream_masks(can_attend_BLL, token_ids_BL != cfg.pad_id, mem_len)
        pos_RD = rel.sinusoid_table(rel.relative_distances(length, mem_len + length),
                                    cfg.hidden_size).astype(layers.compute_dtype(cfg))
        pos_RD = self.dropout(pos_RD, deterministic=deterministic)
        differs_BLM = rel.segment_differs(type_ids_BL, mem_len)
        h_BLD = self.dropout(self.word_embedding(token_ids_BL), deterministic=deterministic)
        tm_BPL, g_BPD = batch.get("plm_target_mapping"), None
        if tm_BPL is not None:
            g_BPD = jnp.broadcast_to(self.mask_emb.astype(h_BLD.dtype),
                                     (b, tm_BPL.shape[1], cfg.hidden_size))
            g_BPD = self.dropout(g_BPD, deterministic=deterministic)
        # Each layer's input is the memory it keeps for the next segment.
        (h_BLD, g_BPD), (new_mems, _) = stack.run_layers(
            self.layers, cfg, (h_BLD, g_BPD), mems, pos_RD, differs_BLM,
            rel.mask_bias(content_m), rel.mask_bias(query_m), tm_BPL, deterministic,
            in_axes=_IN_AXES, keep_inputs=True)
        out = {"content": self.dropout(h_BLD, deterministic=deterministic),
               "new_mems": new_mems}
        if g_BPD is not None:
            out["query"] = self.dropout(g_BPD, deterministic=deterministic)
        return out

    def attend(self, x_BPD: jax.Array) -> jax.Array:
        """The tied output layer: [..., D] → float32 [..., V]."""
        return self.word_embedding.attend(x_BPD)


class XLNetForPretraining(nn.Module):
    """XLNet + the tied permutation-LM output layer on the query stream.

    Parameter tree: ``encoder`` (``XLNetEncoder``), ``lm_head/bias`` [V].
    """

    config: TransformerConfig

    @nn.compact
    def __call__(self, batch: Mapping[str, jax.Array], *, deterministic: bool = True,
                 mems: jax.Array | None = None) -> dict[str, jax.Array]:
        """Pretraining outputs.

        Args:
          batch: the ``plm`` schema of ``data/features.py``: ``token_ids``, ``type_ids``,
            ``can_attend``, ``plm_target_mapping`` (and targets the objective reads).
          deterministic: disables dropout.
          mems: optional memory, see ``XLNetEncoder``.

        Returns:
          ``plm_logits`` float32 [B, P, V]; ``content_states`` [B, L, D], ``query_states``
          [B, P, D]; ``new_mems`` [N, B, L, D].
        """
        encoder = XLNetEncoder(self.config, name="encoder")
        out = encoder(batch, deterministic=deterministic, mems=mems)
        bias_V = LmBias(self.config, name="lm_head")()
        logits_BPV = encoder.attend(out["query"]) + bias_V
        logits_BPV = nn.with_logical_constraint(logits_BPV,
                                                (axes.BATCH, axes.LENGTH, axes.ACT_VOCAB))
        return {"plm_logits": logits_BPV, "content_states": out["content"],
                "query_states": out["query"], "new_mems": out["new_mems"]}


class LmBias(nn.Module):
    """The output layer's per-token bias [V] (the kernel is the tied token table)."""

    config: TransformerConfig

    @nn.compact
    def __call__(self) -> jax.Array:
        return self.param("bias", layers.zeros_init((axes.VOCAB,)), (self.config.vocab_size,),
                          layers.PARAM_DTYPE)


def _task_inputs(batch: Mapping[str, jax.Array]) -> dict[str, jax.Array]:
    """The inputs the content stream reads: ``token_ids`` and, when present, ``type_ids``."""
    return {k: batch[k] for k in ("token_ids", "type_ids") if k in batch}


class XLNetForClassification(nn.Module):
    """XLNet + sequence summary + linear head: classification (C classes) or regression (C = 1).

    Attributes:
      config: the architecture.
      num_outputs: C.
      pooling: ``pooler`` (XLNet's summary: tanh(Dense) of the last real token), ``cls`` (that
        token's raw state) or ``mean`` (the average over real tokens); see ``heads.pooled``.
    """

    config: TransformerConfig
    num_outputs: int
    pooling: str = "pooler"

    @nn.compact
    def __call__(self, batch: Mapping[str, jax.Array], *, deterministic: bool = True
                 ) -> dict[str, jax.Array]:
        """``{"logits": float32 [B, C]}`` from ``token_ids``, ``type_ids`` [B, L]."""
        cfg = self.config
        x_BLD = XLNetEncoder(cfg, name="encoder")(_task_inputs(batch),
                                                  deterministic=deterministic)["content"]
        # Created (and so saved) only when the pooling calls it.
        summary = layers.dense(cfg, cfg.hidden_size, (axes.EMBED, axes.MLP), name="summary")
        pooled_BD = heads.pooled(x_BLD, batch["token_ids"], self.pooling, pad_id=cfg.pad_id,
                                 summary="last", pooler=summary)
        logits_BC = heads.ClassifierHead(cfg, self.num_outputs, name="classifier_head")(
            pooled_BD, deterministic=deterministic)
        return {"logits": logits_BC}


class XLNetForSpanQa(nn.Module):
    """XLNet + start/end scores per position (extractive QA; the data's no-answer position,
    0, stays the "no answer" slot)."""

    config: TransformerConfig

    @nn.compact
    def __call__(self, batch: Mapping[str, jax.Array], *, deterministic: bool = True
                 ) -> dict[str, jax.Array]:
        """``{"start_logits", "end_logits"}``, float32 [B, L], padding positions at -1e9."""
        x_BLD = XLNetEncoder(self.config, name="encoder")(
            _task_inputs(batch), deterministic=deterministic)["content"]
        start_BL, end_BL = heads.SpanHead(self.config, name="span_head")(x_BLD)
        return heads.span_outputs(start_BL, end_BL, batch["token_ids"], self.config.pad_id)
