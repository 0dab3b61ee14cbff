"""Workdirs written before the run configs stated their model field by field (config.json with
``model.preset``, or a converted checkpoint's ``model.fields`` JSON string): every reader says so
in one line, with what to do, instead of a KeyError or a list of changed keys; nothing is
written."""

import json
import os
import re
import subprocess
import sys

import pytest

from launch.configs import finetune as finetune_configs
from launch.conversion import huggingface
from launch.evaluation import finetuned, perplexity
from launch.finetuning import run as finetuning
from launch.finetuning import setup as finetune_setup
from launch.generation import run as generating
from launch.pretraining import run as pretraining
from launch.train import workdir as workdir_lib
from tests.launch.test_bad_config import ENV, _listing
from tests.launch.test_pretrain_e2e import REPO, make_config

# config.json as the code before the change wrote them (abridged by hand).
_DATA = {"corpus": "embedded", "tokenizer": "embedded", "max_seq_length": 64, "num_shards": 0}
_TRAIN = {"steps": 1200, "batch_size": 64, "learning_rate": 0.002}
OLD = {
    "bert": {"seed": 0, "objective": "bert_pretrain", "init_from": "", "init_step": -1,
             "model": {"arch": "bert", "preset": "tiny", "dropout_rate": 0.0,
                       "attention_dropout_rate": 0.0, "norm_position": "post",
                       "activation": "gelu", "dtype": "float32", "scan_layers": False,
                       "remat": "none", "max_length": 0},
             "data": _DATA, "train": _TRAIN},
    "gpt": {"seed": 0, "objective": "clm", "init_from": "", "init_step": -1,
            "model": {"arch": "gpt", "preset": "gpt_tiny", "dropout_rate": 0.0,
                      "attention_dropout_rate": 0.0, "norm_position": "pre",
                      "activation": "gelu_tanh", "dtype": "float32", "scan_layers": False,
                      "remat": "none", "max_length": 0},
            "data": {**_DATA, "max_seq_length": 128}, "train": _TRAIN},
    "converted": {"seed": 0, "objective": "bert_pretrain", "converted_from": "/models/bert",
                  "model": {"arch": "bert", "preset": "bert_base", "max_length": 512,
                            "fields": json.dumps({"vocab_size": 30522, "hidden_size": 768,
                                                  "num_layers": 12, "num_heads": 12,
                                                  "mlp_dim": 3072, "max_length": 512,
                                                  "pad_id": 0}),
                            "dropout_rate": 0.1, "attention_dropout_rate": 0.1,
                            "activation": "gelu", "norm_position": "post"},
                  "data": {**_DATA, "tokenizer": "hf:/models/bert", "max_seq_length": 512}},
    "finetuned": {"seed": 0, "init_from": "/runs/bert_tiny", "init_step": -1,
                  "task": {"name": "sentiment_rt", "kind": "classification"},
                  "model": {"arch": "bert", "preset": "tiny", "fields": "", "max_length": 64,
                            "pooling": "pooler", "dropout_rate": 0.1},
                  "data": {"tokenizer": "embedded", "max_seq_length": 64}},
}


def _old(tmp_path, kind: str) -> str:
    workdir = tmp_path / kind
    workdir.mkdir()
    (workdir / "config.json").write_text(json.dumps(OLD[kind], indent=2))
    return str(workdir)


def _message(workdir: str, keys: str = "model.preset") -> str:
    return (f"{workdir} predates pretrax's explicit model configs (its config.json has {keys}, "
            "which pretrax no longer reads): re-run pretraining (or fine-tuning) into a new "
            "--workdir, or re-convert a converted checkpoint with python -m launch.convert "
            "--from_hf=DIR --workdir=NEW")


def _exactly(workdir: str, keys: str = "model.preset") -> str:
    return f"^{re.escape(_message(workdir, keys))}$"


@pytest.mark.parametrize("kind", sorted(OLD))
def test_reading_an_old_config_says_so_in_one_line(tmp_path, kind):
    workdir = _old(tmp_path, kind)
    keys = "model.preset and model.fields" if "fields" in OLD[kind]["model"] else "model.preset"
    with pytest.raises(ValueError) as e:
        workdir_lib.read_config(workdir)
    assert str(e.value) == _message(workdir, keys)


def test_every_reader_of_an_old_workdir_says_so_and_writes_nothing(tmp_path, fixture_corpus):
    bert, gpt = _old(tmp_path, "bert"), _old(tmp_path, "gpt")
    before = _listing(bert)
    with pytest.raises(ValueError, match=_exactly(bert)):  # resuming it
        pretraining.train_and_evaluate(make_config(fixture_corpus, 2), bert)
    assert _listing(bert) == before
    cfg = finetune_configs.get_config("sentiment_rt")
    cfg.init_from = bert
    with pytest.raises(ValueError, match=_exactly(bert)):
        finetune_setup.resolve(cfg)
    with pytest.raises(ValueError, match=_exactly(bert)):
        finetuning.finetune(cfg, str(tmp_path / "ft"))
    assert not (tmp_path / "ft").exists()
    with pytest.raises(ValueError, match=_exactly(gpt)):
        generating.load_model(gpt)
    with pytest.raises(ValueError, match=_exactly(gpt)):
        perplexity.is_clm_workdir(gpt)
    ft = _old(tmp_path, "finetuned")
    with pytest.raises(ValueError, match=_exactly(ft, "model.preset and model.fields")):
        finetuned.evaluate_workdir(ft)
    converted = _old(tmp_path, "converted")
    with pytest.raises(ValueError, match=r"model\.preset and model\.fields, which pretrax no "
                                         r"longer reads\): .* re-convert"):
        huggingface.export_hf(converted, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("binary,args", [
    ("launch.convert", ["--to_hf={out}"]),
    ("launch.evaluate", []),
])
def test_binaries_say_it_in_one_line(tmp_path, binary, args):
    workdir = _old(tmp_path, "bert")
    out = subprocess.run(
        [sys.executable, "-m", binary, f"--workdir={workdir}",
         *[a.format(out=tmp_path / "out") for a in args]],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stderr[-3000:]
    assert out.stderr.strip().splitlines()[-1] == f"error: {_message(workdir)}"
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "out").exists() and os.listdir(workdir) == ["config.json"]
