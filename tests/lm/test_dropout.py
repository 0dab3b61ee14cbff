"""lm.layers.dropout: the keep rate, its scale, the independence of its hashed uniforms (between
neighbours, across keys, under shifts) and their independence of sharding."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm import layers


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.02])
def test_keep_rate_and_unbiased_scale(rate):
    keep, scale = layers.keep_mask(jax.random.key(0), rate, (1001, 999))
    kept = float(jnp.mean(keep))
    # 1e6 Bernoulli draws: the standard error is < 5e-4.
    assert abs(kept - (1.0 - rate)) < 3e-3
    threshold = round((1.0 - rate) * 2 ** 32)
    assert scale == pytest.approx(2 ** 32 / threshold, rel=1e-12)
    assert abs(1.0 / scale - (1.0 - rate)) < 1e-9
    x = jnp.ones((1001, 999))
    y = layers.dropout(x, rate, jax.random.key(0))
    np.testing.assert_allclose(np.unique(np.asarray(y)), [0.0, scale], rtol=1e-6)
    assert float(jnp.mean(y)) == pytest.approx(1.0, abs=4e-3)


def test_neighbours_keys_and_shifts_are_independent():
    """The joint keep rate of two decisions is the product of the marginals: for neighbours in
    a row and a column, for one position under two keys, and for one key's mask against itself
    shifted (the seeds must not just offset one stream)."""
    shape = (1000, 1000)
    a = np.asarray(layers.keep_mask(jax.random.key(1), 0.5, shape)[0])
    b = np.asarray(layers.keep_mask(jax.random.key(2), 0.5, shape)[0])
    pairs = {"row neighbours": (a[:, :-1], a[:, 1:]), "column neighbours": (a[:-1], a[1:]),
             "two keys": (a, b)}
    for shift in (1, 7, 1000, 4096):
        pairs[f"key b shifted by {shift}"] = (a.reshape(-1)[:-shift], b.reshape(-1)[shift:])
    for name, (x, y) in pairs.items():
        # ~1e6 pairs: the standard error of the joint rate is < 5e-4.
        assert abs(np.mean(x & y) - 0.25) < 3e-3, name
    # Each of the 16 high bits of the uniform is fair (the threshold compares all 32).
    low = np.asarray(layers.keep_mask(jax.random.key(3), 1 - 2 ** -4, (1 << 20,))[0])
    assert abs(np.mean(low) - 2 ** -4) < 2e-3


def test_mask_is_the_same_however_the_array_is_sharded():
    devices = np.asarray(jax.devices())
    if devices.size < 2:
        pytest.skip("needs several devices (the suite forces 8 CPU devices)")
    mesh = jax.sharding.Mesh(devices.reshape(-1, 1), ("data", "model"))
    spec = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data", "model"))
    shape = (8 * devices.size, 24)
    fn = jax.jit(lambda key: layers.keep_mask(key, 0.3, shape)[0], out_shardings=spec)
    sharded = fn(jax.random.key(5))
    assert len(sharded.sharding.device_set) == devices.size
    np.testing.assert_array_equal(np.asarray(sharded),
                                  np.asarray(layers.keep_mask(jax.random.key(5), 0.3, shape)[0]))


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
