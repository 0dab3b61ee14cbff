"""Run configs name their objectives one way, ``objectives = {name: weight}``: each family's
config, per-name flag overrides, refusal of unknown names, and no reader of the old
``objective`` field."""

import ast
import pathlib
import sys

import pytest
from absl import flags
from ml_collections import config_flags

from launch.configs import albert, bert, gpt, xlnet
from launch.pretraining import inputs
from launch.pretraining import run as pretraining
from launch.train import modeling
from objectives import registry
from tests.launch.test_pretrain_e2e import read_metrics, tiny_overrides

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("module,variant,want", [
    (bert, "tiny", {"mlm": 1.0, "nsp": 1.0}), (albert, "tiny", {"mlm": 1.0, "sop": 1.0}),
    (albert, "tiny_order", {"mlm": 1.0, "order": 1.0}), (gpt, "tiny", {"clm": 1.0}),
    (xlnet, "tiny", {"plm": 1.0})])
def test_every_family_names_its_objectives_with_weights(module, variant, want):
    cfg = module.get_config(variant)
    assert "objective" not in cfg
    assert modeling.objective_weights(cfg) == want
    data = inputs.objective_data(tuple(want))
    token_level = [n for n in want if registry.OBJECTIVES[n].baseline is not None]
    assert data.baseline == registry.OBJECTIVES[token_level[0]].baseline


def _parse(monkeypatch, *args: str):
    """The run config as ``launch.pretrain`` would parse these flags (overrides are read from
    ``sys.argv``)."""
    argv = ["pretrain", *args]
    monkeypatch.setattr(sys, "argv", argv)
    values = flags.FlagValues()
    config_flags.DEFINE_config_file("config", flag_values=values)
    values(argv)
    return values.config


def test_a_flag_sets_one_objective_weight(monkeypatch):
    cfg = _parse(monkeypatch, "--config=launch/configs/bert.py:tiny", "--config.objectives.nsp=0")
    assert modeling.objective_weights(cfg) == {"mlm": 1.0}
    assert modeling.model_options(cfg) == {}  # BERT keeps its fixed heads
    cfg = _parse(monkeypatch, "--config=launch/configs/albert.py:tiny", "--config.objectives.sop=0",
                 "--config.objectives.order=0.5")
    assert modeling.objective_weights(cfg) == {"mlm": 1.0, "order": 0.5}
    assert modeling.model_options(cfg) == {"mlm": True, "sentence_heads": (("order", 9),)}


def test_mixed_input_families_are_refused():
    with pytest.raises(ValueError, match="no common pretraining input.*sentence: mlm, nsp, sop, "
                                         "order; clm: clm; plm: plm"):
        inputs.objective_data(("mlm", "clm"))


def test_an_unknown_objective_is_refused_in_one_line(tmp_path):
    cfg = bert.get_config("tiny")
    with cfg.unlocked():
        cfg.objectives.sentence_shuffle = 1.0
    with pytest.raises(ValueError) as e:
        pretraining.train_and_evaluate(cfg, str(tmp_path / "run"))
    assert str(e.value) == ("unknown objectives ['sentence_shuffle']; known: clm, mlm, nsp, "
                            "order, plm, seq2seq, sop")


def test_bert_without_nsp_pretrains_mlm_alone(tmp_path, fixture_corpus, monkeypatch):
    overrides = {**tiny_overrides(fixture_corpus), "train.steps": 2}
    cfg = _parse(monkeypatch, "--config=launch/configs/bert.py:tiny", "--config.objectives.nsp=0",
                 *(f"--config.{k}={v}" for k, v in overrides.items()))
    results = pretraining.train_and_evaluate(cfg, str(tmp_path))
    metrics = read_metrics(str(tmp_path))
    assert sorted(metrics) == [1, 2]
    for step in (1, 2):
        assert not any("nsp" in k for k in metrics[step])
        assert metrics[step]["loss"] == pytest.approx(metrics[step]["mlm_loss"], rel=1e-6)
    assert results["eval/mlm_loss"] > 0 and "eval/unigram_entropy" in results
    assert not any("nsp" in k for k in results)


def _reads_of_objective(path: pathlib.Path) -> list[int]:
    """Lines that read a config's former ``objective`` field: ``x.objective``, ``x["objective"]``,
    ``x.get("objective")`` or ``"objective" in x``."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr == "objective":
            lines.append(node.lineno)
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            lines += [node.lineno] if node.slice.value == "objective" else []
        elif isinstance(node, (ast.Call, ast.Compare)):
            args = node.args if isinstance(node, ast.Call) else [node.left]
            if any(isinstance(a, ast.Constant) and a.value == "objective" for a in args):
                lines.append(node.lineno)
    return lines


def test_nothing_reads_the_former_objective_field(tmp_path):
    # workdir.py may name it, to explain a workdir written before ``objectives``.
    skip = {ROOT / "launch" / "train" / "workdir.py"}
    files = [p for package in ("launch", "objectives", "lm")
             for p in sorted((ROOT / package).glob("**/*.py")) if p not in skip]
    found = {str(p.relative_to(ROOT)): lines for p in files if (lines := _reads_of_objective(p))}
    assert not found
    # The check sees each form of read.
    probe = tmp_path / "probe.py"
    probe.write_text('cfg.objective\ncfg.get("objective")\n"objective" in cfg\ncfg["objective"]\n')
    assert sorted(_reads_of_objective(probe)) == [1, 2, 3, 4]
