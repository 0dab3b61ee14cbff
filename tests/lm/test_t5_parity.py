"""Parity of lm/t5.py and lm/interop/t5.py with transformers' ``T5ForConditionalGeneration``
(PyTorch, CPU) on a small random T5 v1.1: relative-position buckets, logits at 1e-4 in both
conversion directions, and greedy decoding token for token."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import jax  # noqa: E402

from lm import generation, interop, t5  # noqa: E402
from lm.models import make_model  # noqa: E402
from tests.lm.test_hf_maps import TOL, _jiggle, random_params  # noqa: E402

V, EOS = 99, 1


def hf_t5():
    """A random T5 v1.1 (gated GELU, untied head), dropout off, 2 encoder + 3 decoder layers.

    transformers 5 builds ``lm_head`` tied to ``shared``: it is given its own weights (as a v1.1
    checkpoint's are loaded)."""
    config = transformers.T5Config(
        vocab_size=V, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_decoder_layers=3,
        num_heads=4, relative_attention_num_buckets=8, relative_attention_max_distance=20,
        dropout_rate=0.0, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
        pad_token_id=0, eos_token_id=EOS, decoder_start_token_id=0)
    return untie(transformers.T5ForConditionalGeneration(config))


def untie(model):
    model.lm_head.weight = torch.nn.Parameter(model.shared.weight.detach().clone())
    return model


def _batch(seed: int = 0):
    rng = np.random.default_rng(seed)
    source = rng.integers(2, V, (2, 12)).astype(np.int32)
    source[1, 7:] = 0
    decoder = rng.integers(2, V, (2, 9)).astype(np.int32)
    decoder[:, 0] = 0
    return {"encoder_input_ids": source, "decoder_input_ids": decoder}


def _theirs(model, batch) -> np.ndarray:
    source = torch.tensor(batch["encoder_input_ids"]).long()
    with torch.no_grad():
        return model(input_ids=source, attention_mask=(source != 0).long(),
                     decoder_input_ids=torch.tensor(batch["decoder_input_ids"]).long(),
                     use_cache=False).logits.numpy()


def _ours(config, params, batch) -> np.ndarray:
    model = make_model("t5", config)
    return np.asarray(jax.jit(model.apply)({"params": params}, batch)["logits"])


@pytest.mark.parametrize("bidirectional,buckets,distance", [(True, 32, 128), (False, 32, 128),
                                                            (True, 8, 20), (False, 16, 50)])
def test_buckets_match_transformers(bidirectional, buckets, distance):
    relative = np.arange(-600, 601)[None, :] - np.arange(0, 3)[:, None]
    theirs = transformers.models.t5.modeling_t5.T5Attention._relative_position_bucket(
        torch.tensor(relative), bidirectional=bidirectional, num_buckets=buckets,
        max_distance=distance).numpy()
    ours = t5.relative_position_bucket(jax.numpy.asarray(relative), bidirectional=bidirectional,
                                       num_buckets=buckets, max_distance=distance)
    np.testing.assert_array_equal(np.asarray(ours), theirs)


def test_import_matches_transformers_logits_and_greedy_decoding():
    model = _jiggle(hf_t5())
    module = interop.FAMILIES["t5"]
    config = module.config_from_hf(model.config.to_dict())
    assert (config.num_layers, config.decoder_layers, config.kv_dim) == (2, 3, 8)
    params = module.params_from_hf(model.state_dict(), config)
    batch = _batch()
    np.testing.assert_allclose(_ours(config, params, batch), _theirs(model, batch), **TOL)

    source = torch.tensor(batch["encoder_input_ids"]).long()
    with torch.no_grad():
        theirs = model.generate(input_ids=source, attention_mask=(source != 0).long(),
                                max_new_tokens=8, do_sample=False, num_beams=1, min_length=0,
                                eos_token_id=EOS, pad_token_id=0, decoder_start_token_id=0,
                                use_cache=False)  # its cache takes num_layers decoder layers
    theirs = theirs.numpy()[:, 1:]  # after the start token
    assert theirs.shape[1] >= 4  # not stopped at once: a comparison of several tokens
    ours = np.asarray(generation.generate_seq2seq(
        make_model("t5", config), params, batch["encoder_input_ids"], jax.random.key(0),
        greedy=True, max_new_tokens=8, eos_id=EOS))
    np.testing.assert_array_equal(ours[:, :theirs.shape[1]], theirs)
    assert (ours[:, theirs.shape[1]:] == 0).all()


def test_export_matches_transformers():
    module = interop.FAMILIES["t5"]
    config = module.config_from_hf(hf_t5().config.to_dict())
    batch = _batch(1)
    params = random_params(make_model("t5", config), batch, seed=3)
    state = {k: torch.from_numpy(v) for k, v in module.params_to_hf(params, config).items()}
    hf_config = transformers.AutoConfig.for_model(**module.config_to_hf(config))
    theirs = untie(transformers.AutoModelForPreTraining.from_config(hf_config)).eval()
    assert type(theirs) is transformers.T5ForConditionalGeneration
    missing, unexpected = theirs.load_state_dict(state, strict=False)
    assert not unexpected
    assert set(missing) <= {"encoder.embed_tokens.weight", "decoder.embed_tokens.weight"}
    assert theirs.encoder.embed_tokens.weight is theirs.shared.weight  # tied by transformers
    np.testing.assert_allclose(_ours(config, params, batch), _theirs(theirs, batch), **TOL)


def test_original_t5_is_refused_in_one_line():
    module = interop.FAMILIES["t5"]
    v10 = transformers.T5Config(vocab_size=V, d_model=32, d_kv=8, d_ff=48, num_layers=2,
                                num_heads=4).to_dict()  # relu, tied: T5 v1.0
    with pytest.raises(ValueError, match=r"feed_forward_proj='relu' is the original T5's"):
        module.config_from_hf(v10, "DIR/config.json")
    tied = dict(v10, feed_forward_proj="gated-gelu", tie_word_embeddings=True)
    with pytest.raises(ValueError, match=r"scales the decoder output by 1/sqrt\(d_model\)"):
        module.config_from_hf(tied, "DIR/config.json")
