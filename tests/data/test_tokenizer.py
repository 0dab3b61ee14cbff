"""Tests for data/tokenizer.py: special ids, training, loading, round trips."""

import gzip
import pathlib

import numpy as np
import pytest
import sentencepiece as spm

from data import features, tokenizer

SPECIALS = ["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]", "<s>", "</s>"]


@pytest.fixture(scope="module")
def shipped():
    return tokenizer.Tokenizer.load()


def test_shipped_model_special_ids(shipped):
    assert shipped.vocab_size == 8192
    assert [shipped.piece(i) for i in range(features.NUM_SPECIAL_IDS)] == SPECIALS
    sp = shipped.sp
    assert (sp.pad_id(), sp.unk_id(), sp.bos_id(), sp.eos_id()) == (
        features.PAD_ID, features.UNK_ID, features.BOS_ID, features.EOS_ID)
    for i in (features.CLS_ID, features.SEP_ID, features.MASK_ID):
        assert sp.is_control(i)


def test_load_embedded_aliases(shipped):
    assert tokenizer.Tokenizer.load("embedded").vocab_size == shipped.vocab_size


def test_round_trip(shipped):
    texts = ["Call me Ishmael.", "In the beginning, God created the heavens and the earth.",
             "It is a truth universally acknowledged."]
    ids = shipped.encode(texts)
    assert all(min(x) >= features.NUM_SPECIAL_IDS for x in ids)
    assert shipped.decode(ids) == texts
    assert shipped.decode(np.asarray(ids[0])) == texts[0]


def test_is_word_start(shipped):
    starts = shipped.is_word_start()
    assert starts.shape == (shipped.vocab_size,) and starts.dtype == bool
    assert not starts[:features.NUM_SPECIAL_IDS].any()
    pieces = [shipped.piece(i) for i in range(features.NUM_SPECIAL_IDS, shipped.vocab_size)]
    assert starts[features.NUM_SPECIAL_IDS:].tolist() == [p.startswith("\u2581") for p in pieces]
    assert 0.3 < starts.mean() < 0.95


def test_train_small_vocab_follows_special_ids(fixture_corpus, tmp_path):
    path = tokenizer.train([fixture_corpus], str(tmp_path / "small"), vocab_size=500)
    tok = tokenizer.Tokenizer.load(path)
    assert tok.vocab_size == 500
    assert [tok.piece(i) for i in range(features.NUM_SPECIAL_IDS)] == SPECIALS
    assert tok.decode(tok.encode(["the house of the Lord"])) == ["the house of the Lord"]


def test_train_is_deterministic(fixture_corpus, tmp_path):
    a = tokenizer.train([fixture_corpus], str(tmp_path / "a"), vocab_size=400, seed=3)
    b = tokenizer.train([fixture_corpus], str(tmp_path / "b"), vocab_size=400, seed=3)
    assert (tmp_path / "a.vocab").read_text() == (tmp_path / "b.vocab").read_text()
    assert a != b


def test_load_rejects_foreign_ids(fixture_corpus, tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text(gzip.decompress(pathlib.Path(fixture_corpus).read_bytes()).decode())
    prefix = str(tmp_path / "foreign")  # SentencePiece's defaults: unk=0, bos=1, eos=2, no pad.
    spm.SentencePieceTrainer.train(input=str(text), model_prefix=prefix, vocab_size=300,
                                   character_coverage=0.99, minloglevel=2)
    with pytest.raises(ValueError, match=r"'<unk>' is id 0, expected 1.*Fix: train the model"):
        tokenizer.Tokenizer.load(prefix + ".model")
