"""End to end: pretrain → fine-tune (from the checkpoint and from scratch) → evaluate → compare."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from data import paths
from launch.comparison import run as comparison
from launch.configs import compare as compare_configs
from launch.configs import finetune as finetune_configs
from launch.evaluation import finetuned
from launch.finetuning import run as finetuning
from launch.pretraining import run as pretraining
from tests.launch.test_pretrain_e2e import make_config


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A 4-step pretraining run on the fixture corpus (position table of 64)."""
    run_dir = str(tmp_path_factory.mktemp("pretrain"))
    pretraining.train_and_evaluate(make_config(
        os.path.join(os.path.dirname(__file__), "..", "fixtures", "corpus_slice.txt.gz"), 4),
        run_dir)
    return run_dir


def finetune_config(init_from: str, **train):
    cfg = finetune_configs.get_config("sentiment_rt")
    cfg.init_from = init_from
    cfg.data.max_seq_length = 32
    cfg.train.batch_size = 8
    cfg.train.steps = 6
    cfg.train.evals = 2
    cfg.train.log_every = 2
    for k, v in train.items():
        cfg.train[k] = v
    return cfg


def _snapshot(path: str) -> dict:
    out = {}
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            out[full] = (os.path.getsize(full), os.path.getmtime(full))
    return out


def test_finetune_from_checkpoint_resumes_and_evaluates(tmp_path, pretrained, capsys):
    before = _snapshot(pretrained)
    run_dir = str(tmp_path / "ft")
    # What a run killed in its first save leaves: an unfinished step, no complete checkpoint.
    os.makedirs(os.path.join(run_dir, "checkpoints", "3.orbax-checkpoint-tmp-1"))
    results = finetuning.finetune(finetune_config(pretrained), run_dir)
    out = capsys.readouterr().out
    assert "loaded from" in out and "encoder/layers_0" in out
    assert "new (randomly initialised): classifier_head/classifier" in out
    assert "mlm_head" in out.split("not used:")[1]
    assert results["steps"] == 6 and [c["step"] for c in results["curve"]] == [3, 6]
    assert results["test"]["examples"] == 1021 and 0.0 <= results["test"]["accuracy"] <= 1.0
    assert 0.0 <= results["test"]["ece"] <= 1.0  # calibration in every classifier's results
    with open(os.path.join(run_dir, "results.json")) as f:
        assert json.load(f)["best_step"] == results["best_step"]
    # Again on the same workdir: restored at the last step, nothing retrained, the same answer.
    again = finetuning.finetune(finetune_config(pretrained), run_dir)
    assert "resumed from the fine-tuning checkpoint at step 6" in capsys.readouterr().out
    assert again["test"] == results["test"]
    assert _snapshot(pretrained) == before  # the pretraining run is only read

    reviews = tmp_path / "reviews.tsv"
    reviews.write_text("text\tlabel\nA moving, funny and wise film.\tpositive\n"
                       "Tedious and badly acted.\tnegative\nA dull mess.\tnegative\n")
    metrics = finetuned.evaluate_workdir(run_dir, data=str(reviews))
    assert metrics["examples"] == 3 and metrics["accuracy"] in (0.0, 1 / 3, 2 / 3, 1.0)
    with open(os.path.join(run_dir, "eval", "reviews.tsv", "results.json")) as f:
        assert json.load(f)["accuracy"] == metrics["accuracy"]
    # The same file on a bucket (TF's ram:// standing in for gs://), and the results there too.
    bucket = f"ram://finetune_e2e/{tmp_path.name}"
    paths.write_bytes(f"{bucket}/reviews.tsv", reviews.read_bytes())
    assert finetuned.evaluate_workdir(run_dir, data=f"{bucket}/reviews.tsv",
                                      output=f"{bucket}/eval") == metrics
    with paths.open(f"{bucket}/eval/results.json") as f:
        assert json.load(f)["data"] == f"{bucket}/reviews.tsv"

    # A damaged best/: launch.evaluate scores the run's newest checkpoint instead, says so in
    # one line, and changes nothing of best/.
    best = os.path.join(run_dir, "best", str(results["best_step"]))
    with open(os.path.join(best, "params", "_METADATA"), "wb") as f:
        f.write(b"\x00garbage{")
    damaged = _snapshot(os.path.join(run_dir, "best"))
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-m", "launch.evaluate", f"--workdir={run_dir}",
                           f"--data={reviews}", f"--output={tmp_path / 'eval'}"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    assert (f"{run_dir}/best cannot be read (step {results['best_step']}: " in done.stderr and
            "using the parameters of the run's checkpoint at step 6 instead" in done.stderr)
    with open(tmp_path / "eval" / "results.json") as f:
        assert json.load(f)["step"] == 6  # keep_checkpoints=1: the newest stands in
    assert _snapshot(os.path.join(run_dir, "best")) == damaged


def test_unfit_checkpoint_is_refused_and_nothing_is_written(tmp_path, pretrained):
    before = _snapshot(pretrained)
    source = tmp_path / "pretrain"  # a copy whose config.json no longer fits its checkpoint
    shutil.copytree(pretrained, source)
    config = json.loads((source / "config.json").read_text())
    config["model"]["max_length"] = 32  # the checkpoint's position table has 64 rows
    (source / "config.json").write_text(json.dumps(config))
    cfg = finetune_config(str(source))
    run_dir = tmp_path / "ft"
    with pytest.raises(ValueError, match=r"position_embed/embedding: checkpoint \(64, 128\), "
                                         r"this model \(32, 128\)"):
        finetuning.finetune(cfg, str(run_dir))
    assert not run_dir.exists()
    assert _snapshot(pretrained) == before


def test_input_longer_than_the_position_table_is_refused(tmp_path, pretrained):
    cfg = finetune_config(pretrained)
    cfg.data.max_seq_length = 128
    with pytest.raises(ValueError, match="max_seq_length=128 exceeds the model's position table"):
        finetuning.finetune(cfg, str(tmp_path / "ft"))


@pytest.mark.slow
def test_compare_runs_every_variant_and_writes_the_report(tmp_path, pretrained, capsys):
    c = compare_configs.get_config("quick")
    c.pretrain_from = pretrained
    c.tasks, c.seeds = "sentiment_rt", 2
    c.tapt_tasks, c.tapt_steps = "sentiment_rt", 2
    c.budgets = ""
    c.finetune.train.steps, c.finetune.train.batch_size = 4, 8
    c.finetune.train.evals = 1
    with c.unlocked():
        c.finetune.data = {"max_seq_length": 32}
    out_dir = str(tmp_path / "compare")
    summary = comparison.compare(c, out_dir)
    heads = [x for x in summary["comparisons"] if x["split"] == "test" and x["main"]]
    assert sorted(x["variant"] for x in heads) == ["pretrained", "pretrained+tapt"]
    assert all(x["n"] == 2 and x["n_baseline"] == 2 for x in heads)
    for name in ("report.md", "results.json", "summary.png"):
        assert os.path.getsize(os.path.join(out_dir, name)) > 0
    # The adaptive corpus holds the task's training texts only.
    with open(os.path.join(out_dir, "tapt", "sentiment_rt", "corpus.txt")) as f:
        lines = [x for x in f.read().splitlines() if x]
    assert len(lines) == 8544
    assert "pretrained vs scratch" in capsys.readouterr().out
    # Re-running reuses every finished run.
    again = comparison.compare(c, out_dir)
    assert again["comparisons"] == summary["comparisons"]


def test_span_qa_finetunes_and_reports_squad_metrics(tmp_path, pretrained):
    cfg = finetune_configs.get_config("qa_disflqa")
    cfg.init_from = pretrained
    cfg.data.max_seq_length, cfg.data.doc_stride, cfg.data.max_query_length = 64, 32, 24
    cfg.train.batch_size, cfg.train.steps, cfg.train.evals = 8, 3, 1
    results = finetuning.finetune(cfg, str(tmp_path / "qa"))
    test = results["test"]
    assert results["main_metric"] == "f1"
    assert test["total"] == test["HasAns_total"] + test["NoAns_total"] == 849
    assert 0.0 <= test["exact"] <= test["f1"] <= 100.0
