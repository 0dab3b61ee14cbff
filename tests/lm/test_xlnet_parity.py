"""Parity with Hugging Face transformers' XLNet (PyTorch, CPU) on a tiny random model.

Both streams, the logits and a second segment with memory, for the same ``perm_mask`` and
``target_mapping``; tolerance 1e-4. Both directions: their weights imported
(``lm.interop.xlnet.params_from_hf``), and our weights exported (``params_to_hf``) into a fresh
``XLNetLMHeadModel``.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from lm.interop import xlnet as interop_xlnet  # noqa: E402
from lm.models import make_model  # noqa: E402
from tests.lm.test_hf_maps import random_params  # noqa: E402

TOL = dict(rtol=1e-4, atol=1e-4)
B, L, P, V, PAD = 2, 12, 4, 97, 5


@pytest.fixture(scope="module")
def hf_model():
    config = transformers.XLNetConfig(vocab_size=V, d_model=32, n_layer=2, n_head=4, d_inner=64,
                                      dropout=0.0, pad_token_id=PAD, mem_len=None)
    torch.manual_seed(0)
    model = transformers.XLNetLMHeadModel(config).eval()
    with torch.no_grad():  # move every weight off its init (LayerNorm 1/0, zero biases)
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def _inputs(seed: int) -> dict[str, np.ndarray]:
    """XLNet-style inputs: random order with context first, P targets, row 1 left-padded."""
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(7, V, (B, L))
    token_ids[1, :2] = PAD
    type_ids = np.zeros((B, L), np.int64)
    type_ids[:, L // 2:] = 1
    type_ids[:, -1] = 2  # <cls>
    perm_mask = np.zeros((B, L, L), np.float32)  # 1 = may not attend (HF's polarity)
    target_mapping = np.zeros((B, P, L), np.float32)
    for b in range(B):
        targets = np.sort(rng.choice(np.arange(2, L), P, replace=False))
        order = np.full(L, -1)
        order[targets] = rng.permutation(P)
        self_order = np.where(np.isin(np.arange(L), targets), order, order + 1)
        perm_mask[b] = (self_order[:, None] <= order[None, :]) & (order[None, :] >= 0)
        target_mapping[b, np.arange(P), targets] = 1.0
    return dict(token_ids=token_ids, type_ids=type_ids, perm_mask=perm_mask,
                target_mapping=target_mapping, is_real=token_ids != PAD)


def _ours(inputs) -> dict:
    eye = np.eye(L, dtype=bool)
    return {"token_ids": jnp.asarray(inputs["token_ids"], jnp.int32),
            "type_ids": jnp.asarray(inputs["type_ids"], jnp.int32),
            "can_attend": jnp.asarray((inputs["perm_mask"] == 0) | eye),
            "plm_target_mapping": jnp.asarray(inputs["target_mapping"])}


def _theirs(model, inputs, mems=None):
    t = lambda x, dtype=torch.float32: torch.tensor(np.asarray(x), dtype=dtype)  # noqa: E731
    with torch.no_grad():
        return model(input_ids=t(inputs["token_ids"], torch.long),
                     token_type_ids=t(inputs["type_ids"], torch.long),
                     attention_mask=t(inputs["is_real"]), perm_mask=t(inputs["perm_mask"]),
                     target_mapping=t(inputs["target_mapping"]), mems=mems,
                     output_hidden_states=True, use_mems=True)


@pytest.fixture(scope="module")
def converted(hf_model):
    config = interop_xlnet.config_from_hf(hf_model.config.to_dict())
    params = interop_xlnet.params_from_hf(hf_model.state_dict(), config)
    return make_model("xlnet", config), params


def test_streams_and_logits_match_transformers(hf_model, converted):
    model, params = converted
    inputs = _inputs(0)
    theirs = _theirs(hf_model, inputs)
    ours = jax.jit(model.apply)({"params": params}, _ours(inputs))
    np.testing.assert_allclose(ours["content_states"], theirs.hidden_states[-2].numpy(), **TOL)
    np.testing.assert_allclose(ours["query_states"], theirs.hidden_states[-1].numpy(), **TOL)
    np.testing.assert_allclose(ours["plm_logits"], theirs.logits.numpy(), **TOL)


def test_second_segment_with_memory_matches_transformers(hf_model, converted):
    model, params = converted
    first, second = _inputs(1), _inputs(2)
    first["is_real"][:] = True
    first["token_ids"][first["token_ids"] == PAD] = 9
    theirs_1 = _theirs(hf_model, first)
    theirs_2 = _theirs(hf_model, second, mems=theirs_1.mems)
    apply = jax.jit(model.apply)
    ours_1 = apply({"params": params}, _ours(first))
    ours_2 = apply({"params": params}, _ours(second), mems=ours_1["new_mems"])
    for n, mem in enumerate(theirs_1.mems):  # HF keeps [L, B, D] per layer
        np.testing.assert_allclose(ours_1["new_mems"][n], mem.numpy().transpose(1, 0, 2), **TOL)
    np.testing.assert_allclose(ours_2["content_states"], theirs_2.hidden_states[-2].numpy(),
                               **TOL)
    np.testing.assert_allclose(ours_2["plm_logits"], theirs_2.logits.numpy(), **TOL)


def test_export_matches_transformers(converted):
    model, _ = converted
    config = model.config
    inputs = _inputs(3)
    params = random_params(model, _ours(inputs), seed=5)
    state = {k: torch.from_numpy(v)
             for k, v in interop_xlnet.params_to_hf(params, config).items()}
    theirs = transformers.XLNetLMHeadModel(transformers.XLNetConfig(
        **interop_xlnet.config_to_hf(config))).eval()
    missing, unexpected = theirs.load_state_dict(state, strict=False)
    assert (missing, unexpected) == (["lm_loss.weight"], [])
    theirs.tie_weights()
    out = _theirs(theirs, inputs)
    ours = jax.jit(model.apply)({"params": params}, _ours(inputs))
    np.testing.assert_allclose(ours["content_states"], out.hidden_states[-2].numpy(), **TOL)
    np.testing.assert_allclose(ours["query_states"], out.hidden_states[-1].numpy(), **TOL)
    np.testing.assert_allclose(ours["plm_logits"], out.logits.numpy(), **TOL)
