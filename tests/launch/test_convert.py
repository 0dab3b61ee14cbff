"""launch.convert through files: transformers' save_pretrained → pretrax workdir → parity, and a
workdir → model.safetensors → transformers' from_pretrained → the same weights and outputs; the
workdir is restorable by fine-tuning; pickled weights are refused without being read."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import jax  # noqa: E402

from launch.configs import finetune as finetune_configs  # noqa: E402
from launch.conversion import huggingface  # noqa: E402
from launch.finetuning import setup as finetune_setup  # noqa: E402
from launch.train import checkpoint, lock, modeling  # noqa: E402
from lm import interop  # noqa: E402
from lm.config import SEQ2SEQ_FIELDS, TransformerConfig  # noqa: E402
from tests.lm import test_hf_maps as hf  # noqa: E402

XLNET = lambda: transformers.XLNetLMHeadModel(transformers.XLNetConfig(  # noqa: E731
    vocab_size=hf.V, d_model=32, n_layer=2, n_head=4, d_inner=64, dropout=0.0, mem_len=None))
MODELS = {**hf.HF_MODELS, "xlnet": XLNET}


def _saved(family: str, directory) -> object:
    model = hf._jiggle(MODELS[family]())
    model.save_pretrained(str(directory), safe_serialization=True)
    return model


@pytest.mark.parametrize("family", sorted(MODELS))
def test_import_then_export_round_trips_through_files(family, tmp_path):
    original = _saved(family, tmp_path / "hf")
    huggingface.import_hf(str(tmp_path / "hf"), str(tmp_path / "wd"))
    arch, config, params, step = huggingface.load_workdir(str(tmp_path / "wd"))
    assert (arch, step) == (interop.FAMILIES[family].ARCH, 0)
    if family != "xlnet":  # XLNet's outputs need permutation inputs: tests/lm/test_xlnet_parity
        batch = hf._batch(2)
        if family == "gpt2":
            batch["token_ids"] = np.where(batch["token_ids"] == 0, 5, batch["token_ids"])
        hf._compare(hf._ours(family, config, params, batch), hf._theirs(original, family, batch))

    huggingface.export_hf(str(tmp_path / "wd"), str(tmp_path / "out"))
    reloaded = transformers.AutoModelForPreTraining.from_pretrained(str(tmp_path / "out")).eval()
    assert type(reloaded) is type(original)
    theirs, ours = original.state_dict(), reloaded.state_dict()
    assert set(theirs) == set(ours)
    for name, value in theirs.items():
        np.testing.assert_array_equal(ours[name].numpy(), value.numpy(), err_msg=name)


def test_converted_bert_is_restored_by_finetuning(tmp_path, capsys):
    _saved("bert", tmp_path / "hf")
    huggingface.import_hf(str(tmp_path / "hf"), str(tmp_path / "wd"))
    assert (f"note: launch.finetune and launch.generate on {tmp_path / 'wd'} need its tokenizer: "
            f"no tokenizer.json, vocab.txt, vocab.json + merges.txt or spiece.model in "
            f"{tmp_path / 'hf'}") in capsys.readouterr().out  # only the model was saved here
    cfg = finetune_configs.get_config("paraphrase_bible")
    cfg.init_from = str(tmp_path / "wd")
    cfg.data.max_seq_length = 16
    cfg = finetune_setup.resolve(cfg)
    assert cfg.data.tokenizer == f"hf:{tmp_path / 'hf'}"  # its own (tests/launch/test_convert_
    assert cfg.model.hidden_size == 32  # tokenizers.py fine-tunes with it)
    written = json.loads((tmp_path / "wd" / "config.json").read_text())["model"]
    every = {f.name for f in dataclasses.fields(TransformerConfig)}
    seq2seq_only = set(SEQ2SEQ_FIELDS)  # T5's fields, written for T5 only
    assert set(written) == {"arch", *every} - {"sep_id"} - seq2seq_only  # [SEP]: the tokenizer's
    assert (written["vocab_size"], written["head_dim"], written["pad_id"]) == (hf.V, None, 0)
    spec = type("Spec", (), {"kind": "classification", "label_names": ("a", "b")})
    with pytest.raises(ValueError, match=r"the tokenizer embedded has 8000 ids but the model's "
                       r"embedding has 99 rows \(model\.vocab_size of .*wd\); use the tokenizer "
                       r"saved with the checkpoint"):
        cfg.data.tokenizer = "embedded"  # a vocabulary larger than the converted embedding
        finetune_setup.make_model(cfg, spec, vocab_size=8000)
    model, model_cfg = finetune_setup.make_model(cfg, spec, vocab_size=hf.V)
    assert (model_cfg.vocab_size, model_cfg.max_length) == (hf.V, 16)
    batch = {k: v for k, v in hf._batch().items() if k != "mlm_positions"}
    abstract = finetune_setup.abstract_params(model, batch)["encoder"]
    encoder, step, _ = checkpoint.restore_params_subtree(str(tmp_path / "wd"), "encoder", abstract)
    assert step == 0
    _, _, imported, _ = huggingface.load_workdir(str(tmp_path / "wd"))
    jax.tree_util.tree_map(np.testing.assert_array_equal, encoder, imported["encoder"])


@pytest.mark.parametrize("scan_layers", [False, True])
def test_pretrax_trained_workdir_exports_to_transformers(tmp_path, scan_layers):
    """A workdir of launch.pretrain (bert.py:tiny's model, the embedded tokenizer's vocabulary), its
    layers stacked when it ran with ``scan_layers``."""
    from data.tokenizer import Tokenizer
    from launch.configs import bert as bert_configs
    from lm.models import make_model
    cfg = bert_configs.get_config("tiny")
    cfg.data.max_seq_length = cfg.model.max_length = 16
    cfg.model.scan_layers = scan_layers
    config = modeling.model_config(cfg, Tokenizer.load().vocab_size)
    batch = hf._batch(5)
    params = hf.random_params(make_model("bert", config), batch, seed=7)
    assert ("layers" in params["encoder"]) == scan_layers
    huggingface.write_workdir(str(tmp_path / "wd"), cfg, params)
    huggingface.export_hf(str(tmp_path / "wd"), str(tmp_path / "out"))
    theirs = transformers.BertForPreTraining.from_pretrained(str(tmp_path / "out")).eval()
    assert theirs.config.hidden_act == "gelu" and theirs.config.max_position_embeddings == 16
    hf._compare(hf._ours("bert", config, params, batch), hf._theirs(theirs, "bert", batch))



def test_pickled_weights_are_refused_unread(tmp_path):
    source = tmp_path / "hf"
    source.mkdir()
    (source / "config.json").write_text(json.dumps(
        hf.HF_MODELS["bert"]().config.to_dict()))
    (source / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    with pytest.raises(ValueError, match=r"pytorch_model\.bin is a pickled PyTorch file.*"
                       r"safe_serialization=True"):
        huggingface.import_hf(str(source), str(tmp_path / "wd"))
    assert not (tmp_path / "wd").exists()
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-m", "launch.convert", f"--from_hf={source}",
                           f"--workdir={tmp_path / 'wd'}"], capture_output=True, text=True,
                          env=env, timeout=300)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith(
        f"error: {source}/pytorch_model.bin is a pickled PyTorch file")


def test_bad_inputs_are_named_and_nothing_is_overwritten(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config\.json not found"):
        (tmp_path / "empty").mkdir()
        huggingface.import_hf(str(tmp_path / "empty"), str(tmp_path / "wd"))
    (tmp_path / "bart").mkdir()
    (tmp_path / "bart" / "config.json").write_text('{"model_type": "bart"}')
    with pytest.raises(ValueError, match=r"model_type='bart' is not one pretrax converts"):
        huggingface.import_hf(str(tmp_path / "bart"), str(tmp_path / "wd"))
    (tmp_path / "bart" / "config.json").write_text('{"model_type": ')
    with pytest.raises(ValueError, match=r"config\.json line 1: not valid JSON"):
        huggingface.import_hf(str(tmp_path / "bart"), str(tmp_path / "wd"))

    _saved("gpt2", tmp_path / "hf")
    huggingface.import_hf(str(tmp_path / "hf"), str(tmp_path / "wd"))
    with pytest.raises(ValueError, match=r"already holds a run \(config\.json or a checkpoint\); "
                       r"nothing was written"):
        huggingface.import_hf(str(tmp_path / "hf"), str(tmp_path / "wd"))
    hf_config = json.loads((tmp_path / "hf" / "config.json").read_text())
    (tmp_path / "hf" / "config.json").write_text(json.dumps({**hf_config, "vocab_size": 98}))
    with pytest.raises(ValueError, match=r"converted parameters do not fit the model: "
                       r"encoder/embeddings/token_embed/embedding: converted \(99, 32\), model "
                       r"\(98, 32\)"):
        huggingface.import_hf(str(tmp_path / "hf"), str(tmp_path / "wd3"))
    assert not (tmp_path / "wd3").exists()
    with pytest.raises(ValueError, match=r"model\.safetensors exists; nothing was written"):
        huggingface.export_hf(str(tmp_path / "wd"), str(tmp_path / "hf"))


def test_a_workdir_in_use_is_refused_before_anything_is_written(tmp_path):
    _saved("gpt2", tmp_path / "hf")
    with lock.acquire(str(tmp_path / "wd")):
        with pytest.raises(lock.WorkdirLocked, match=r"wd is in use by another run: "):
            huggingface.import_hf(str(tmp_path / "hf"), str(tmp_path / "wd"))
        assert os.listdir(tmp_path / "wd") == [".lock"]
    huggingface.import_hf(str(tmp_path / "hf"), str(tmp_path / "wd"))
    assert sorted(os.listdir(tmp_path / "wd")) == ["checkpoints", "config.json"]


def _google_name(hf_name: str) -> str:
    """google-research/bert's variable name of a BertForPreTraining weight (test-side table)."""
    fixed = {"cls.predictions.bias": "cls/predictions/output_bias",
             "cls.seq_relationship.weight": "cls/seq_relationship/output_weights",
             "cls.seq_relationship.bias": "cls/seq_relationship/output_bias"}
    if hf_name in fixed:
        return fixed[hf_name]
    name = hf_name.replace("encoder.layer.", "encoder.layer_").replace(".", "/")
    if "LayerNorm" in name:
        return name.replace("/weight", "/gamma").replace("/bias", "/beta")
    if name.endswith("_embeddings/weight"):
        return name.removesuffix("/weight")
    return name.replace("/weight", "/kernel")


def test_google_tf_bert_checkpoint_imports_with_parity(tmp_path):
    tf = pytest.importorskip("tensorflow")
    model = transformers.BertForPreTraining(transformers.BertConfig(
        **{**hf.SMALL, "hidden_act": "gelu_new"}))  # google-research/bert's gelu is tanh's
    model = hf._jiggle(model)
    source = tmp_path / "tf"
    source.mkdir()
    (source / "bert_config.json").write_text(json.dumps(
        {k: v for k, v in model.config.to_dict().items() if k in (
            *hf.SMALL, "type_vocab_size", "initializer_range")} | {"hidden_act": "gelu"}))
    with tf.Graph().as_default():
        for name, value in model.state_dict().items():
            value = value.numpy()
            google = _google_name(name)
            tf.compat.v1.Variable(value.T if google.endswith("/kernel") else value, name=google)
        tf.compat.v1.Variable(np.zeros((2,), np.float32), name="bert/pooler/dense/bias/adam_m")
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session() as session:
            session.run(tf.compat.v1.global_variables_initializer())
            saver.save(session, str(source / "bert_model.ckpt"))
    huggingface.import_hf(str(source), str(tmp_path / "wd"))
    _, config, params, _ = huggingface.load_workdir(str(tmp_path / "wd"))
    assert config.activation == "gelu_tanh"
    batch = hf._batch(4)
    hf._compare(hf._ours("bert", config, params, batch), hf._theirs(model, "bert", batch))
