"""Fine-tuning pieces without training: layer-wise lr scales, the comparison plan, configs."""

import json

import numpy as np
import pytest

from launch.comparison import run as comparison
from launch.configs import compare as compare_configs
from launch.configs import finetune as finetune_configs
from launch.finetuning import run as finetuning
from launch.finetuning import setup as finetune_setup
from launch.train import modeling


def test_layer_scales_decay_from_the_top():
    params = {"encoder": {"embeddings": {"w": np.zeros(2)}, "layers_0": {"w": np.zeros(2)},
                          "layers_1": {"w": np.zeros(2)}, "pooler": {"w": np.zeros(2)}},
              "classifier_head": {"w": np.zeros(2)}}
    s = finetuning.layer_scales(params, 2, 0.5)
    assert s["classifier_head"]["w"] == 1.0 and s["encoder"]["pooler"]["w"] == 1.0
    assert s["encoder"]["layers_1"]["w"] == 0.5 and s["encoder"]["layers_0"]["w"] == 0.25
    assert s["encoder"]["embeddings"]["w"] == 0.125
    scanned = finetuning.layer_scales({"encoder": {"layers": {"w": np.zeros((2, 3, 4))}}}, 2, 0.5)
    np.testing.assert_allclose(scanned["encoder"]["layers"]["w"].ravel(), [0.25, 0.5])


def test_total_steps_from_epochs_with_a_floor():
    cfg = finetune_configs.get_config("sentiment_rt")
    cfg.train.epochs, cfg.train.batch_size = 2.0, 32
    assert finetuning.total_steps(cfg, 8544) == 534
    cfg.train.min_steps = 400
    assert finetuning.total_steps(cfg, 500) == 400
    cfg.train.steps = 7
    assert finetuning.total_steps(cfg, 500) == 7


def test_resolve_keeps_the_scratch_model_and_refuses_long_inputs():
    cfg = finetune_setup.resolve(finetune_configs.get_config("paraphrase_bible"))
    assert (cfg.model.arch, cfg.model.hidden_size, cfg.data.tokenizer) == ("bert", 128, "embedded")
    assert cfg.model.max_length == cfg.data.max_seq_length == 96
    bad = finetune_configs.get_config("paraphrase_bible")
    bad.model.max_length = 64
    with pytest.raises(ValueError, match="exceeds the model's position table"):
        finetune_setup.resolve(bad)
    with pytest.raises(ValueError, match=r"model.max_length=64\); use --config.data.max_seq_length"
                                         r"=64 or less \(or --config.model.max_length=96\)$"):
        finetune_setup.resolve(bad)


def _pretraining_workdir(tmp_path, **model) -> str:
    """A pretraining workdir's config.json (the tiny BERT's, ``model`` fields changed)."""
    from launch.configs import bert
    cfg = bert.get_config("tiny")
    cfg.model.update(model)
    (tmp_path / "config.json").write_text(cfg.to_json_best_effort())
    return str(tmp_path)


def test_resolve_takes_the_pretraining_runs_model_whole_but_what_finetuning_decides(tmp_path):
    source = _pretraining_workdir(tmp_path, hidden_size=192, num_heads=3, layer_norm_eps=1e-6)
    cfg = finetune_configs.get_config("sentiment_rt")
    cfg.init_from = source
    cfg.model.scan_layers, cfg.model.pooling = True, "mean"
    cfg.data.tokenizer = "elsewhere.model"
    resolved = finetune_setup.resolve(cfg)
    pre = json.loads((tmp_path / "config.json").read_text())["model"]
    assert {k: resolved.model[k] for k in pre if k not in finetune_setup.FINETUNE_FIELDS} == {
        k: v for k, v in pre.items() if k not in finetune_setup.FINETUNE_FIELDS}
    assert (resolved.model.hidden_size, resolved.model.layer_norm_eps) == (192, 1e-6)
    assert (resolved.model.dropout_rate, resolved.model.scan_layers) == (0.1, True)
    assert resolved.model.pooling == "mean" and resolved.data.tokenizer == "embedded"
    config = modeling.model_config(resolved, 8192)
    assert (config.hidden_size, config.num_heads, config.max_length) == (192, 3, 64)
    assert resolved.init_step is None  # the latest checkpoint
    cfg.data.max_seq_length = 128  # longer than the pretrained position table
    with pytest.raises(ValueError, match=r"data.max_seq_length=128 exceeds the model's position "
                                         r"table \(model.max_length=64, from .*\); use "
                                         r"--config.data.max_seq_length=64 or less$"):
        finetune_setup.resolve(cfg)


def test_a_tokenizer_with_more_ids_or_inputs_longer_than_the_model_are_refused_in_one_line():
    from launch.configs import bert
    cfg = bert.get_config("tiny")
    with pytest.raises(ValueError) as e:
        modeling.model_config(cfg, 9000)
    assert str(e.value) == ("the tokenizer embedded has 9000 ids but model.vocab_size=8192; set "
                            "--config.model.vocab_size=9000 (or more)")
    assert modeling.model_config(cfg, 8000).vocab_size == 8192  # rows no id looks up: allowed
    cfg.data.max_seq_length = 96
    with pytest.raises(ValueError) as e:
        modeling.model_config(cfg, 8192)
    assert str(e.value) == ("data.max_seq_length=96 exceeds the model's position table "
                            "(model.max_length=64); set --config.model.max_length=96 or "
                            "--config.data.max_seq_length=64 or less")


def test_the_full_comparison_plan():
    c = compare_configs.get_config("full")
    runs = comparison.plan(c)
    sentiment = [r for r in runs if r[0] == "sentiment_rt"]
    assert {r[1] for r in sentiment} == {500, 2000, 0}
    assert {r[2] for r in sentiment} == {"scratch", "pretrained", "pretrained+tapt"}
    assert len(sentiment) == 3 * 3 * c.seeds
    assert {r[2] for r in runs if r[0] == "paraphrase_bible"} == {"scratch", "pretrained"}
    assert {r[1] for r in runs if r[0] == "paraphrase_bible"} == {500, 2000}
    # quick's fine-tunes are the seed-0 part of full's (full pretrains longer, in its own workdir).
    quick = set(comparison.plan(compare_configs.get_config("quick")))
    assert quick < set(runs) and {r[3] for r in quick} == {0}
    c.budgets = "sentiment_rt 500"
    with pytest.raises(ValueError, match="task=n,n;task=n"):
        comparison.plan(c)
    # Both twins get the same architecture and tokenizer, whatever their init.
    pre = json.loads(compare_configs.get_config("quick").pretrain.to_json_best_effort())
    pre["model"]["max_length"] = pre["data"]["max_seq_length"] = 128
    a = comparison.finetune_config(c, "sentiment_rt", pretrain_cfg=pre, init_from="", seed=1,
                                   budget=500)
    b = comparison.finetune_config(c, "sentiment_rt", pretrain_cfg=pre, init_from="/x", seed=1,
                                   budget=500)
    assert a.model.to_dict() == b.model.to_dict() and a.model.max_length == 128
    assert {k: a.model[k] for k in modeling.ARCHITECTURE_FIELDS} == {
        k: pre["model"][k] for k in modeling.ARCHITECTURE_FIELDS}
    assert a.task.max_train_examples == 500 and b.init_from == "/x"
    with pytest.raises(ValueError, match="unknown variant"):
        compare_configs.get_config("huge")
