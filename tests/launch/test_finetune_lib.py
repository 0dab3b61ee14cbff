"""Fine-tuning pieces without training: layer-wise lr scales, the comparison plan, configs."""

import numpy as np
import pytest

from launch.comparison import run as comparison
from launch.configs import compare as compare_configs
from launch.configs import finetune as finetune_configs
from launch.finetuning import run as finetuning
from launch.finetuning import setup as finetune_setup


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


def test_resolve_fills_the_architecture_for_scratch_and_refuses_long_inputs():
    cfg = finetune_setup.resolve(finetune_configs.get_config("paraphrase_bible"))
    assert (cfg.model.arch, cfg.model.preset, cfg.data.tokenizer) == ("bert", "tiny", "embedded")
    assert cfg.model.max_length == cfg.data.max_seq_length == 96
    bad = finetune_configs.get_config("paraphrase_bible")
    bad.model.max_length = 64
    with pytest.raises(ValueError, match="exceeds the model's position table"):
        finetune_setup.resolve(bad)


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
    pre = {"model": {"arch": "bert", "preset": "tiny", "norm_position": "post",
                     "activation": "gelu", "max_length": 0},
           "data": {"tokenizer": "embedded", "max_seq_length": 128}}
    a = comparison.finetune_config(c, "sentiment_rt", pretrain_cfg=pre, init_from="", seed=1,
                                   budget=500)
    b = comparison.finetune_config(c, "sentiment_rt", pretrain_cfg=pre, init_from="/x", seed=1,
                                   budget=500)
    assert a.model.to_dict() == b.model.to_dict() and a.model.max_length == 128
    assert a.task.max_train_examples == 500 and b.init_from == "/x"
    with pytest.raises(ValueError, match="unknown variant"):
        compare_configs.get_config("huge")
