"""lm.layers.dropout: the keep rate, its scale, and independence of the two halves of a word."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm import layers


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.02])
def test_keep_rate_and_unbiased_scale(rate):
    keep, scale = layers.keep_mask(jax.random.key(0), rate, (1001, 999))  # odd size: a half word
    kept = float(jnp.mean(keep))
    # 1e6 Bernoulli draws: the standard error is < 5e-4.
    assert abs(kept - (1.0 - rate)) < 3e-3
    threshold = round((1.0 - rate) * 65536)
    assert scale == pytest.approx(65536 / threshold, rel=1e-12)
    assert abs(1.0 / scale - (1.0 - rate)) < 1e-5
    x = jnp.ones((1001, 999))
    y = layers.dropout(x, rate, jax.random.key(0))
    np.testing.assert_allclose(np.unique(np.asarray(y)), [0.0, scale], rtol=1e-6)
    assert float(jnp.mean(y)) == pytest.approx(1.0, abs=4e-3)


def test_halves_are_not_correlated():
    """Neighbouring elements come from the two halves of one 32-bit word: their keep decisions
    must be independent (the joint keep rate is the product of the marginals)."""
    keep, _ = layers.keep_mask(jax.random.key(1), 0.5, (1_000_000,))
    pairs = np.asarray(keep).reshape(-1, 2)
    both = np.mean(pairs[:, 0] & pairs[:, 1])
    assert abs(both - 0.25) < 3e-3


def test_masks_differ_by_key_and_module_is_identity_when_deterministic():
    a, _ = layers.keep_mask(jax.random.key(2), 0.1, (64, 64))
    b, _ = layers.keep_mask(jax.random.key(3), 0.1, (64, 64))
    assert not np.array_equal(np.asarray(a), np.asarray(b))
    module = layers.Dropout(0.3)
    x = jnp.arange(12.0).reshape(3, 4)
    assert np.array_equal(module.apply({}, x, deterministic=True), x)
    y = module.apply({}, x, deterministic=False, rngs={"dropout": jax.random.key(0)})
    assert np.any(np.asarray(y) == 0.0)
    assert np.allclose(np.asarray(y)[np.asarray(y) != 0], np.asarray(x)[np.asarray(y) != 0] / 0.7,
                       rtol=1e-4)
