"""Autoregressive decoding with a KV cache: greedy, sampling (temperature, top-k, top-p) and beam
search with a length penalty.

Prompts of different lengths share one batch left-padded (``left_pad``): padding slots are never
attended and each token's position counts only real tokens, so a prompt's continuation does not
depend on its neighbours. After the prompt is run through the model at once (``prefill``), the
loop appends one token per step to a fixed-shape cache inside ``jax.lax.while_loop``, which
stops when every row has produced ``eos_id`` or after ``max_new_tokens``. Every entry point is
jitted; the model (a flax module with an ``extend`` method, e.g. ``lm.gpt.GptForPretraining``)
and the shape-changing options are static.

Encoder–decoder models (``lm.t5.T5ForPretraining``, which also has ``start``) decode with
``generate_seq2seq`` and ``beam_search_seq2seq``: the source is encoded once and each decoder
layer's cross-attention keys and values computed once into the cache (``start_seq2seq``); every
row's targets begin with the decoder start id at slot 0, so nothing is left-padded. The loops
are the same.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from lm import decoder

_STATIC = ("model", "max_new_tokens", "pad_id", "eos_id")


def left_pad(prompts: list[list[int]], pad_id: int = 0) -> np.ndarray:
    """int32 [B, P]: each prompt right-aligned, padded on the left; P = the longest prompt.

    Raises:
      ValueError: for an empty prompt (there is nothing to condition on).
    """
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token")
    width = max(len(p) for p in prompts)
    out = np.full((len(prompts), width), pad_id, np.int32)
    for i, p in enumerate(prompts):
        out[i, width - len(p):] = p
    return out


def prefill(model, params, prompt_BP: jax.Array, max_new_tokens: int, pad_id: int):
    """Runs the left-padded prompts through the model into a cache of P + max_new_tokens slots.

    Returns:
      ``(logits_BV, cache, lengths_B)``: the next-token logits after each prompt, the cache, and
      the number of real prompt tokens (the position of the first new token).
    """
    b, p = prompt_BP.shape
    is_real_BP = prompt_BP != pad_id
    positions_BP = jnp.maximum(jnp.cumsum(is_real_BP, axis=1) - 1, 0).astype(jnp.int32)
    cache = decoder.init_cache(model.config, b, p + max_new_tokens)
    logits_BPV, cache = model.apply({"params": params}, prompt_BP, positions_BP, is_real_BP,
                                    cache, method="extend")
    return logits_BPV[:, -1], cache, is_real_BP.sum(axis=1).astype(jnp.int32)


def _step(model, params, token_B, position_B, cache):
    logits_B1V, cache = model.apply({"params": params}, token_B[:, None], position_B[:, None],
                                    jnp.ones_like(token_B, bool)[:, None], cache, method="extend")
    return logits_B1V[:, 0], cache


def filter_logits(logits_BV: jax.Array, *, top_k: int = 0, top_p: float = 1.0) -> jax.Array:
    """Logits with everything outside the top ``top_k`` (0 = all) and outside the smallest set
    whose probability reaches ``top_p`` (nucleus; 1.0 = all) set to -inf.

    The most likely token always stays, whatever ``top_p`` (even one below its own
    probability); tokens tied with the last one kept stay too, and -inf logits never come back.
    """
    if top_k:
        kth_B1 = jax.lax.top_k(logits_BV, top_k)[0][:, -1:]
        logits_BV = jnp.where(logits_BV < kth_B1, -jnp.inf, logits_BV)
    if top_p < 1.0:
        sorted_BV = jnp.sort(logits_BV, axis=-1)[:, ::-1]
        probs_BV = jax.nn.softmax(sorted_BV, axis=-1)
        # Keep a token while the mass before it is below top_p. The first is kept explicitly:
        # "0 < top_p" alone would drop it for top_p <= 0, and a NaN mass would drop it too.
        first_V = jnp.arange(sorted_BV.shape[-1]) == 0
        keep_BV = (jnp.cumsum(probs_BV, axis=-1) - probs_BV < top_p) | first_V
        threshold_B1 = jnp.min(jnp.where(keep_BV, sorted_BV, jnp.inf), axis=-1, keepdims=True)
        logits_BV = jnp.where(logits_BV < threshold_B1, -jnp.inf, logits_BV)
    return logits_BV


def scale_logits(logits_BV: jax.Array, temperature) -> jax.Array:
    """``logits / temperature``, computed from the row's maximum down: the most likely tokens
    get 0 and the others negative values (-inf past float32's range, or for a temperature that
    rounds to 0), so a vanishing temperature tends to greedy decoding instead of overflowing to
    inf - inf = NaN."""
    shifted_BV = logits_BV - jnp.max(logits_BV, axis=-1, keepdims=True)
    return jnp.where(shifted_BV == 0, 0.0, shifted_BV / temperature)


_SAMPLING = ("greedy", "top_k", "top_p")


@functools.partial(jax.jit, static_argnames=(*_STATIC, *_SAMPLING))
def generate(model, params, prompt_BP: jax.Array, rng: jax.Array, temperature=1.0, *,
             max_new_tokens: int, greedy: bool = False, top_k: int = 0, top_p: float = 1.0,
             eos_id: int, pad_id: int = 0) -> jax.Array:
    """Greedy decoding or sampling.

    Args:
      model, params: the model (static) and its parameters.
      prompt_BP: int32 [B, P], left-padded (``left_pad``).
      rng: key for sampling (unused when ``greedy``).
      temperature: logits are divided by it before sampling (``scale_logits``); > 0.
      max_new_tokens: T.
      greedy: argmax instead of sampling.
      top_k, top_p: sampling filters (``filter_logits``).
      eos_id: a row stops after emitting it.
      pad_id: the padding id; also what a row emits after it stopped.

    Returns:
      int32 [B, T]: the new tokens, ``pad_id`` after a row's ``eos_id``.
    """
    logits_BV, cache, lengths_B = prefill(model, params, prompt_BP, max_new_tokens, pad_id)
    return _sample(model, params, logits_BV, cache, lengths_B, rng, temperature,
                   max_new_tokens=max_new_tokens, greedy=greedy, top_k=top_k, top_p=top_p,
                   eos_id=eos_id, pad_id=pad_id)


def _sample(model, params, logits_BV, cache, lengths_B, rng, temperature, *, max_new_tokens,
            greedy, top_k, top_p, eos_id, pad_id):
    """The loop of ``generate`` from the first new token's logits and the cache after them."""
    b = logits_BV.shape[0]

    def choose(logits_BV, key):
        if greedy:
            return jnp.argmax(logits_BV, axis=-1).astype(jnp.int32)
        scaled_BV = filter_logits(scale_logits(logits_BV, temperature), top_k=top_k,
                                  top_p=top_p)
        return jax.random.categorical(key, scaled_BV, axis=-1).astype(jnp.int32)

    def body(state):
        t, logits_BV, cache, out_BT, done_B, rng = state
        rng, key = jax.random.split(rng)
        token_B = jnp.where(done_B, pad_id, choose(logits_BV, key))
        out_BT = out_BT.at[:, t].set(token_B)
        logits_BV, cache = _step(model, params, token_B, lengths_B + t, cache)
        return t + 1, logits_BV, cache, out_BT, done_B | (token_B == eos_id), rng

    def cond(state):
        return (state[0] < max_new_tokens) & ~jnp.all(state[4])

    init = (jnp.zeros((), jnp.int32), logits_BV, cache,
            jnp.full((b, max_new_tokens), pad_id, jnp.int32), jnp.zeros(b, bool), rng)
    return jax.lax.while_loop(cond, body, init)[3]


def start_seq2seq(model, params, source_BS: jax.Array, max_new_tokens: int, start_id: int):
    """An encoder–decoder model's ``prefill``: the source encoded once, each decoder layer's
    cross-attention keys and values computed from it into the cache, the decoder start token
    run (``lm.t5.T5ForPretraining.start``).

    Returns:
      ``(logits_BV, cache, positions_B)``: the first target token's logits, the cache (slots
      for the start token and ``max_new_tokens``), and the first new token's position (1).
    """
    logits_B1V, cache = model.apply({"params": params}, source_BS, max_new_tokens + 1, start_id,
                                    method="start")
    return logits_B1V[:, 0], cache, jnp.ones(source_BS.shape[0], jnp.int32)


@functools.partial(jax.jit, static_argnames=(*_STATIC, *_SAMPLING, "start_id"))
def generate_seq2seq(model, params, source_BS: jax.Array, rng: jax.Array, temperature=1.0, *,
                     max_new_tokens: int, greedy: bool = False, top_k: int = 0,
                     top_p: float = 1.0, eos_id: int, pad_id: int = 0, start_id: int = 0
                     ) -> jax.Array:
    """``generate`` for an encoder–decoder model (T5): the targets of each source row.

    Args:
      source_BS: int32 [B, S], the encoder inputs, padded with ``pad_id`` (on either side).
      start_id: the decoder start id (T5: the pad id, 0).
      the others: as ``generate``'s.

    Returns:
      int32 [B, T]: the target tokens after the start token, ``pad_id`` after ``eos_id``.
    """
    logits_BV, cache, positions_B = start_seq2seq(model, params, source_BS, max_new_tokens,
                                                  start_id)
    return _sample(model, params, logits_BV, cache, positions_B, rng, temperature,
                   max_new_tokens=max_new_tokens, greedy=greedy, top_k=top_k, top_p=top_p,
                   eos_id=eos_id, pad_id=pad_id)


def length_norm(length: jax.Array, alpha: float) -> jax.Array:
    """GNMT's length penalty ``((5 + length) / 6) ** alpha``; a score is log-prob / this."""
    return ((5.0 + length.astype(jnp.float32)) / 6.0) ** alpha


# The batch axis of each cache entry (GPT's, and T5's cross-attention ones); ``index`` has none.
_BATCH_AXES = {"key": 1, "value": 1, "is_real": 0, "cross_key": 1, "cross_value": 1,
               "source_valid": 0}
# Entries the beams of one row share, never reordered (beams stay within their row).
_SHARED = ("cross_key", "cross_value", "source_valid")


def _reorder_cache(cache: dict, flat_beam: jax.Array) -> dict:
    """The cache rows of the chosen beams (``flat_beam`` indexes the B·W rows)."""
    return {k: v if k == "index" or k in _SHARED else jnp.take(v, flat_beam, axis=_BATCH_AXES[k])
            for k, v in cache.items()}


def _expand(cache: dict, width: int) -> dict:
    """Every row of the cache repeated ``width`` times (row b → rows b·W … b·W + W - 1)."""
    return {k: v if k == "index" else jnp.repeat(v, width, axis=_BATCH_AXES[k])
            for k, v in cache.items()}


def _beam_candidates(scores_BW, lens_BW, finished_BW, log_probs_BWV, t, pad_id, alpha):
    """Every one-token extension's raw log-prob and length; a finished beam only extends with
    ``pad_id`` at no cost (so it competes with its final score)."""
    v = log_probs_BWV.shape[-1]
    extend_BWV = scores_BW[..., None] + log_probs_BWV
    keep_BWV = scores_BW[..., None] + jnp.where(jnp.arange(v) == pad_id, 0.0, -jnp.inf)
    fin = finished_BW[..., None]
    raw_BWV = jnp.where(fin, keep_BWV, extend_BWV)
    lens_BWV = jnp.broadcast_to(jnp.where(fin, lens_BW[..., None], t + 1), raw_BWV.shape)
    return raw_BWV, lens_BWV, raw_BWV / length_norm(lens_BWV, alpha)


@functools.partial(jax.jit, static_argnames=(*_STATIC, "beam_width"))
def beam_search(model, params, prompt_BP: jax.Array, length_penalty=0.0, *, beam_width: int,
                max_new_tokens: int, eos_id: int, pad_id: int = 0):
    """Beam search; hypotheses are ranked by log-prob / ``length_norm(length, length_penalty)``.

    Returns:
      ``(tokens int32 [B, W, T], scores float32 [B, W])``, best first; tokens are ``pad_id``
      after a hypothesis's ``eos_id``, scores are length-normalised log-probabilities.
    """
    logits_BV, cache, lengths_B = prefill(model, params, prompt_BP, max_new_tokens, pad_id)
    return _beam(model, params, logits_BV, cache, lengths_B, length_penalty,
                 beam_width=beam_width, max_new_tokens=max_new_tokens, eos_id=eos_id,
                 pad_id=pad_id)


@functools.partial(jax.jit, static_argnames=(*_STATIC, "beam_width", "start_id"))
def beam_search_seq2seq(model, params, source_BS: jax.Array, length_penalty=0.0, *,
                        beam_width: int, max_new_tokens: int, eos_id: int, pad_id: int = 0,
                        start_id: int = 0):
    """``beam_search`` for an encoder–decoder model (T5), from ``source_BS`` [B, S] (as
    ``generate_seq2seq``); the cross-attention keys and values are computed once and shared by
    each row's beams. The length penalty is T5's (t5x's ``brevity_penalty``, ``length_norm``);
    transformers divides by ``length ** alpha`` instead.

    Returns:
      ``(tokens int32 [B, W, T], scores float32 [B, W])``, best first.
    """
    logits_BV, cache, positions_B = start_seq2seq(model, params, source_BS, max_new_tokens,
                                                  start_id)
    return _beam(model, params, logits_BV, cache, positions_B, length_penalty,
                 beam_width=beam_width, max_new_tokens=max_new_tokens, eos_id=eos_id,
                 pad_id=pad_id)


def _beam(model, params, logits_BV, cache, lengths_B, length_penalty, *, beam_width,
          max_new_tokens, eos_id, pad_id):
    """The loop of ``beam_search`` from the first new token's logits and the cache."""
    b, w, v = logits_BV.shape[0], beam_width, logits_BV.shape[-1]
    cache, lengths_N = _expand(cache, w), jnp.repeat(lengths_B, w)
    log_probs_BWV = jnp.repeat(jax.nn.log_softmax(logits_BV)[:, None], w, axis=1)

    def body(state):
        t, log_probs_BWV, cache, seqs_BWT, scores_BW, lens_BW, finished_BW = state
        raw, lens, norm = _beam_candidates(scores_BW, lens_BW, finished_BW, log_probs_BWV, t,
                                           pad_id, length_penalty)
        _, flat_BW = jax.lax.top_k(norm.reshape(b, w * v), w)
        beam_BW, token_BW = flat_BW // v, (flat_BW % v).astype(jnp.int32)
        scores_BW = jnp.take_along_axis(raw.reshape(b, w * v), flat_BW, axis=1)
        lens_BW = jnp.take_along_axis(lens.reshape(b, w * v), flat_BW, axis=1)
        finished_BW = jnp.take_along_axis(finished_BW, beam_BW, axis=1) | (token_BW == eos_id)
        seqs_BWT = jnp.take_along_axis(seqs_BWT, beam_BW[..., None], axis=1)
        seqs_BWT = seqs_BWT.at[:, :, t].set(token_BW)
        cache = _reorder_cache(cache, (jnp.arange(b)[:, None] * w + beam_BW).reshape(-1))
        logits_NV, cache = _step(model, params, token_BW.reshape(-1), lengths_N + t, cache)
        log_probs_BWV = jax.nn.log_softmax(logits_NV).reshape(b, w, v)
        return t + 1, log_probs_BWV, cache, seqs_BWT, scores_BW, lens_BW, finished_BW

    def cond(state):
        return (state[0] < max_new_tokens) & ~jnp.all(state[6])

    first_BW = jnp.where(jnp.arange(w) == 0, 0.0, -jnp.inf) * jnp.ones((b, 1))
    init = (jnp.zeros((), jnp.int32), log_probs_BWV, cache,
            jnp.full((b, w, max_new_tokens), pad_id, jnp.int32), first_BW,
            jnp.zeros((b, w), jnp.int32), jnp.zeros((b, w), bool))
    _, _, _, seqs_BWT, scores_BW, lens_BW, _ = jax.lax.while_loop(cond, body, init)
    final_BW = scores_BW / length_norm(lens_BW, length_penalty)
    order_BW = jnp.argsort(-final_BW, axis=1)
    return (jnp.take_along_axis(seqs_BWT, order_BW[..., None], axis=1),
            jnp.take_along_axis(final_BW, order_BW, axis=1))
