"""Remote paths (data/paths.py) read exactly as local ones: corpus globs, tokenizers, task files.

TensorFlow's in-memory filesystem (``ram://``) stands in for a bucket, as in
tests/launch/test_storage.py; files are written there with ``tf.io.gfile``. Each test uses its
own ``ram://`` directory (the filesystem lives as long as the test process).
"""

import gzip
import importlib.resources
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from data import hf_tokenizers, paths, sources, tasks, text_files, tokenizer
from data.options import TaskOptions
from data.skipped import Skipped
from tests.conftest import FIXTURES


@pytest.fixture
def ram(tmp_path, monkeypatch):
    """A fresh ``ram://`` directory; the working directory is ``tmp_path``, so a local
    directory named "ram:" (a path mistaken for a local one) would show there."""
    monkeypatch.chdir(tmp_path)
    root = f"ram://test_paths/{tmp_path.name}"
    tf.io.gfile.makedirs(root)
    yield root
    assert not any(p.name.startswith("ram") for p in tmp_path.iterdir())


def _put(local, remote: str) -> str:
    tf.io.gfile.copy(str(local), remote, overwrite=True)
    return remote


def _corpus_files(local_dir):
    """Two gzipped and one plain corpus file (a copy of the fixture's documents, split)."""
    with gzip.open(FIXTURES / "corpus_slice.txt.gz", "rt", encoding="utf-8") as f:
        documents = f.read().strip().split("\n\n")
    os.makedirs(local_dir)
    thirds = [documents[i::3] for i in range(3)]
    for name, docs in zip(("b.txt.gz", "a.txt.gz", "c.txt"), thirds, strict=True):
        text = "\n\n".join(docs) + "\n"
        if name.endswith(".gz"):
            with gzip.open(os.path.join(local_dir, name), "wt", encoding="utf-8") as f:
                f.write(text)
        else:
            with open(os.path.join(local_dir, name), "w", encoding="utf-8") as f:
                f.write(text)
    return local_dir


def test_glob_sorted_files_only_local_and_remote(ram, tmp_path):
    local = _corpus_files(tmp_path / "corpus")
    os.makedirs(local / "dir.txt.gz")  # a directory the glob matches: left out
    for name in ("b.txt.gz", "a.txt.gz", "c.txt"):
        _put(local / name, f"{ram}/corpus/{name}")
    tf.io.gfile.makedirs(f"{ram}/corpus/dir.txt.gz")
    assert paths.glob(f"{ram}/corpus/*.txt.gz") == [f"{ram}/corpus/a.txt.gz",
                                                     f"{ram}/corpus/b.txt.gz"]
    assert paths.glob(str(local / "*.txt.gz")) == [str(local / "a.txt.gz"),
                                                   str(local / "b.txt.gz")]
    assert paths.glob(f"{ram}/corpus/*.json") == [] == paths.glob(f"{ram}/nowhere/*.txt")
    assert paths.isdir(f"{ram}/corpus") and not paths.isdir(f"{ram}/corpus/c.txt")
    assert paths.exists(f"{ram}/corpus/c.txt") and not paths.exists(f"{ram}/corpus/d.txt")


def test_a_remote_corpus_glob_reads_as_its_local_copy(ram, tmp_path):
    local = _corpus_files(tmp_path / "corpus")
    for name in ("b.txt.gz", "a.txt.gz", "c.txt"):
        _put(local / name, f"{ram}/corpus/{name}")
    remote_spec = f"{ram}/corpus/*.txt.gz, {ram}/corpus/c.txt"
    local_spec = f"{local}/*.txt.gz,{local}/c.txt"
    assert sources.expand_paths(remote_spec) == [f"{ram}/corpus/{n}"
                                                 for n in ("a.txt.gz", "b.txt.gz", "c.txt")]
    remote, here = sources.read_documents(remote_spec), sources.read_documents(local_spec)
    assert len(remote) > 10 and remote == here
    assert [d.origin.replace(ram, str(tmp_path)) for d in remote] == [d.origin for d in here]
    for name in ("a.txt.gz", "c.txt"):  # line by line, gzipped or not
        assert (list(text_files.iter_lines(f"{ram}/corpus/{name}")) ==
                list(text_files.iter_lines(str(local / name))))
    for shard in range(2):
        assert (sources.read_shard_documents(remote_spec, shard, 2) ==
                sources.read_shard_documents(local_spec, shard, 2))


def test_bad_remote_corpus_paths_are_the_same_one_line_errors(ram, tmp_path):
    for root in (ram, str(tmp_path)):
        with pytest.raises(ValueError, match=r"^corpus path or glob '.*/missing/\*\.txt\.gz' "
                                             r"matches no file; check the path") as err:
            sources.expand_paths(f"{root}/missing/*.txt.gz")
        assert "\n" not in str(err.value)
        with pytest.raises(FileNotFoundError, match=r"No such file or directory: '.*/no\.txt'$"):
            paths.open(f"{root}/no.txt", "rb")
        with open(tmp_path / "binary.txt", "wb") as f:
            f.write(bytes(range(256)) * 40)
        if root == ram:
            _put(tmp_path / "binary.txt", f"{ram}/binary.txt")
        with pytest.raises(ValueError, match=r"binary\.txt: looks binary"):
            text_files.read_text_file(f"{root}/binary.txt", Skipped())
        with gzip.open(tmp_path / "cut.txt.gz", "wb") as f:
            f.write(b"One sentence.\n" * 5000)
        data = (tmp_path / "cut.txt.gz").read_bytes()
        paths.write_bytes(f"{root}/cut.txt.gz", data[:len(data) // 2])
        with pytest.raises(ValueError, match=r"cut\.txt\.gz: cannot be read as gzip"):
            text_files.read_text_file(f"{root}/cut.txt.gz", Skipped())


def test_a_remote_sentencepiece_model_loads_as_the_local_one(ram, tmp_path):
    local = importlib.resources.files("data").joinpath("tokenizers", tokenizer.EMBEDDED_MODEL)
    remote = f"{ram}/tokenizers/corpus_8k.model"
    paths.write_bytes(remote, local.read_bytes())
    got, want = tokenizer.load(remote), tokenizer.load("embedded")
    texts = ["Call me Ishmael.", "It was the best of times, it was the worst of times."]
    assert got.name == remote and got.vocab_size == want.vocab_size
    assert got.encode(texts) == want.encode(texts)
    with pytest.raises(FileNotFoundError, match=r"No such file or directory: 'ram://"):
        tokenizer.load(f"{ram}/tokenizers/missing.model")


def test_train_tokenizer_reads_and_writes_remote_paths(ram, tmp_path):
    corpus = _put(FIXTURES / "corpus_slice.txt.gz", f"{ram}/corpus.txt.gz")
    remote = tokenizer.train([corpus], f"{ram}/out/small", vocab_size=400, seed=3)
    local = tokenizer.train([str(FIXTURES / "corpus_slice.txt.gz")], str(tmp_path / "small"),
                            vocab_size=400, seed=3)
    assert remote == f"{ram}/out/small.model" and paths.exists(f"{ram}/out/small.vocab")
    got, want = tokenizer.load(remote), tokenizer.load(local)  # (the protos name the prefix)
    assert ([got.piece(i) for i in range(got.vocab_size)] ==
            [want.piece(i) for i in range(want.vocab_size)])


def test_a_remote_hugging_face_tokenizer_loads_as_the_local_one(ram, tmp_path):
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *"abcdefghijklmnopqrstuvwxyz.",
             *(f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"), "the", "cat", "sat"]
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "vocab.txt").write_text("\n".join(vocab) + "\n")
    (tmp_path / "hf" / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "BertTokenizer", "do_lower_case": True}))
    want = hf_tokenizers.load(str(tmp_path / "hf"))
    want.tokenizer.save(str(tmp_path / "tokenizer.json"))
    texts = ["The cat sat.", "the catalogue"]
    for files in (("vocab.txt", "tokenizer_config.json"), ("tokenizer.json",)):
        directory = f"{ram}/hf_{len(files)}"
        for name in files:
            _put(tmp_path / ("hf" if name != "tokenizer.json" else "") / name,
                 f"{directory}/{name}")
        got = tokenizer.load(f"hf:{directory}")
        assert got.encode(texts) == want.encode(texts)
        assert got.special_ids == want.special_ids


def test_a_remote_task_file_reads_as_its_local_copy(ram, tmp_path):
    rows = [("a fine film", "pos"), ("a dull film", "neg"), ('a "quoted" one', "pos")] * 4
    tsv = tmp_path / "train.tsv"
    tsv.write_text("text\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows), encoding="utf-8")
    jsonl = tmp_path / "train.jsonl.gz"
    with gzip.open(jsonl, "wt", encoding="utf-8") as f:
        f.write("".join(json.dumps({"text": t, "label": y}) + "\n" for t, y in rows))
    for local in (tsv, jsonl):
        remote = _put(local, f"{ram}/{local.name}")
        got, want = ({split: tasks.load_examples(TaskOptions(
            name="file", train_path=path, dev_path=path, test_path=path, labels="neg,pos"),
            split) for split in ("train", "test")} for path in (remote, str(local)))
        for split in want:
            assert got[split]["text_a"] == want[split]["text_a"], (local.name, split)
            np.testing.assert_array_equal(got[split]["labels"], want[split]["labels"])
    with pytest.raises(ValueError, match=r"cannot read task file 'ram://.*/gone.tsv' \(No such "
                                         r"file or directory\); check --config.task"):
        tasks.load_examples(TaskOptions(name="file", train_path=f"{ram}/gone.tsv",
                                        labels="neg,pos"), "train")


def test_remote_text_writes_replace_and_read_back(ram):
    with paths.open(f"{ram}/notes/a.txt", "w") as f:
        f.write("first version, longer\n")
    with paths.open(f"{ram}/notes/a.txt", "w") as f:
        f.write("second\n")
    with paths.open(f"{ram}/notes/a.txt") as f:
        assert f.read() == "second\n"
    assert paths.stat(f"{ram}/notes/a.txt")[1] == len("second\n")
    with pytest.raises(FileNotFoundError):
        paths.stat(f"{ram}/notes/b.txt")
