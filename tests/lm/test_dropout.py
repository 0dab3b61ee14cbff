"""lm.layers.dropout: the keep rate, its scale, the independence of its hashed uniforms (between
neighbours, across keys, under shifts), their independence of sharding, and masks of more than
2^32 elements (split positions) beside unchanged masks of fewer."""

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


# keep_mask as recorded before masks of more than 2^32 elements were allowed: (key, rate, shape)
# → the mask's bits (numpy.packbits of the flattened mask, hex). Masks that fit 2^32 positions
# must not change (the golden runs' figures depend on them).
RECORDED = {
    (0, 0.3, (3, 5, 7)): "7cbfc6fd7fef75fff7ef5f5ff680",
    (11, 0.1, (2, 4, 8, 8)): ("fffffff7f7ffffffffffff7fdfffe6ffcfffff7ffefe7feffafcbfffffff7d"
                              "ffffbf5fdffeeffdb7f5ef779fe7fffff7fdfdffbbffefbffffffdffefff7fffff"),
    (5, 0.5, (40,)): "669602dd42",
}


@pytest.mark.parametrize("seed,rate,shape", sorted(RECORDED))
def test_masks_within_2_32_elements_are_unchanged(seed, rate, shape):
    keep, _ = layers.keep_mask(jax.random.key(seed), rate, shape)
    bits = np.packbits(np.asarray(keep).reshape(-1)).tobytes().hex()
    assert bits == RECORDED[seed, rate, shape]


def test_gpt2_small_attention_dropout_traces_past_2_32_elements():
    """512 × 12 × 1,024² ≈ 6.4e9 probabilities: traced (never materialised)."""
    shape = (512, 12, 1024, 1024)
    probs = jax.ShapeDtypeStruct(shape, jnp.bfloat16)
    out = jax.eval_shape(lambda x, key: layers.dropout(x, 0.1, key), probs, jax.random.key(0))
    assert out.shape == shape and out.dtype == jnp.bfloat16
    with pytest.raises(ValueError, match="reshape it"):
        layers.keep_mask(jax.random.key(0), 0.1, (2 ** 33,))


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_split_masks_keep_the_rate_and_slices_are_independent(rate):
    """A limit of 2^12 positions forces the split path on 1e6 elements: [256, 4, 1000] splits
    into 256 leading slices of 4,000 positions each, each hashed with its own word."""
    shape, limit = (256, 4, 1000), 2 ** 12
    keep = np.asarray(layers.keep_mask(jax.random.key(9), rate, shape, _limit=limit)[0])
    unsplit = np.asarray(layers.keep_mask(jax.random.key(9), rate, shape)[0])
    assert not np.array_equal(keep, unsplit)  # the split path ran
    # ~1e6 Bernoulli draws: the standard error is < 5e-4.
    assert abs(np.mean(keep) - (1.0 - rate)) < 3e-3
    # Neighbouring slices, and slices far apart, are independent at the same positions; so are
    # neighbours within a slice.
    pairs = {"next slice": (keep[:-1], keep[1:]), "slice 128 on": (keep[:128], keep[128:]),
             "row neighbours": (keep[..., :-1], keep[..., 1:])}
    for name, (x, y) in pairs.items():
        assert abs(np.mean(x & y) - (1.0 - rate) ** 2) < 4e-3, name
    # The split happens at the longest suffix of dims that fits: here [4, 1000].
    three = np.asarray(layers.keep_mask(jax.random.key(9), rate, (256, 4, 1000),
                                        _limit=4000)[0])
    np.testing.assert_array_equal(three, keep)
