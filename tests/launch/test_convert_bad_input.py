"""Malformed Hugging Face directories for ``launch.convert --from_hf``: every setting of
config.json is checked (type, presence, range) before it is used, damaged safetensors and shard
indexes that point outside the directory are refused, each in one line naming the file, the key
and the fix. No torch needed: the files are written by hand."""

import json
import os
import struct

import numpy as np
import pytest
from safetensors.numpy import save_file

from launch.conversion import files, huggingface

BERT = {"model_type": "bert", "vocab_size": 11, "hidden_size": 8, "num_hidden_layers": 1,
        "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": 8,
        "type_vocab_size": 2}
GPT2 = {"model_type": "gpt2", "vocab_size": 11, "n_embd": 8, "n_layer": 1, "n_head": 2,
        "n_positions": 8}
XLNET = {"model_type": "xlnet", "vocab_size": 11, "d_model": 8, "n_layer": 1, "n_head": 2,
         "d_head": 4, "d_inner": 16, "dropout": 0.1, "ff_activation": "gelu",
         "layer_norm_eps": 1e-12, "initializer_range": 0.02}


def _directory(tmp_path, config, weights: bytes | None = None, index=None) -> str:
    directory = tmp_path / "hf"
    directory.mkdir(exist_ok=True)
    (directory / "config.json").write_text(
        config if isinstance(config, str) else json.dumps(config))
    if weights is not None:
        (directory / "model.safetensors").write_bytes(weights)
    if index is not None:
        (directory / files.INDEX).write_text(json.dumps(index))
    return str(directory)


def _one_line(error) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("config, problem", [
    ("[1, 2]", r"config\.json: a JSON list, not an object of settings; save the model again "
               r"with transformers' save_pretrained"),
    ('"bert"', r"config\.json: a JSON str, not an object"),
    ({"vocab_size": 3}, r"config\.json: no model_type; add the model's, one of \['albert', "
                        r"'bert', 'gpt2', 't5', 'xlnet'\]"),
    ({"model_type": ["bert"]}, r"config\.json: model_type=\['bert'\] is not one pretrax "
                               r"converts"),
    ({"model_type": "bert"}, r"config\.json: no hidden_size, which BERT configs need \(a "
                             r"positive integer\); add it, with the value the weights were saved "
                             r"with, or save the model again"),
    ({k: v for k, v in BERT.items() if k != "vocab_size"},
     r"config\.json: no vocab_size, which BERT configs need"),
    ({**BERT, "vocab_size": None}, r"config\.json: no vocab_size, which BERT configs need"),
    ({**BERT, "hidden_size": "8"}, r"config\.json: hidden_size='8' is not a positive integer; "
                                   r"set it to the value the weights were saved with"),
    ({**BERT, "num_hidden_layers": 0}, r"num_hidden_layers=0 is not a positive integer"),
    ({**BERT, "vocab_size": -5}, r"vocab_size=-5 is not a positive integer"),
    ({**BERT, "intermediate_size": 16.0}, r"intermediate_size=16\.0 is not a positive integer"),
    ({**BERT, "type_vocab_size": True}, r"type_vocab_size=True is not a positive integer"),
    ({**BERT, "hidden_size": 9}, r"config\.json: hidden_size=9 is not a multiple of "
                                 r"num_attention_heads=2"),
    ({**BERT, "hidden_dropout_prob": 1.5}, r"hidden_dropout_prob=1\.5 is not a probability in "
                                           r"\[0, 1\)"),
    ({**BERT, "layer_norm_eps": "tiny"}, r"layer_norm_eps='tiny' is not a positive number"),
    ({**BERT, "pad_token_id": -2}, r"pad_token_id=-2 is not a token id"),
    ({**BERT, "hidden_act": ["gelu"]}, r"config\.json: hidden_act=\['gelu'\] is not supported"),
    ({**BERT, "position_embedding_type": "relative_key"},
     r"config\.json: BERT settings pretrax does not implement: "
     r"position_embedding_type='relative_key'"),
    ({**GPT2, "n_head": "2"}, r"config\.json: n_head='2' is not a positive integer"),
    ({k: v for k, v in GPT2.items() if k != "n_positions"},
     r"config\.json: no n_positions, which GPT-2 configs need"),
    ({**XLNET, "clamp_len": "off"}, r"config\.json: clamp_len='off' is not an integer"),
    ({**XLNET, "clamp_len": 8}, r"config\.json: XLNet settings pretrax does not implement: "
                                r"clamp_len=8"),
    ({k: v for k, v in XLNET.items() if k != "dropout"},
     r"config\.json: no dropout, which XLNet configs need \(a probability in \[0, 1\)\)"),
    ({"model_type": "albert", **{k: v for k, v in BERT.items() if k != "model_type"}},
     r"config\.json: no embedding_size, which ALBERT configs need"),
])
def test_a_malformed_config_json_names_the_file_the_key_and_the_fix(tmp_path, config, problem):
    directory = _directory(tmp_path, config)
    with pytest.raises(ValueError, match=problem) as e:
        huggingface.read_hf(directory)
    assert _one_line(e).startswith(os.path.join(directory, "config.json"))


def test_settings_that_are_fine_are_read_with_their_defaults(tmp_path):
    directory = _directory(tmp_path, {**BERT, "pad_token_id": None, "hidden_act": None})
    with pytest.raises(FileNotFoundError, match=r"no model\.safetensors in"):  # the config passed
        huggingface.read_hf(directory)
    from lm.interop import bert, gpt2
    config = bert.config_from_hf({**BERT, "pad_token_id": None, "hidden_act": None})
    assert (config.pad_id, config.activation, config.dropout_rate) == (0, "gelu", 0.1)
    assert gpt2.config_from_hf({**GPT2, "n_inner": None}).mlp_dim == 32
    assert gpt2.config_from_hf(GPT2).pad_id == -1


@pytest.mark.parametrize("content, why", [
    (b"", "header too small"),
    (b"\x01\x02", "header too small"),
    (struct.pack("<Q", 2**62) + b"{}", "header too large"),
    (struct.pack("<Q", 4) + b"abcd", "invalid JSON in header"),
    (struct.pack("<Q", 60) + b'{"a":{"dtype":"F32","shape":[1000],"data_offsets":[0,4000]}}'[:60],
     ""),
])
def test_a_damaged_safetensors_file_is_refused_in_one_line(tmp_path, content, why):
    directory = _directory(tmp_path, BERT, weights=content)
    with pytest.raises(ValueError, match=r"model\.safetensors: not a readable safetensors file "
                       rf"\(.*{why}.*\); it is damaged or not safetensors: download it again, "
                       r"or save the model again") as e:
        huggingface.read_hf(directory)
    assert _one_line(e)


def _never_loaded(monkeypatch, forbidden: str):
    import safetensors.numpy
    real = safetensors.numpy.load_file

    def load_file(path, *args, **kw):
        assert os.path.realpath(path) != os.path.realpath(forbidden), f"{path} was read"
        return real(path, *args, **kw)
    monkeypatch.setattr(safetensors.numpy, "load_file", load_file)


@pytest.mark.parametrize("shard", ["../outside.safetensors", "../../../../etc/hostname",
                                   "sub/../../outside.safetensors", "ABSOLUTE", ["a list"], ""])
def test_an_index_cannot_name_a_shard_outside_its_directory(tmp_path, monkeypatch, shard):
    outside = tmp_path / "outside.safetensors"
    save_file({"w": np.zeros((2,), np.float32)}, str(outside))
    shard = str(outside) if shard == "ABSOLUTE" else shard
    directory = _directory(tmp_path, BERT, index={"weight_map": {"bert.w": shard}})
    _never_loaded(monkeypatch, str(outside))
    with pytest.raises(ValueError, match=r"model\.safetensors\.index\.json: shard .* is not a file "
                       r"name inside .*hf \(no absolute path, no '\.\.'\)") as e:
        huggingface.read_hf(directory)
    assert _one_line(e)


def test_a_shard_linked_outside_its_directory_is_refused(tmp_path, monkeypatch):
    outside = tmp_path / "outside.safetensors"
    save_file({"w": np.zeros((2,), np.float32)}, str(outside))
    directory = _directory(tmp_path, BERT, index={"weight_map": {"bert.w": "s.safetensors"}})
    os.symlink(str(outside), os.path.join(directory, "s.safetensors"))
    _never_loaded(monkeypatch, str(outside))
    with pytest.raises(ValueError, match=r"index\.json: s\.safetensors is a link to "
                       r".*outside\.safetensors, outside .*hf; pretrax reads weights only from "
                       r"the directory itself"):
        huggingface.read_hf(directory)
    os.remove(os.path.join(directory, "s.safetensors"))  # a single model.safetensors, too
    os.remove(os.path.join(directory, files.INDEX))
    os.symlink(str(outside), os.path.join(directory, "model.safetensors"))
    with pytest.raises(ValueError, match=r"model\.safetensors is a link to .*, outside"):
        huggingface.read_hf(directory)


def test_index_problems_name_the_index_or_the_shard(tmp_path):
    directory = _directory(tmp_path, BERT, index={"weights": {}})
    with pytest.raises(ValueError, match=r"index\.json: no \"weight_map\" object"):
        huggingface.read_hf(directory)
    directory = _directory(tmp_path, BERT, index={"weight_map": {"bert.w": "gone.safetensors"}})
    with pytest.raises(FileNotFoundError, match=r"hf/gone\.safetensors not found \(listed in "
                       r".*index\.json\); download the missing shard"):
        huggingface.read_hf(directory)


def test_the_hub_cache_layout_links_into_its_own_blobs(tmp_path):
    """``snapshots/REV/*`` link to ``../../blobs/SHA`` in a Hugging Face hub cache: allowed."""
    repo = tmp_path / "models--x--tiny"
    (repo / "blobs").mkdir(parents=True)
    save_file({"w": np.ones((2,), np.float32)}, str(repo / "blobs" / "abc"))
    snapshot = repo / "snapshots" / "rev"
    snapshot.mkdir(parents=True)
    os.symlink("../../blobs/abc", snapshot / "model-1.safetensors")
    (snapshot / files.INDEX).write_text(json.dumps({"weight_map": {"w": "model-1.safetensors"}}))
    state = files.read_safetensors(str(snapshot))
    np.testing.assert_array_equal(state["w"], 1.0)
    os.symlink(str(tmp_path / "elsewhere"), snapshot / "model-2.safetensors")  # not its blobs
    save_file({"v": np.ones((2,), np.float32)}, str(tmp_path / "elsewhere"))
    (snapshot / files.INDEX).write_text(json.dumps({"weight_map": {"w": "model-1.safetensors",
                                                                   "v": "model-2.safetensors"}}))
    with pytest.raises(ValueError, match=r"model-2\.safetensors is a link to .*elsewhere"):
        files.read_safetensors(str(snapshot))
