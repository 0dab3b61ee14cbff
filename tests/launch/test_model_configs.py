"""Run configs state the model field by field: every variant's published shape, the shipped
tokenizer's vocabulary, and any field overridden on the command line (no preset to fight)."""

import json
import os

import ml_collections
import numpy as np
import pytest
from absl import flags
from ml_collections import config_flags

from data.tokenizer import Tokenizer
from launch.configs import albert, bert, finetune, gpt, t5, xlnet
from launch.conversion import huggingface
from launch.pretraining import run as pretraining
from launch.train import checkpoint, modeling
from launch.train import workdir as workdir_lib
from lm import models
from tests.launch.test_pretrain_e2e import REPO, tiny_overrides

# (config module, variant) → (D, N, H, F, max_length, E or None), as the papers publish them
# (the tiny ones: what they were before the model sections were spelled out).
SHAPES = {
    (bert, "tiny"): (128, 2, 2, 512, 64, None),
    (bert, "base"): (768, 12, 12, 3072, 512, None),
    (bert, "large"): (1024, 24, 16, 4096, 512, None),
    (albert, "tiny"): (128, 4, 2, 512, 64, 64),
    (albert, "tiny_order"): (128, 4, 2, 512, 64, 64),
    (albert, "base"): (768, 12, 12, 3072, 512, 128),
    (gpt, "tiny"): (128, 2, 4, 512, 128, None),
    (gpt, "small"): (768, 12, 12, 3072, 1024, None),
    (gpt, "medium"): (1024, 24, 16, 4096, 1024, None),
    (gpt, "large"): (1280, 36, 20, 5120, 1024, None),
    (gpt, "1b3"): (2048, 24, 16, 8192, 2048, None),
    (gpt, "7b"): (4096, 32, 32, 16384, 2048, None),
    (xlnet, "tiny"): (128, 2, 2, 512, 64, None),
    (xlnet, "base"): (768, 12, 12, 3072, 512, None),
    (t5, "tiny"): (128, 2, 4, 256, 64, None),
    (t5, "small"): (512, 8, 6, 1024, 512, None),
    (t5, "base"): (768, 12, 12, 2048, 512, None),
}
# T5 v1.1 (and its tiny one): decoder layers, K, buckets, max distance.
T5_SHAPES = {"tiny": (2, 32, 32, 128), "small": (8, 64, 32, 128), "base": (12, 64, 32, 128)}


@pytest.mark.parametrize("module,variant", sorted(SHAPES, key=lambda k: (k[0].__name__, k[1])),
                         ids=lambda x: getattr(x, "__name__", x))
def test_every_variant_states_its_model_and_builds_its_published_shape(module, variant):
    cfg = module.get_config(variant)
    stated = set(cfg.model.keys())
    assert set(modeling.ARCHITECTURE_FIELDS + modeling.COMPUTE_FIELDS) <= stated
    assert not stated & {"preset", "fields"}
    config = modeling.model_config(cfg, Tokenizer.load().vocab_size)
    d, n, h, f, length, e = SHAPES[module, variant]
    assert (config.hidden_size, config.num_layers, config.num_heads, config.mlp_dim,
            config.max_length, config.embed_dim) == (d, n, h, f, length, e)
    norms = {gpt: ("pre", "gelu_tanh", 1e-5), t5: ("pre", "gelu_tanh", 1e-6)}
    assert (config.norm_position, config.activation, config.layer_norm_eps) == norms.get(
        module, ("post", "gelu", 1e-12))
    if module is t5:
        assert (config.decoder_layers, config.kv_dim, config.relative_buckets,
                config.relative_max_distance) == T5_SHAPES[variant]
    assert config.vocab_size == cfg.model.vocab_size == Tokenizer.load().vocab_size


def test_the_stated_vocabulary_is_the_shipped_tokenizers():
    assert bert.EMBEDDED_VOCAB_SIZE == Tokenizer.load("embedded").vocab_size
    cfg = finetune.get_config("qa_disflqa")
    assert (cfg.model.vocab_size, cfg.model.max_length) == (bert.EMBEDDED_VOCAB_SIZE, 256)
    assert cfg.init_step is None  # the latest checkpoint of init_from


def _parsed(*overrides: str):
    """bert.py:tiny as ``launch.pretrain`` parses it, with ``--config.…`` overrides."""
    argv = ["pretrain", f"--config={os.path.join(REPO, 'launch', 'configs', 'bert.py')}:tiny",
            *overrides]
    flag_values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", flag_values=flag_values, lock_config=True,
                                    sys_argv=argv)
    flag_values(argv)
    return flag_values.config


def test_a_shape_field_overridden_on_the_command_line_trains(tmp_path, fixture_corpus):
    cfg = _parsed("--config.model.hidden_size=192", "--config.model.num_heads=3",
                  "--config.train.steps=2", "--config.init_step=4")
    assert cfg.init_step == 4 and _parsed().init_step is None
    cfg.init_step = None
    config = modeling.model_config(cfg, Tokenizer.load().vocab_size)
    assert (config.hidden_size, config.num_heads, config.kv_dim, config.mlp_dim) == (192, 3, 64,
                                                                                       512)
    for key, value in tiny_overrides(fixture_corpus).items():
        section, name = key.split(".")
        cfg[section][name] = value
    workdir = str(tmp_path / "run")
    results = pretraining.train_and_evaluate(cfg, workdir)
    assert results["step"] == 2 and np.isfinite(results["eval/mlm_loss"])
    abstract = huggingface.abstract_params(models.make_model("bert", config))
    _, step, saved = checkpoint.restore_params_subtree(workdir, "", abstract)  # it fits
    assert step == 2 and saved["encoder/embeddings/token_embed/embedding"] == (8192, 192)


def test_attention_impl_is_stated_everywhere_and_checked_in_one_line(tmp_path):
    """CPU-sized (tiny) variants compute attention with xla, the accelerator ones with auto
    (fused where it can be); a fused impl is refused with attention dropout; a workdir from
    before the field computed with xla and resumes."""
    vocab = Tokenizer.load().vocab_size
    impls = {(module.__name__, variant): module.get_config(variant).model.attention_impl
             for module, variant in SHAPES}
    assert {i for (m, v), i in impls.items() if v.startswith("tiny") or "xlnet" in m} == {"xla"}
    assert {i for (m, v), i in impls.items()
            if not v.startswith("tiny") and "xlnet" not in m} == {"auto"}
    assert finetune.get_config("sentiment_rt").model.attention_impl == "xla"
    fused = _parsed("--config.model.attention_impl=dot_product")  # bert.py:tiny: no dropout
    assert modeling.model_config(fused, vocab).attention_impl == "dot_product"
    base = bert.get_config("base")
    base.model.attention_impl = "flash"
    with pytest.raises(ValueError, match=r"^invalid TransformerConfig: attention_impl 'flash' has "
                                         r"no attention-probability dropout but "
                                         r"attention_dropout_rate=0.1; set "):
        modeling.model_config(base, vocab)
    old = json.loads(bert.get_config("tiny").to_json())
    del old["model"]["attention_impl"]
    assert modeling.model_config(ml_collections.ConfigDict(old), vocab).attention_impl == "xla"
    workdir = tmp_path / "old"
    workdir.mkdir()
    (workdir / "config.json").write_text(json.dumps(old))
    assert workdir_lib.check_config(str(workdir), bert.get_config("tiny")) == [
        "model.attention_impl: None -> 'xla'"]


@pytest.mark.parametrize("variant", sorted(T5_SHAPES))
def test_t5_variants_build_their_parameter_count(variant):
    """The registry builds T5 from the config: v1.1's parameters (with the shipped 8,192-id
    vocabulary: two [V, D] tables, shared and lm_head)."""
    import jax
    cfg = t5.get_config(variant)
    config = modeling.model_config(cfg, Tokenizer.load().vocab_size)
    model = models.make_model(cfg.model.arch, config)
    batch = {"encoder_input_ids": np.ones((1, 8), np.int32),
             "decoder_input_ids": np.ones((1, 4), np.int32)}
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), batch))["params"]
    count = sum(x.size for x in jax.tree.leaves(shapes))
    d, f, hk = config.hidden_size, config.mlp_dim, config.num_heads * config.kv_dim
    attention, mlp = 4 * d * hk, 3 * d * f
    layers = (config.num_layers * (attention + mlp + 2 * d) +
              config.decoder_layers * (2 * attention + mlp + 3 * d))
    stacks = 2 * (config.relative_buckets * config.num_heads + d)
    assert count == 2 * config.vocab_size * d + layers + stacks
