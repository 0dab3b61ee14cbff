"""Parity of ``lm.interop``'s maps with transformers (PyTorch, CPU) on tiny random models.

Both directions for BERT, GPT-2 and ALBERT: their state dict → our parameters → our outputs equal
theirs; our random parameters → their state dict → their outputs equal ours. Hidden states and
every head's logits, at 1e-4.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402

from lm import interop  # noqa: E402
from lm.albert import AlbertEncoder  # noqa: E402
from lm.decoder import Decoder  # noqa: E402
from lm.encoder import Encoder  # noqa: E402
from lm.interop import maps  # noqa: E402
from lm.models import make_model  # noqa: E402

TOL = dict(rtol=1e-4, atol=1e-4)
B, L, P, V = 2, 12, 3, 99
SMALL = dict(vocab_size=V, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
             intermediate_size=64, max_position_embeddings=16, hidden_dropout_prob=0.0,
             attention_probs_dropout_prob=0.0)
HF_MODELS = {
    "bert": lambda: transformers.BertForPreTraining(transformers.BertConfig(**SMALL)),
    "albert": lambda: transformers.AlbertForPreTraining(transformers.AlbertConfig(
        embedding_size=16, **SMALL)),
    "gpt2": lambda: transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=V, n_embd=32, n_layer=2, n_head=4, n_inner=64, n_positions=16, resid_pdrop=0.0,
        embd_pdrop=0.0, attn_pdrop=0.0)),
}
BODIES = {"bert": Encoder, "albert": AlbertEncoder, "gpt2": Decoder}


def _jiggle(model):
    """Moves every weight off its initial value (LayerNorm 1/0, zero biases) so each one counts."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model.eval()


def _batch(seed: int = 0) -> dict[str, np.ndarray]:
    """Two rows, the second padded after 8 tokens, two segments, P predicted positions."""
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(7, V, (B, L)).astype(np.int32)
    token_ids[1, 8:] = 0
    type_ids = np.zeros((B, L), np.int32)
    type_ids[:, 5:] = 1
    positions = np.stack([rng.choice(8, P, replace=False) for _ in range(B)]).astype(np.int32)
    return {"token_ids": token_ids, "type_ids": type_ids, "mlm_positions": positions}


def _theirs(model, family: str, batch) -> dict[str, np.ndarray]:
    ids = torch.tensor(batch["token_ids"], dtype=torch.long)
    with torch.no_grad():
        if family == "gpt2":  # no padding in a causal LM's input here: every token is real
            out = model(input_ids=ids, output_hidden_states=True)
            return {"hidden": out.hidden_states[-1].numpy(), "logits": out.logits.numpy()}
        out = model(input_ids=ids, token_type_ids=torch.tensor(batch["type_ids"]).long(),
                    attention_mask=(ids != 0).long(), output_hidden_states=True)
    rows = np.arange(B)[:, None]
    sentence = "nsp_logits" if family == "bert" else "sop_logits"
    return {"hidden": out.hidden_states[-1].numpy(),
            "mlm_logits": out.prediction_logits.numpy()[rows, batch["mlm_positions"]],
            sentence: (out.seq_relationship_logits if family == "bert" else
                       out.sop_logits).numpy()}


def _ours(family: str, config, params, batch) -> dict[str, np.ndarray]:
    if family == "gpt2":
        batch = {"token_ids": np.where(batch["token_ids"] == 0, 5, batch["token_ids"])}
    model = make_model(interop.FAMILIES[family].ARCH, config)
    out = dict(jax.jit(model.apply)({"params": params}, batch))  # one compile, not op by op
    body = BODIES[family](config)
    out["hidden"] = jax.jit(body.apply, static_argnames="deterministic")(
        {"params": params["encoder"]}, batch, deterministic=True)
    return {k: np.asarray(v) for k, v in out.items()}


def random_params(model, batch, seed: int) -> dict:
    """Our parameter tree filled with random values (LayerNorm scales around 1, no zero biases),
    from the model's shapes alone: nothing is compiled."""
    rng = np.random.default_rng(seed)
    shapes = jax.eval_shape(lambda: nn.unbox(model.init(jax.random.key(0), batch)["params"]))
    return jax.tree_util.tree_map_with_path(
        lambda path, x: (path[-1].key == "scale") + 0.1 * rng.standard_normal(
            x.shape).astype(np.float32), shapes)


def _compare(ours: dict, theirs: dict) -> None:
    for name, value in theirs.items():
        np.testing.assert_allclose(ours[name], value, err_msg=name, **TOL)


@pytest.mark.parametrize("family", sorted(HF_MODELS))
def test_import_matches_transformers(family):
    model = _jiggle(HF_MODELS[family]())
    module = interop.FAMILIES[family]
    config = module.config_from_hf(model.config.to_dict())
    params = module.params_from_hf(model.state_dict(), config)
    batch = _batch()
    if family == "gpt2":
        batch["token_ids"] = np.where(batch["token_ids"] == 0, 5, batch["token_ids"])
    _compare(_ours(family, config, params, batch), _theirs(model, family, batch))


@pytest.mark.parametrize("family", sorted(HF_MODELS))
def test_export_matches_transformers(family):
    module = interop.FAMILIES[family]
    config = module.config_from_hf(HF_MODELS[family]().config.to_dict())
    batch = _batch(1)
    if family == "gpt2":
        batch["token_ids"] = np.where(batch["token_ids"] == 0, 5, batch["token_ids"])
    params = random_params(make_model(module.ARCH, config), batch, seed=3)
    state = {k: torch.from_numpy(v) for k, v in module.params_to_hf(params, config).items()}
    hf_config = transformers.AutoConfig.for_model(**module.config_to_hf(config))
    theirs = transformers.AutoModelForPreTraining.from_config(hf_config).eval()
    missing, unexpected = theirs.load_state_dict(state, strict=False)
    assert not unexpected
    tied = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias", "lm_head.weight",
            "predictions.decoder.weight", "predictions.decoder.bias"}
    assert set(missing) <= tied, missing
    theirs.tie_weights()
    _compare(_ours(family, config, params, batch), _theirs(theirs, family, batch))


def test_missing_weight_is_named():
    model = HF_MODELS["bert"]()
    config = interop.bert.config_from_hf(model.config.to_dict())
    state = dict(model.state_dict())
    del state["bert.pooler.dense.weight"]
    with pytest.raises(ValueError, match=r"lacks 1 weight.*bert\.pooler\.dense\.weight"):
        interop.bert.params_from_hf(state, config)
    params = interop.bert.params_from_hf(model.state_dict(), config)
    del params["nsp_head"]
    with pytest.raises(ValueError, match=r"no parameter nsp_head/classifier/kernel, which "
                       r"cls\.seq_relationship\.weight needs"):
        interop.bert.params_to_hf(params, config)


def test_unsupported_settings_are_named():
    with pytest.raises(ValueError, match=r"position_embedding_type='relative_key'"):
        interop.bert.config_from_hf({**SMALL, "type_vocab_size": 2,
                                     "position_embedding_type": "relative_key"})
    with pytest.raises(ValueError, match=r"num_hidden_groups=2"):
        interop.albert.config_from_hf({**SMALL, "type_vocab_size": 2, "embedding_size": 16,
                                       "num_hidden_groups": 2})
    with pytest.raises(ValueError, match=r"hidden_act='swish'"):
        maps.activation_from_hf("swish", "hidden_act")
    with pytest.raises(ValueError, match=r"model_type='bart'"):
        interop.family_for_hf({"model_type": "bart"})
