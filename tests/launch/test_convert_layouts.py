"""launch.convert --from_hf reads every common head layout of each family: what the checkpoint holds
is loaded exactly (the same weights as the family's pretraining class), what it lacks is
initialised as pretrax initialises it (seed 0), and one line each says which is which; a
checkpoint of another type is refused by name, with the supported list, in one line."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402

from launch.conversion import huggingface  # noqa: E402
from lm import interop, models  # noqa: E402
from lm.interop import maps  # noqa: E402
from tests.lm import test_hf_maps as hf  # noqa: E402

CONFIGS = {
    "bert": lambda: transformers.BertConfig(**hf.SMALL),
    "albert": lambda: transformers.AlbertConfig(embedding_size=16, **hf.SMALL),
    "gpt2": lambda: transformers.GPT2Config(vocab_size=hf.V, n_embd=32, n_layer=2, n_head=4,
                                            n_inner=64, n_positions=16, bos_token_id=0,
                                            eos_token_id=0),
    "xlnet": lambda: transformers.XLNetConfig(vocab_size=hf.V, d_model=32, n_layer=2, n_head=4,
                                              d_inner=64, dropout=0.0, mem_len=None),
}
PRETRAINING = {"bert": "BertForPreTraining", "albert": "AlbertForPreTraining",
               "gpt2": "GPT2LMHeadModel", "xlnet": "XLNetLMHeadModel"}
INIT = " (pretrax's initialisers, seed 0)"
# class → (family, the lines launch.convert prints about it)
LAYOUTS = {
    "BertModel": ("bert", ["loaded: encoder (37 tensors), pooler (2 tensors)",
                           f"initialised: MLM head, NSP head{INIT}"]),
    "BertForMaskedLM": ("bert", ["loaded: encoder (37 tensors), MLM head (5 tensors)",
                                 f"initialised: pooler, NSP head{INIT}"]),
    "BertForSequenceClassification": ("bert", [
        "loaded: encoder (37 tensors), pooler (2 tensors)",
        f"initialised: MLM head, NSP head{INIT}", "not used: classifier (2 tensors)"]),
    "BertForPreTraining": ("bert", ["loaded: encoder (37 tensors), pooler (2 tensors), MLM head "
                                    "(5 tensors), NSP head (2 tensors)", "initialised: none"]),
    "AlbertModel": ("albert", ["loaded: encoder (23 tensors), pooler (2 tensors)",
                               f"initialised: MLM head, SOP head{INIT}"]),
    "AlbertForMaskedLM": ("albert", ["loaded: encoder (23 tensors), MLM head (5 tensors)",
                                     f"initialised: pooler, SOP head{INIT}"]),
    "AlbertForPreTraining": ("albert", ["loaded: encoder (23 tensors), pooler (2 tensors), MLM "
                                        "head (5 tensors), SOP head (2 tensors)",
                                        "initialised: none"]),
    "AlbertForSequenceClassification": ("albert", [
        "loaded: encoder (23 tensors), pooler (2 tensors)",
        f"initialised: MLM head, SOP head{INIT}", "not used: classifier (2 tensors)"]),
    "GPT2Model": ("gpt2", ["loaded: decoder (28 tensors)", "initialised: none"]),
    "GPT2LMHeadModel": ("gpt2", ["loaded: decoder (28 tensors)", "initialised: none"]),
    "XLNetModel": ("xlnet", ["loaded: encoder (36 tensors)",
                             f"initialised: LM head bias{INIT}"]),
    "XLNetLMHeadModel": ("xlnet", ["loaded: encoder (36 tensors), LM head bias (1 tensors)",
                                   "initialised: none"]),
}


def _saved_as(name: str, family: str, directory):
    """A ``name`` checkpoint whose weights are those of the family's jiggled pretraining model,
    saved by transformers; returns that pretraining model."""
    config = CONFIGS[family]()
    full = hf._jiggle(getattr(transformers, PRETRAINING[family])(config))
    model = getattr(transformers, name)(config).eval()
    model.base_model.load_state_dict(full.base_model.state_dict(), strict=False)
    model.load_state_dict({k: v for k, v in full.state_dict().items()
                           if k in model.state_dict() and not k.startswith(
                               model.base_model_prefix + ".")}, strict=False)
    model.save_pretrained(str(directory), safe_serialization=True)
    return full


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_every_head_layout_loads_what_is_there_and_initialises_the_rest(name, tmp_path, capsys):
    family, lines = LAYOUTS[name]
    full = _saved_as(name, family, tmp_path / "hf")
    huggingface.import_hf(str(tmp_path / "hf"), str(tmp_path / "wd"))
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith(f"{tmp_path / 'hf'} ({name}) → {tmp_path / 'wd'}: model.arch=")
    assert printed[1:1 + len(lines)] == lines

    module = interop.FAMILIES[family]
    arch, config, params, step = huggingface.load_workdir(str(tmp_path / "wd"))
    assert (arch, step) == (module.ARCH, 0)
    want = maps.flatten(module.params_from_hf(full.state_dict(), config))
    model = models.make_model(arch, config)
    fresh = maps.flatten(jax.jit(lambda: nn.unbox(model.init(
        jax.random.key(0), huggingface.dummy_batch())["params"]))())
    initialised = [part for line in lines if line.startswith("initialised: ") and INIT in line
                   for part in line.removeprefix("initialised: ").removesuffix(INIT).split(", ")]
    for path, value in maps.flatten(params).items():
        if maps.part_of(path, module.PARTS) in initialised:
            np.testing.assert_array_equal(value, fresh[path], err_msg=path)
        else:  # loaded: the pretraining model's weights, exactly
            np.testing.assert_array_equal(value, want[path], err_msg=path)


@pytest.mark.parametrize("model_type, name", [("roberta", "RobertaModel"), ("bart", "BartModel")])
def test_an_unsupported_checkpoint_type_is_refused_by_name_in_one_line(tmp_path, model_type,
                                                                       name):
    config = transformers.AutoConfig.for_model(model_type).to_dict()
    (tmp_path / "config.json").write_text(json.dumps({**config, "architectures": [name]}))
    with pytest.raises(ValueError) as e:
        huggingface.import_hf(str(tmp_path), str(tmp_path / "wd"))
    message = str(e.value)
    assert "\n" not in message and not (tmp_path / "wd").exists()
    assert message.startswith(f"{tmp_path / 'config.json'}: model_type='{model_type}' ({name}) "
                              "is not one pretrax converts; supported: ['albert', 'bert', "
                              "'gpt2', 't5', 'xlnet'] (BERT: BertModel, BertForPreTraining, "
                              "BertForMaskedLM, BertForSequenceClassification; GPT-2: GPT2Model, "
                              "GPT2LMHeadModel; ALBERT: AlbertModel, ")
    assert message.endswith("XLNet: XLNetModel, XLNetLMHeadModel; T5 v1.1: "
                            "T5ForConditionalGeneration, T5Model)")


def test_the_original_t5_is_refused_naming_v1_1(tmp_path):
    """transformers' default T5 config is the original (ReLU) T5, which pretrax does not build."""
    config = transformers.AutoConfig.for_model("t5").to_dict()
    (tmp_path / "config.json").write_text(json.dumps({**config, "architectures": ["T5Model"]}))
    with pytest.raises(ValueError) as e:
        huggingface.import_hf(str(tmp_path), str(tmp_path / "wd"))
    assert str(e.value) == (f"{tmp_path / 'config.json'}: feed_forward_proj='relu' is the "
                            "original T5's (not gated); pretrax implements T5 v1.1 "
                            "(feed_forward_proj='gated-gelu')")
    assert not (tmp_path / "wd").exists()


def test_an_encoder_under_another_name_is_refused_naming_both(tmp_path):
    """A BERT config over weights of another model (a RoBERTa's ``roberta.`` names)."""
    _saved_as("BertModel", "bert", tmp_path)
    from safetensors.numpy import load_file, save_file
    state = load_file(str(tmp_path / "model.safetensors"))
    save_file({f"roberta.{k}": v for k, v in state.items()}, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match=r"model\.safetensors holds none of the encoder's weights "
                       r"\(e\.g\. bert\.embeddings\.LayerNorm\.bias\); its tensors are named like "
                       r"roberta\.embeddings\.LayerNorm\.bias: is its config\.json the one it "
                       r"was saved with\?"):
        huggingface.import_hf(str(tmp_path), str(tmp_path / "wd"))
    del state["encoder.layer.1.output.dense.weight"]  # a damaged encoder is never half-loaded
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(ValueError, match=r"lacks 1 weight\(s\) of the encoder this config needs: "
                       r"bert\.encoder\.layer\.1\.output\.dense\.weight"):
        huggingface.import_hf(str(tmp_path), str(tmp_path / "wd"))
