"""Hugging Face transformers' XLNet weights → pretrax XLNet parameters.

Takes a state dict of ``XLNetLMHeadModel`` (or ``XLNetModel``, keys without the ``transformer.``
prefix) as PyTorch tensors or NumPy arrays, or reads one from a ``.safetensors`` file,
and returns the parameter tree of ``lm.xlnet.XLNetForPretraining``. Example::

    config = config_from_hf(hf_model.config.to_dict())
    params = params_from_state_dict(hf_model.state_dict(), config)
    logits = make_model("xlnet", config).apply({"params": params}, batch)["plm_logits"]
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from lm.config import TransformerConfig


def config_from_hf(hf: Mapping) -> TransformerConfig:
    """Our architecture config from an ``XLNetConfig.to_dict()``.

    Raises:
      ValueError: for XLNet variants our model does not implement.
    """
    unsupported = {k: hf.get(k) for k, ok in (("attn_type", "bi"), ("bi_data", False),
                                             ("same_length", False))
                   if hf.get(k, ok) != ok}
    if hf.get("clamp_len", -1) > 0 or hf.get("untie_r", True) is False:
        unsupported.update(clamp_len=hf.get("clamp_len"), untie_r=hf.get("untie_r"))
    if unsupported:
        raise ValueError(f"unsupported XLNet settings: {unsupported}")
    activation = {"gelu": "gelu", "relu": "relu", "gelu_new": "gelu_tanh"}[hf["ff_activation"]]
    return TransformerConfig(
        vocab_size=hf["vocab_size"], hidden_size=hf["d_model"], num_layers=hf["n_layer"],
        num_heads=hf["n_head"], mlp_dim=hf["d_inner"], head_dim=hf["d_head"],
        dropout_rate=hf["dropout"], attention_dropout_rate=hf["dropout"],
        activation=activation, layer_norm_eps=hf["layer_norm_eps"],
        initializer_range=hf["initializer_range"], pad_id=hf.get("pad_token_id", 5))


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor; no torch import needed here
        x = x.detach().cpu().float().numpy()
    return np.asarray(x, np.float32)


def _layer(sd: Mapping[str, np.ndarray], n: int) -> dict:
    a, f = f"layer.{n}.rel_attn.", f"layer.{n}.ff."
    attention = {ours: sd[a + theirs] for ours, theirs in (
        ("query", "q"), ("key", "k"), ("value", "v"), ("position", "r"),
        ("content_bias", "r_w_bias"), ("position_bias", "r_r_bias"),
        ("segment_bias", "r_s_bias"), ("segment_embed", "seg_embed"))}
    attention["out"] = sd[a + "o"].transpose(1, 2, 0)  # [D, H, K] → [H, K, D]
    attention["norm"] = {"scale": sd[a + "layer_norm.weight"], "bias": sd[a + "layer_norm.bias"]}
    return {
        "attention": attention,
        "mlp": {"wi": {"kernel": sd[f + "layer_1.weight"].T, "bias": sd[f + "layer_1.bias"]},
                "wo": {"kernel": sd[f + "layer_2.weight"].T, "bias": sd[f + "layer_2.bias"]}},
        "mlp_norm": {"scale": sd[f + "layer_norm.weight"], "bias": sd[f + "layer_norm.bias"]},
    }


def params_from_state_dict(state_dict: Mapping, config: TransformerConfig) -> dict:
    """The parameter tree of ``XLNetForPretraining`` (float32 NumPy arrays).

    Without ``lm_loss.bias`` (an ``XLNetModel`` checkpoint) the output bias starts at zero.

    Raises:
      KeyError: naming the first missing weight.
    """
    sd = {k.removeprefix("transformer."): _np(v) for k, v in state_dict.items()}
    encoder = {
        "word_embedding": {"embedding": sd["word_embedding.weight"]},
        "mask_emb": sd["mask_emb"].reshape(-1),
        **{f"layers_{n}": _layer(sd, n) for n in range(config.num_layers)},
    }
    bias = sd.get("lm_loss.bias", np.zeros((config.vocab_size,), np.float32))
    return {"encoder": encoder, "lm_head": {"bias": bias}}


def load_state_dict(path: str) -> dict[str, np.ndarray]:
    """Reads a ``.safetensors`` file (plain arrays: loading it runs no code, needs no torch).

    Raises:
      ValueError: for any other format, e.g. PyTorch's pickled ``.bin``, which can run code
        when loaded.
    """
    if not path.endswith(".safetensors"):
        raise ValueError(
            f"{path}: only .safetensors weights are read (a pickled PyTorch .bin can run code "
            "when loaded); save the model with transformers' "
            "save_pretrained(dir, safe_serialization=True) and pass dir/model.safetensors")
    from safetensors.numpy import load_file
    return load_file(path)
