"""Tests for data/sources.py: text files, the embedded corpus, and a local TFDS builder.

tests/fixtures/corpus_slice.txt.gz holds 19 documents: the first 4 documents of at least 3
sentences from austen, bible_web, mobydick and pydocs, and the 3 shortest works of shakespeare
(all from data/corpora, in sorted file order, joined with blank lines, gzip mtime 0).
"""

import gzip
import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from data import features, pipeline, sources

TFDS_NAME = "pretrax_tiny_text"


class PretraxTinyText(tfds.core.GeneratorBasedBuilder):
    """Eight short articles with a ``text`` feature, prepared offline into a tmp data_dir."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict({"text": tfds.features.Text()}))

    def _split_generators(self, dl_manager):
        del dl_manager
        return {"train": self._generate_examples()}

    def _generate_examples(self):
        for i in range(8):
            text = (f"Article {i} begins here. It has a second sentence! Does it ask? "
                    f"Yes, it does.\nA new paragraph about ship {i}. \"Quoted\" words end it.")
            yield i, {"text": text}


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    data_dir = str(tmp_path_factory.mktemp("tfds"))
    PretraxTinyText(data_dir=data_dir).download_and_prepare()
    return data_dir


def _write(path, text, compress=False):
    data = text.encode("utf-8") if isinstance(text, str) else text
    if compress:
        data = gzip.compress(data)
    path.write_bytes(data)
    return str(path)


def test_plain_file_documents_split_on_blank_lines(tmp_path):
    path = _write(tmp_path / "a.txt", "\n\n  One.  \nTwo.\n\n\n   \nThree.\n\nFour.\nFive.")
    assert sources.read_documents(path) == [["One.", "Two."], ["Three."], ["Four.", "Five."]]


def test_gzip_detected_by_magic_bytes(tmp_path):
    path = _write(tmp_path / "no_suffix", "A.\nB.\n\nC.\n", compress=True)
    assert sources.read_documents(path) == [["A.", "B."], ["C."]]


def test_glob_and_comma_list(tmp_path):
    _write(tmp_path / "b.txt", "B.\n")
    _write(tmp_path / "a.txt.gz", "A.\n", compress=True)
    _write(tmp_path / "c.txt", "C.\n")
    docs = sources.read_documents(f"{tmp_path}/c.txt, {tmp_path}/[ab].txt*")
    assert docs == [["C."], ["A."], ["B."]]


def test_fixture_corpus(fixture_corpus):
    assert os.path.getsize(fixture_corpus) <= 100_000
    docs = sources.read_documents(fixture_corpus)
    assert len(docs) == 19 and all(docs)


def test_a_line_that_is_not_utf8_is_skipped_and_named(tmp_path, caplog):
    path = _write(tmp_path / "bad.txt", b"Fine.\n\nAlso fine.\nCaf\xe9 au lait.\nGood.\n")
    assert sources.read_documents(path) == [["Fine."], ["Also fine.", "Good."]]
    assert "1 line that is not valid UTF-8 was skipped (" + path + ":4); re-encode" in caplog.text


def test_empty_glob_and_empty_file(tmp_path):
    with pytest.raises(ValueError, match=r"matches no file"):
        sources.read_documents(str(tmp_path / "*.nothing"))
    empty = _write(tmp_path / "empty.txt", "\n \n\n")
    with pytest.raises(ValueError, match=r"no sentences in .*empty\.txt; a corpus file holds"):
        sources.read_documents(empty)


def test_embedded_corpus_files():
    names = [os.path.basename(p) for p in sources.embedded_corpus_files()]
    assert names == ["austen.txt.gz", "bible_web.txt.gz", "mobydick.txt.gz", "pydocs.txt.gz",
                     "shakespeare.txt.gz"]
    assert sources.corpus_files("embedded") == sources.embedded_corpus_files()


def test_split_sentences():
    text = "Mr Smith left. 'Why?' she asked! 3 cats came.\n\nv1.2 is out. it was lower.\n"
    assert sources.split_sentences(text) == [
        "Mr Smith left.", "'Why?' she asked!", "3 cats came.", "v1.2 is out. it was lower."]


def test_tfds_local_builder(tfds_dir):
    docs = sources.read_documents(f"tfds:{TFDS_NAME}:text", tfds_data_dir=tfds_dir)
    assert len(docs) == 8
    assert sorted(d[0] for d in docs) == [f"Article {i} begins here." for i in range(8)]
    assert all(len(d) == 6 and d[-1] == "\"Quoted\" words end it." for d in docs)
    assert sources.read_documents(f"tfds:{TFDS_NAME}", tfds_data_dir=tfds_dir) == docs


def test_tfds_errors(tfds_dir, tmp_path):
    with pytest.raises(RuntimeError, match=r"pretrax_no_such_set.*tfds_data_dir=<that directory>"):
        sources.read_documents("tfds:pretrax_no_such_set", tfds_data_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"no feature 'body'"):
        sources.read_documents(f"tfds:{TFDS_NAME}:body", tfds_data_dir=tfds_dir)
    # The error names the flag of the binary that reads the corpus (launch.prepare_data's here).
    with pytest.raises(RuntimeError, match=r"--config\.data\.tfds_data_dir=<that directory>"):
        sources.read_documents("tfds:pretrax_no_such_set", tfds_data_dir=str(tmp_path))
    with pytest.raises(RuntimeError, match=r" --tfds_data_dir=<that directory>"):
        next(sources.tfds_texts("tfds:pretrax_no_such_set", str(tmp_path), flag="--tfds_data_dir"))


def test_tfds_through_make_dataset(tfds_dir, data_options):
    opts = data_options(f"tfds:{TFDS_NAME}:text", tfds_data_dir=tfds_dir, max_seq_length=32,
                        max_predictions_per_seq=5, eval_fraction=0.2)
    batch = next(pipeline.make_dataset(opts.corpus, opts.instances, "train", batch_size=4, seed=0))
    want = features.shapes("bert_pretrain", B=4, L=32, P=5)
    assert {k: (v.shape, v.dtype.name) for k, v in batch.items()} == want
    assert np.all(batch["token_ids"][:, 0] == features.CLS_ID)


def test_shards_are_files_or_dealt_documents(tmp_path, monkeypatch):
    paths = [_write(tmp_path / f"{n}.txt", f"{n} one.\n\n{n} two.\n\n{n} three.\n")
             for n in ("a", "b", "c")]
    spec = f"{tmp_path}/*.txt"
    assert sources.read_shard_documents(spec, 0, 1) == sources.read_documents(spec)
    opened = []
    read = sources.read_text_file
    monkeypatch.setattr(sources, "read_text_file",
                        lambda p, *a: opened.append(p) or read(p, *a))
    assert sources.read_shard_documents(spec, 1, 2) == [["b one."], ["b two."], ["b three."]]
    assert opened == [paths[1]] and not sources.shards_share_files(spec, 3)
    # Fewer files than shards: all are read, the documents dealt round-robin.
    assert sources.shards_share_files(spec, 4)
    assert sources.read_shard_documents(spec, 1, 4) == [["a two."], ["b three."]]
    assert sum(len(sources.read_shard_documents(spec, s, 4)) for s in range(4)) == 9
    with pytest.raises(ValueError, match=r"data shard 4 is not in \[0, 4\)"):
        sources.read_shard_documents(spec, 4, 4)


def test_tfds_shards_are_even_splits(tfds_dir):
    corpus = f"tfds:{TFDS_NAME}:text"
    whole = sources.read_documents(corpus, tfds_data_dir=tfds_dir)
    assert sources.read_shard_documents(corpus, 0, 1, tfds_data_dir=tfds_dir) == whole
    halves = [sources.read_shard_documents(corpus, s, 2, tfds_data_dir=tfds_dir)
              for s in range(2)]
    assert len(halves[0]) == len(halves[1]) == 4
    assert sorted(halves[0] + halves[1]) == sorted(whole)
    assert not sources.shards_share_files(corpus, 16)
    with pytest.raises(RuntimeError, match=r"data shard 9 of 16: .*fewer data.num_shards"):
        sources.read_shard_documents(corpus, 9, 16, tfds_data_dir=tfds_dir)
