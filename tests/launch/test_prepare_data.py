"""launch.prepare_data: a corpus tokenised into TFRecord shards with a manifest, progress lines
and one-line errors."""

import json
import os
import subprocess
import sys

import numpy as np

from tests.data.stream_corpus import write_split_corpus
from tests.launch.test_pretrain_e2e import REPO


def _run(*args):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", "launch.prepare_data", *args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300)


def test_writes_shards_manifest_and_counts(tmp_path):
    text = write_split_corpus(str(tmp_path / "text"))[len("stream:"):]
    out = str(tmp_path / "prepared")
    done = _run(f"--corpus={text}", "--tokenizer=embedded", f"--output={out}", "--num_shards=3")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "documents" in done.stdout and "MB/s" in done.stdout
    assert f"--config.data.corpus=prepared:{out}" in done.stdout
    with open(os.path.join(out, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["format_version"] == 1
    tokenizer = manifest["tokenizer"]
    assert tokenizer["vocab_size"] == 8192 and len(tokenizer["sha256"]) == 64
    assert [s["file"] for s in manifest["shards"]] == [
        f"shard-{i:05d}-of-00003.tfrecord" for i in range(3)]
    assert all(os.path.exists(os.path.join(out, s["file"])) for s in manifest["shards"])
    assert len(manifest["source_files"]) == 4 and manifest["arguments"]["num_shards"] == 3
    counts = np.load(os.path.join(out, "unigram_counts.npy"), allow_pickle=False)
    assert counts.shape == (3, 8192)
    assert counts.sum(axis=1).tolist() == [s["tokens"] for s in manifest["shards"]]


def test_bad_input_is_one_line(tmp_path):
    done = _run("--corpus=/no/such/*.txt", f"--output={tmp_path}/x")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1].startswith("error: corpus path or glob")
    done = _run("--corpus=embedded", f"--output={tmp_path}/y", "--num_shards=0")
    assert done.returncode != 0 and "--num_shards=0: use at least 1" in done.stderr
