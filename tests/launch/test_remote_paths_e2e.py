"""End to end: pretraining with its corpus, tokenizer and workdir on a bucket (``ram://``, TF's
in-memory filesystem, standing in for GCS as in test_storage.py).

``ram://`` lives in one process's memory, so the run is in-process
(``launch.pretraining.run.train_and_evaluate``, as test_pretrain_e2e.py runs it), not the
binary in a subprocess. Its checkpoints go to a local directory: Orbax reaches buckets through
etils.epath and TensorStore, which know ``gs://`` but not TF's ``ram://``; every other workdir
file (config, metrics, TensorBoard, results) is written to ``ram://``.
"""

import importlib.resources
import itertools
import json

import numpy as np
import tensorflow as tf

from data import paths, tokenizer
from launch.pretraining import run as pretraining
from launch.pretraining.inputs import objective_data
from launch.train import checkpoint, writers
from launch.train import workdir as workdir_lib
from tests.launch.test_pretrain_e2e import make_config


def _first_batches(cfg, n=2):
    stream = objective_data(("mlm", "nsp")).make_dataset(cfg.data, "train", batch_size=8, seed=0)
    return list(itertools.islice(stream, n))


def test_pretrain_with_corpus_tokenizer_and_workdir_on_a_bucket(tmp_path, monkeypatch,
                                                                fixture_corpus):
    monkeypatch.chdir(tmp_path)  # a local "ram:" directory would appear here
    root = f"ram://e2e/{tmp_path.name}"
    tf.io.gfile.makedirs(f"{root}/corpus")
    tf.io.gfile.copy(fixture_corpus, f"{root}/corpus/part-0.txt.gz")
    model = importlib.resources.files("data").joinpath("tokenizers", tokenizer.EMBEDDED_MODEL)
    paths.write_bytes(f"{root}/tokenizers/corpus_8k.model", model.read_bytes())
    cfg = make_config(f"{root}/corpus/*.txt.gz", 3)
    cfg.data.tokenizer = f"{root}/tokenizers/corpus_8k.model"
    make_manager = checkpoint.make_manager
    monkeypatch.setattr(checkpoint, "make_manager",
                        lambda workdir, train: make_manager(str(tmp_path / "local"), train))

    # The input is the local copies' batch for batch.
    local = make_config(fixture_corpus, 3)
    for got, want in zip(_first_batches(cfg), _first_batches(local), strict=True):
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)

    workdir = f"{root}/run"
    final = pretraining.train_and_evaluate(cfg, workdir)
    with paths.open(f"{workdir}/results.json") as f:
        results = json.load(f)
    assert results["step"] == 3 and results["eval/mlm_loss"] == final["eval/mlm_loss"] > 0
    assert workdir_lib.read_config(workdir)["data"]["corpus"] == f"{root}/corpus/*.txt.gz"
    assert [r["step"] for r in writers.read_jsonl(workdir) if "loss" in r] == [1, 2, 3]
    assert paths.isdir(f"{workdir}/tensorboard")
    assert "3" in [p.name for p in (tmp_path / "local" / "checkpoints").iterdir()]
    assert not any(p.name.startswith("ram") for p in tmp_path.iterdir())
