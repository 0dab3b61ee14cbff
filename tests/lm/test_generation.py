"""Decoding: cached greedy equals recomputation, method equivalences, batching, eos, scores."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm import generation
from lm.models import make_model
from tests.lm.test_decoder import GPT, forward, params

EOS = 6
MODEL = make_model("gpt", GPT)


def _prompts():
    rng = np.random.default_rng(11)
    return [list(rng.integers(7, GPT.vocab_size, n)) for n in (5, 2, 8)]


def _greedy(prompts, n=6, eos=EOS):
    return np.asarray(generation.generate(MODEL, params(), generation.left_pad(prompts),
                                          jax.random.key(0), max_new_tokens=n, greedy=True,
                                          eos_id=eos))


def test_greedy_with_cache_equals_argmax_of_full_recomputation():
    prompt = _prompts()[0]
    got = _greedy([prompt])[0]
    seq = list(prompt)
    for _ in range(6):
        logits = forward()(params(), {"token_ids": jnp.asarray([seq])})
        seq.append(int(jnp.argmax(logits[0, -1])))
    np.testing.assert_array_equal(got, seq[len(prompt):])


def test_prompts_of_different_lengths_continue_as_alone():
    prompts = _prompts()
    together = _greedy(prompts)
    for i, p in enumerate(prompts):
        np.testing.assert_array_equal(together[i], _greedy([p])[0])


def test_top_k_1_and_beam_width_1_equal_greedy():
    prompts = _prompts()
    greedy = _greedy(prompts)
    top1 = generation.generate(MODEL, params(), generation.left_pad(prompts), jax.random.key(3),
                               2.0, max_new_tokens=6, top_k=1, eos_id=EOS)
    np.testing.assert_array_equal(top1, greedy)
    beams, _ = generation.beam_search(MODEL, params(), generation.left_pad(prompts), 0.6,
                                      beam_width=1, max_new_tokens=6, eos_id=EOS)
    np.testing.assert_array_equal(beams[:, 0], greedy)


def test_stops_at_eos_then_pads():
    prompt = _prompts()[1]
    greedy = _greedy([prompt], eos=EOS)[0]
    second = int(greedy[1])  # make the 2nd greedy token the eos (it may also be the 1st)
    out = _greedy([prompt], eos=second)[0]
    stop = int(np.argmax(greedy == second))
    np.testing.assert_array_equal(out[:stop + 1], greedy[:stop + 1])
    assert (out[stop + 1:] == 0).all()


def test_sampling_is_seeded_and_stays_in_the_nucleus():
    prompt = generation.left_pad(_prompts()[:1])
    kw = dict(max_new_tokens=1, top_p=0.3, eos_id=EOS)
    draws = {int(generation.generate(MODEL, params(), prompt, jax.random.key(s), **kw)[0, 0])
             for s in range(20)}
    logits = forward()(params(), {"token_ids": jnp.asarray(prompt)})[0, -1]
    allowed = np.flatnonzero(np.isfinite(generation.filter_logits(logits[None], top_p=0.3)[0]))
    assert draws <= set(allowed.tolist())
    same = generation.generate(MODEL, params(), prompt, jax.random.key(1), **kw)
    np.testing.assert_array_equal(same, generation.generate(MODEL, params(), prompt,
                                                            jax.random.key(1), **kw))


def test_filter_logits_by_hand():
    logits = jnp.log(jnp.asarray([[0.5, 0.3, 0.15, 0.05]]))
    assert np.isfinite(generation.filter_logits(logits, top_k=2)).tolist() == [
        [True, True, False, False]]
    assert np.isfinite(generation.filter_logits(logits, top_p=0.7)).tolist() == [
        [True, True, False, False]]
    assert np.isfinite(generation.filter_logits(logits, top_p=0.5)).tolist() == [
        [True, False, False, False]]


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_scores_are_length_normalised_log_probs_best_first(alpha):
    prompt = _prompts()[2]
    beams, scores = generation.beam_search(MODEL, params(), generation.left_pad([prompt]), alpha,
                                           beam_width=3, max_new_tokens=4, eos_id=EOS)
    assert (np.diff(np.asarray(scores[0])) <= 1e-6).all()
    for seq, score in zip(np.asarray(beams[0]), np.asarray(scores[0]), strict=True):
        n = int(np.argmax(seq == EOS)) + 1 if (seq == EOS).any() else len(seq)
        full = jnp.asarray([prompt + list(seq[:n])])
        log_probs = jax.nn.log_softmax(forward()(params(), {"token_ids": full})[0])
        total = sum(float(log_probs[len(prompt) - 1 + i, seq[i]]) for i in range(n))
        norm = ((5 + n) / 6) ** alpha
        assert score == pytest.approx(total / norm, rel=1e-4, abs=1e-4)


@pytest.mark.parametrize("top_p", [0.5, 0.0, -1.0, 1e-9])
def test_top_p_keeps_the_most_likely_token_when_it_alone_holds_more_than_p(top_p):
    logits = jnp.log(jnp.asarray([[0.05, 0.9, 0.05], [0.6, 0.1, 0.3]]))
    kept = np.isfinite(generation.filter_logits(logits, top_p=top_p))
    assert kept.tolist() == [[False, True, False], [True, False, False]]


def test_top_p_keeps_ties_and_never_restores_minus_inf():
    tied = jnp.asarray([[1.0, 0.0, 1.0, -1.0]])  # the two likeliest tie: both stay
    assert np.isfinite(generation.filter_logits(tied, top_p=0.1)).tolist() == [
        [True, False, True, False]]
    masked = jnp.asarray([[-jnp.inf, 2.0, -jnp.inf, 1.0, 0.0]])
    for top_p in (0.0, 0.5, 0.99):
        out = np.asarray(generation.filter_logits(masked, top_p=top_p))
        assert out[0, 1] == 2.0 and np.isneginf(out[0, [0, 2]]).all()
    # top-k's -inf, then a nucleus smaller than the top token: only the top token is left.
    both = generation.filter_logits(jnp.log(jnp.asarray([[0.5, 0.3, 0.2]])), top_k=2, top_p=0.1)
    assert np.isfinite(both).tolist() == [[True, False, False]]
    # Logits that overflowed to +inf make the nucleus' mass NaN: the top token still stays.
    assert np.isfinite(generation.filter_logits(jnp.asarray([[jnp.inf, 0.0, 1.0]]), top_p=0.5)
                       ).tolist() == [[False, False, False]]
    assert generation.filter_logits(jnp.asarray([[jnp.inf, 0.0, 1.0]]), top_p=0.5)[0, 0] == jnp.inf


def test_scale_logits_divides_from_the_maximum_down():
    logits = jnp.asarray([[1.0, 3.0, -2.0]])
    np.testing.assert_allclose(generation.scale_logits(logits, 0.5), [[-4.0, 0.0, -10.0]])
    for temperature in (1e-37, 1e-40, 1e-45, 0.0):  # huge; overflows; subnormal (XLA may
        tiny = np.asarray(generation.scale_logits(logits, temperature))  # flush it to 0); 0
        assert tiny[0, 1] == 0.0 and (tiny[0, [0, 2]] <= -1e37).all()  # no inf - inf = NaN
    assert np.isneginf(generation.scale_logits(logits, 1e-40)[0, [0, 2]]).all()


@pytest.mark.parametrize("kw", [dict(temperature=1e-37), dict(top_p=0.0), dict(top_p=1e-9),
                                dict(temperature=1e-30, top_p=0.5)])
def test_a_vanishing_temperature_or_nucleus_samples_the_greedy_tokens(kw):
    prompts = _prompts()
    kw = {"temperature": 1.0, **kw}
    sampled = generation.generate(MODEL, params(), generation.left_pad(prompts),
                                  jax.random.key(5), kw.pop("temperature"), max_new_tokens=6,
                                  eos_id=EOS, **kw)
    np.testing.assert_array_equal(sampled, _greedy(prompts))
