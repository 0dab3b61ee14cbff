"""data.sentencepiece_hf.exact gives SentencePiece's own ids (and text back) with the tokenizers
library: the shipped unigram model and a BPE model trained here, on the fixture corpus and on text
with accents, full-width and CJK characters, tabs and runs of spaces; what it cannot convert, and
what is not a SentencePiece model, is refused in one line."""

import gzip

import pytest
import sentencepiece as spm

from data import sentencepiece_hf
from data import tokenizer as tokenizer_lib
from tests.conftest import FIXTURES

ODD = ["  THE Café's   naïve résumé: 3,141 items (x2) cost $12.50; it's done!\tOK?  ",
       "你好 ｆｕｌｌ\u00a0width… ① ﬁ", "a\n\nb\tc", "\u2581x \u2581 y", "", " "]


@pytest.fixture(scope="module")
def texts() -> list[str]:
    with gzip.open(FIXTURES / "corpus_slice.txt.gz", "rt", encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f] + ODD


def _check(sp: spm.SentencePieceProcessor, texts: list[str]):
    converted = sentencepiece_hf.exact(sentencepiece_hf.read_proto(
        sp.serialized_model_proto(), "test"))
    ids = [e.ids for e in converted.encode_batch(texts, add_special_tokens=False)]
    assert ids == sp.encode(texts)
    known = [x for x in ids if sp.unk_id() not in x]  # <unk>: SentencePiece decodes " ⁇ "
    assert [converted.decode(x) for x in known] == sp.decode(known)
    return converted


def test_the_shipped_unigram_model_gives_sentencepiece_ids(texts):
    converted = _check(tokenizer_lib.Tokenizer.load().sp, texts)
    # pretrax's special pieces are special tokens, matched whole in the text (fill-mask's
    # "[MASK]"), where SentencePiece spells them out
    assert [converted.token_to_id(t) for t in ("<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]",
                                               "<s>", "</s>")] == list(range(7))
    assert converted.encode("[MASK] x", add_special_tokens=False).ids[0] == 4


def test_a_bpe_model_gives_sentencepiece_ids(texts, tmp_path):
    path = tokenizer_lib.train([str(FIXTURES / "corpus_slice.txt.gz")], str(tmp_path / "bpe"),
                               vocab_size=500, model_type="bpe")
    _check(spm.SentencePieceProcessor(model_file=path), texts)


def test_what_cannot_be_converted_is_refused_in_one_line(tmp_path):
    path = tokenizer_lib.train([str(FIXTURES / "corpus_slice.txt.gz")], str(tmp_path / "word"),
                               vocab_size=300, model_type="word")
    proto = sentencepiece_hf.read_proto(open(path, "rb").read(), path)
    with pytest.raises(ValueError, match=r"word\.model is a SentencePiece word model; Hugging "
                       r"Face's tokenizer\.json holds unigram and bpe ones: train the tokenizer "
                       r"with --model_type=unigram \(the default\) or bpe$"):
        sentencepiece_hf.exact(proto, path)
    for garbage in (b"\x0a\xff\xff\xff", b"", b"not a model at all"):
        with pytest.raises(ValueError, match=r"^x\.model: not a SentencePiece model \(.*\); "
                           r"download it again$"):
            sentencepiece_hf.read_proto(garbage, "x.model")
