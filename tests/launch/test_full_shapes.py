"""Every shipped pretraining config's train step traces and lowers at its full shape (batch,
sequence, width) on the 8 fake CPU devices: abstract values only, so BERT-large or the 7B
decoder cost seconds, and a config that cannot even trace (e.g. a dropout mask over more than
2³² elements) fails here, not on a pod."""

import pytest

from launch.compiling import aot
from launch.configs import albert, bert, gpt, xlnet

CONFIGS = [(bert, v) for v in ("tiny", "base", "large")] + \
          [(albert, v) for v in ("tiny", "tiny_order", "base")] + \
          [(gpt, v) for v in ("tiny", "small", "medium", "large", "1b3", "7b")] + \
          [(xlnet, v) for v in ("tiny", "base")]


@pytest.mark.parametrize("module,variant", CONFIGS,
                         ids=[f"{m.__name__.split('.')[-1]}:{v}" for m, v in CONFIGS])
def test_train_step_lowers_at_full_shape(module, variant):
    import jax
    cfg = module.get_config(variant)
    lowered, mesh, state = aot.lower_train_step(cfg, jax.devices())
    assert mesh.size == 8
    text = lowered.as_text()
    assert "func.func public @main" in text
    params = sum(x.size for x in jax.tree_util.tree_leaves(state.params))
    assert params > 5e5
