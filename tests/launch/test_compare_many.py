"""Model choice among initialisations (launch/comparison/many.py, inits.py, ranking.py): every
family's context is reportable, bad initialisations are refused before anything runs, each is
ranked against its own architecture's scratch twin."""

import json
import math
import os

import numpy as np
import pytest
from scipy import stats

from launch.comparison import inits, many, ranking
from launch.comparison import run as comparison
from launch.configs import compare as compare_configs


def _small(c, tasks="sentiment_rt", seeds=2):
    c.tasks, c.seeds, c.budgets, c.train_examples = tasks, seeds, "", 32
    c.finetune.train.steps, c.finetune.train.batch_size, c.finetune.train.evals = 2, 8, 1
    c.finetune.data.max_seq_length = 32
    c.zeroshot_shots, c.probe_examples = "", 0
    return c


def test_context_of_every_family_without_nsp(gpt_run):
    """The old report read eval/nsp_accuracy and failed with KeyError for GPT (issue 23)."""
    run_dir, results = gpt_run
    assert "eval/nsp_accuracy" not in results
    text = comparison._context(compare_configs.get_config("quick"), run_dir, 60.0)["pretraining"]
    assert "gpt clm" in text and f"{results['step']} steps" in text and "clm_loss" in text
    info = inits.describe("g", run_dir)
    assert info["arch"] == "gpt" and info["parameters"] > 0 and info["flops"] > 0
    cfg = json.load(open(os.path.join(run_dir, "config.json")))
    assert info["tokens"] == results["step"] * cfg["train"]["batch_size"] * 32
    assert inits.intrinsic(run_dir)["heldout_clm_loss"] == pytest.approx(results["eval/clm_loss"])


def test_parse_refuses_bad_init_lists():
    assert inits.parse("a=/x, b=/y") == {"a": "/x", "b": "/y"}
    for bad in ("a", "a=/x,a=/y", "scratch=/x", "=/x"):
        with pytest.raises(ValueError, match="inits="):
            inits.parse(bad)


def test_bad_initialisation_is_refused_before_anything_runs(tmp_path, bert_run):
    c = _small(compare_configs.get_config("quick"))
    c.inits = f"bert={bert_run[0]}"
    c.finetune.data.max_seq_length = 128  # more than its 64 positions
    out = str(tmp_path / "cmp")
    with pytest.raises(ValueError, match="initialisation 'bert' cannot fine-tune sentiment_rt"):
        many.compare(c, out)
    assert not os.path.exists(os.path.join(out, "runs"))
    c.inits = f"x={tmp_path}"
    with pytest.raises(ValueError, match="has no config.json"):
        many.compare(c, str(tmp_path / "cmp2"))


def test_twins_and_plan():
    bert = {"model": {"arch": "bert", "hidden_size": 8, "pooling": "x"},
            "data": {"tokenizer": "embedded"}}
    gpt = {"model": {"arch": "gpt", "hidden_size": 8}, "data": {"tokenizer": "embedded"}}
    cfgs = {"a": bert, "b": {**bert, "model": {**bert["model"], "pooling": "y"}}, "g": gpt}
    twins = many.scratch_twins(cfgs)
    assert twins == {"a": "scratch:bert", "b": "scratch:bert", "g": "scratch:gpt"}
    assert many.scratch_twins({"a": bert}) == {"a": "scratch"}
    c = _small(compare_configs.get_config("quick"), tasks="sentiment_rt,qa_disflqa", seeds=1)
    runs, skipped = many.plan(c, cfgs, twins)
    assert skipped == ["g × qa_disflqa"]  # GPT has no span-QA head
    assert [r[2] for r in runs if r[0] == "qa_disflqa"] == ["scratch:bert", "a", "b"]
    assert {r[2] for r in runs if r[0] == "sentiment_rt"} == {*cfgs, "scratch:bert",
                                                              "scratch:gpt"}


def test_spearman_interval_holds_rho():
    x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    y = [0.1, 0.3, 0.2, 0.5, 0.4, 0.9]
    out = ranking.spearman(x, y)
    assert out["rho"] == pytest.approx(stats.spearmanr(x, y).statistic)
    assert out["ci"][0] <= out["rho"] <= out["ci"][1] <= 1.0
    assert ranking.spearman([1, 2], [3, 4])["rho"] is None


def test_a_tasks_probe_is_correlated_with_that_task_only():
    def group(task, variant, mean):
        return {"task": task, "variant": variant, "main_metric": "accuracy",
                "metrics": {"test": {"accuracy": {"n": 3, "mean": mean, "std": 0.0}}}}
    names = ["a", "b", "c", "d"]
    summary = {"groups": [group(t, v, m) for t in ("t1", "t2")
                          for v, m in zip(names, (0.1, 0.2, 0.3, 0.4), strict=True)]}
    intrinsic = {v: {"probe/t1/accuracy": p, "heldout_mlm_loss": 5 - p}
                 for v, p in zip(names, (0.5, 0.6, 0.7, 0.8), strict=True)}
    intrinsic["d"].pop("heldout_mlm_loss")
    corrs = {(c["measure"], c["task"]): c for c in ranking.correlations(summary, intrinsic)}
    assert set(corrs) == {("probe/t1/accuracy", "t1"), ("heldout_mlm_loss", "t1"),
                          ("heldout_mlm_loss", "t2")}
    assert corrs["probe/t1/accuracy", "t1"]["rho"] == pytest.approx(1.0)
    assert corrs["heldout_mlm_loss", "t2"]["n"] == 3
    assert corrs["heldout_mlm_loss", "t2"]["rho"] == pytest.approx(-1.0)
    md = "\n".join(ranking.correlations_md(list(corrs.values())))
    assert "| probe/t1/accuracy | t1 | 4 | +1.00 |" in md
    two = ranking.correlations(summary, {"a": {"x": 1.0}, "b": {"x": 2.0}})
    assert "Too few points (or no spread) for a ρ: x." in "\n".join(ranking.correlations_md(two))


def test_inits_ranked_against_their_twins(tmp_path, bert_run, gpt_run, capsys):
    c = _small(compare_configs.get_config("quick"))
    c.inits = f"bert={bert_run[0]},gpt={gpt_run[0]}"
    c.probe_examples, c.eval_examples = 32, 64
    out = str(tmp_path / "cmp")
    summary = many.compare(c, out)
    heads = {x["variant"]: x for x in summary["comparisons"] if x["split"] == "test" and x["main"]}
    assert heads["bert"]["baseline"] == "scratch:bert" and heads["gpt"]["baseline"] == "scratch:gpt"
    assert all(x["n"] == 2 and x["ci"] is not None for x in heads.values())
    rows = {r["name"]: r for r in summary["ranking"]["rows"]}
    assert set(rows) == {"bert", "gpt", "scratch:bert", "scratch:gpt"}
    means = [r["cells"]["sentiment_rt"]["mean"] for r in rows.values()]
    best = [r["name"] for r in rows.values() if r["cells"]["sentiment_rt"]["best"]]
    assert [rows[b]["cells"]["sentiment_rt"]["mean"] for b in best] == [max(means)]
    assert rows["bert"]["parameters"] > 0 and rows["bert"]["flops"] > 0
    report = open(os.path.join(out, "report.md")).read()
    assert "## Initialisations by task" in report and "**" in report
    assert "Does a cheap measure predict" in report
    saved = json.load(open(os.path.join(out, "ranking.json")))
    corrs = {c["measure"]: c for c in saved["correlations"]}
    # Losses of different objectives are never ranked together: one point each, no ρ.
    assert set(corrs) == {"heldout_mlm_loss", "heldout_clm_loss", "probe/sentiment_rt/accuracy"}
    assert corrs["heldout_mlm_loss"]["n"] == 1 and corrs["heldout_mlm_loss"]["rho"] is None
    probed = corrs["probe/sentiment_rt/accuracy"]  # the twins, probed at random init, count too
    assert sorted(probed["initialisations"]) == sorted(rows) and probed["n"] == 4
    for name in rows:
        saved_probe = json.load(open(os.path.join(out, "probe", name.replace(":", "_") + ".json")))
        assert 0.0 <= saved_probe["probe/sentiment_rt/accuracy"] <= 1.0
    assert all(math.isfinite(x) for x in means)
    assert "== ranking" in capsys.readouterr().out
    again = many.compare(c, out)  # finished runs are reused: the same figures
    assert again["comparisons"] == summary["comparisons"]
    assert np.isfinite([x["diff"] for x in again["comparisons"]]).all()


@pytest.mark.slow
def test_objectives_smoke_end_to_end(tmp_path):
    """compare.py:objectives_smoke, whole: 2 pretrainings (MLM, CLM) of 4 steps at matched
    tokens, 2 tasks (GPT has no QA head: left out, said so), 2 seeds, zero-shot GPT scoring."""
    c = compare_configs.get_config("objectives_smoke")
    out = str(tmp_path / "objectives")
    summary = many.compare(c, out)
    described = json.load(open(os.path.join(out, "ranking.json")))
    tokens = {k: v["tokens"] for k, v in described["initialisations"].items()}
    assert tokens == {"bert_mlm": 4 * 4096, "gpt_clm": 4 * 4096}  # matched compute
    assert described["skipped"] == ["gpt_clm × qa_disflqa"]
    rows = {r["name"]: r for r in summary["ranking"]["rows"]}
    assert set(rows["gpt_clm"]["cells"]) == {"sentiment_rt"}
    assert set(rows["bert_mlm"]["cells"]) == {"sentiment_rt", "qa_disflqa"}
    assert all(cell["n"] == 2 for r in rows.values() for cell in r["cells"].values())
    assert any(k.startswith("zeroshot/sentiment_rt/k2/") for k in described["intrinsic"]["gpt_clm"])
    for variant in ("bert_mlm", "gpt_clm", "scratch:bert", "scratch:gpt"):
        assert "probe/sentiment_rt/accuracy" in described["intrinsic"][variant]
    report = open(os.path.join(out, "report.md")).read()
    assert "Not run (no fine-tuning model for the task's kind): gpt_clm × qa_disflqa" in report
