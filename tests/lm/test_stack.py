"""lm.stack: the unrolled loop and nn.scan compute the same function, sliced and shared alike."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lm import stack
from tests.lm.conftest import TINY, jit

N, D = 3, 4
# (per-layer offset: axis 0, scale: shared, deterministic: shared)
IN_AXES = (0, nn.broadcast, nn.broadcast)


class Toy(nn.Module):
    """A block with a parameter, a per-layer input and a per-layer output."""

    config: object

    @nn.compact
    def __call__(self, x_BD, offset_D, scale, deterministic):
        w_D = self.param("w", nn.initializers.normal(1.0), (D,))
        if not deterministic:
            x_BD = x_BD * 2.0
        x_BD = jnp.tanh(x_BD * w_D * scale + offset_D)
        return x_BD, x_BD.sum(axis=-1)


class Holder(nn.Module):
    config: object
    shared: bool = False

    def setup(self):
        self.layers = stack.make_layers(Toy, self.config, in_axes=IN_AXES, shared=self.shared,
                                        deterministic_argnum=4)

    def __call__(self, x_BD, offset_ND, deterministic=True):
        return stack.run_layers(self.layers, self.config, x_BD, offset_ND, jnp.float32(0.5),
                                deterministic, in_axes=IN_AXES)


def _run(config, shared, params=None):
    model = Holder(config, shared)
    x_BD = jnp.asarray(np.random.default_rng(0).normal(size=(2, D)), jnp.float32)
    offset_ND = jnp.arange(N * D, dtype=jnp.float32).reshape(N, D) / 10
    if params is None:
        params = jit(model.init)(jax.random.key(0), x_BD, offset_ND)["params"]
    params = nn.unbox(params)
    fn = jit(lambda p: model.apply({"params": p}, x_BD, offset_ND, deterministic=False))
    return params, fn(params)


@pytest.mark.parametrize("remat", ["none", "full"])
def test_scan_matches_the_loop_and_stacks_per_layer_outputs(remat):
    config = TINY.replace(num_layers=N, remat=remat)
    loop_params, (loop_x, loop_outs) = _run(config, shared=False)
    assert sorted(loop_params) == [f"layers_{i}" for i in range(N)]
    moved = {"layers": jax.tree.map(lambda *xs: jnp.stack(xs),
                                    *[loop_params[f"layers_{i}"] for i in range(N)])}
    scan_config = config.replace(scan_layers=True)
    scan_params, _ = _run(scan_config, shared=False)
    assert jax.tree.map(jnp.shape, scan_params) == {"layers": {"w": (N, D)}}
    _, (scan_x, scan_outs) = _run(scan_config, shared=False, params=moved)
    assert loop_outs.shape == (N, 2)
    np.testing.assert_allclose(scan_x, loop_x, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(scan_outs, loop_outs, rtol=1e-6, atol=1e-6)


def test_shared_layers_have_one_parameter_set_in_both_forms():
    config = TINY.replace(num_layers=N)
    loop_params, (loop_x, loop_outs) = _run(config, shared=True)
    assert jax.tree.map(jnp.shape, loop_params) == {"layers": {"w": (D,)}}
    scan_config = config.replace(scan_layers=True)
    assert jax.tree.map(jnp.shape, _run(scan_config, shared=True)[0]) == {"layers": {"w": (D,)}}
    _, (scan_x, scan_outs) = _run(scan_config, shared=True, params=loop_params)
    np.testing.assert_allclose(scan_x, loop_x, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(scan_outs, loop_outs, rtol=1e-6, atol=1e-6)
    # N applications of one layer differ from one application.
    one, _ = _run(config.replace(num_layers=1), shared=True, params=loop_params)[1]
    assert not np.allclose(one, loop_x)


def test_keep_inputs_returns_what_each_layer_received():
    config = TINY.replace(num_layers=N)
    params, _ = _run(config, shared=False)
    model = Holder(config)
    x_BD = jnp.ones((2, D), jnp.float32)
    offset_ND = jnp.zeros((N, D), jnp.float32)

    def inputs(module):
        return stack.run_layers(module.layers, config, x_BD, offset_ND, jnp.float32(0.5), True,
                                in_axes=IN_AXES, keep_inputs=True)

    final, inputs_NBD = model.apply({"params": params}, method=inputs)
    assert inputs_NBD.shape == (N, 2, D)
    np.testing.assert_array_equal(inputs_NBD[0], x_BD)
    # Layer i's input is layer i-1's output.
    for i in range(1, N):
        one = {"params": {"layers_0": params[f"layers_{i - 1}"]}}
        prev = Holder(config.replace(num_layers=1)).apply(
            one, inputs_NBD[i - 1], offset_ND[i - 1:i])[0]
        np.testing.assert_allclose(inputs_NBD[i], prev, rtol=1e-6)
    assert not np.allclose(final, inputs_NBD[-1])
    with pytest.raises(ValueError, match="unrolled"):
        stack.run_layers(None, config.replace(scan_layers=True), x_BD, keep_inputs=True)
