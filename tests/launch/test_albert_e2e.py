"""End to end: ALBERT pretraining with weighted objectives, resumed, then fine-tuned from it."""

import json
import os

import pytest

from launch.configs import albert
from launch.finetuning import run as finetuning
from launch.pretraining import run as pretraining
from tests.launch.test_finetune_e2e import finetune_config
from tests.launch.test_pretrain_e2e import read_metrics, tiny_overrides


def make_config(corpus: str, steps: int, variant: str = "tiny", **objectives):
    cfg = albert.get_config(variant)
    for key, value in {**tiny_overrides(corpus), "train.steps": steps}.items():
        section, name = key.split(".")
        cfg[section][name] = value
    cfg.objectives.update(objectives)
    return cfg


CORPUS = os.path.join(os.path.dirname(__file__), "..", "fixtures", "corpus_slice.txt.gz")


@pytest.fixture(scope="module")
def albert_run(tmp_path_factory):
    """A 3-step MLM + SOP run, resumed from its step-2 checkpoint."""
    workdir = str(tmp_path_factory.mktemp("albert"))
    pretraining.train_and_evaluate(make_config(CORPUS, 2), workdir)
    results = pretraining.train_and_evaluate(make_config(CORPUS, 3), workdir)
    return workdir, results


def test_mlm_sop_logs_each_objective_and_resumes(albert_run):
    workdir, results = albert_run
    assert results["resumed_from"] == 2 and results["step"] == 3
    metrics = read_metrics(workdir)
    assert sorted(metrics) == [1, 2, 3]
    for key in ("loss", "mlm_loss", "mlm_accuracy", "sop_loss", "sop_accuracy"):
        assert key in metrics[3], key
    # loss = 1·mlm + 1·sop on the same batch (the metrics are the same numbers, unweighted).
    assert metrics[3]["loss"] == pytest.approx(metrics[3]["mlm_loss"] + metrics[3]["sop_loss"],
                                               rel=1e-5)
    for key in ("eval/mlm_loss", "eval/sop_accuracy", "eval/unigram_entropy"):
        assert key in results, key
    assert not any("nsp" in k or "order" in k for k in results)


def test_order_alone_at_a_weight(tmp_path, fixture_corpus):
    cfg = make_config(fixture_corpus, 2, "tiny_order", mlm=0.0, order=0.5)
    results = pretraining.train_and_evaluate(cfg, str(tmp_path))
    metrics = read_metrics(str(tmp_path))
    assert metrics[2]["loss"] == pytest.approx(0.5 * metrics[2]["order_loss"], rel=1e-5)
    assert "mlm_loss" not in metrics[2] and "eval/mlm_loss" not in results
    assert 0.0 <= results["eval/order_accuracy"] <= 1.0


def test_finetune_restores_the_albert_encoder(tmp_path, albert_run, capsys):
    workdir, _ = albert_run
    results = finetuning.finetune(finetune_config(workdir), str(tmp_path / "ft"))
    out = capsys.readouterr().out
    assert "loaded from" in out and "encoder/shared_layer" in out
    assert "mlm_head" in out.split("not used:")[1] and "sop_head" in out.split("not used:")[1]
    assert 0.0 <= results["test"]["accuracy"] <= 1.0
    with open(os.path.join(str(tmp_path / "ft"), "config.json")) as f:
        model = json.load(f)["model"]
    assert (model["arch"], model["embed_dim"], model["num_layers"]) == ("albert", 64, 4)
