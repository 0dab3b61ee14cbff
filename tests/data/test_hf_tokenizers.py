"""data.hf_tokenizers reproduces transformers' token ids on sample text, for a WordPiece vocab.txt
(BERT), a byte-level BPE vocab.json + merges.txt (GPT-2) and a spiece.model (ALBERT, XLNet), each
built here from the fixture corpus."""

import collections
import gzip
import json

import pytest

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

import sentencepiece as spm  # noqa: E402

from data import hf_tokenizers  # noqa: E402
from tests.conftest import FIXTURES  # noqa: E402

SAMPLES = ["Call me Ishmael. Some years ago—never mind how long precisely—having little money,",
           "  THE Café's   naïve résumé: 3,141 items (x2) cost $12.50; it's done!\tOK?  ",
           "And God said, Let there be light: and there was light.  ``Quoted'' 你好"]


@pytest.fixture(scope="module")
def lines() -> list[str]:
    with gzip.open(FIXTURES / "corpus_slice.txt.gz", "rt", encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()][:3000]


def _compare(ours, directory) -> None:
    theirs = transformers.AutoTokenizer.from_pretrained(str(directory))
    for text in SAMPLES:
        assert ours.encode(text) == theirs(text)["input_ids"], text


def test_wordpiece_matches_bert_tokenizer(lines, tmp_path):
    words = collections.Counter(w.lower() for line in lines for w in line.split() if w.isalpha())
    chars = sorted({c for line in lines for c in line.lower() if not c.isspace()} |
                   set("0123456789$"))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars),
             *(w for w, _ in words.most_common(300) if len(w) > 1), "##ing", "##ed", "##s"]
    (tmp_path / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "BertTokenizer", "do_lower_case": True}))
    ours = hf_tokenizers.load(str(tmp_path))
    assert isinstance(ours, hf_tokenizers.WordPiece)
    assert ours.vocab["[UNK]"] in ours.encode(SAMPLES[2])  # 你 is not in the vocab
    _compare(ours, tmp_path)


def test_byte_level_bpe_matches_gpt2_tokenizer(lines, tmp_path):
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator(lines, vocab_size=600, special_tokens=["<|endoftext|>"],
                            show_progress=False)
    bpe.save_model(str(tmp_path))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "GPT2Tokenizer"}))
    ours = hf_tokenizers.load(str(tmp_path))
    assert isinstance(ours, hf_tokenizers.ByteLevelBpe)
    _compare(ours, tmp_path)


@pytest.mark.parametrize("tokenizer_class", ["AlbertTokenizer", "XLNetTokenizer"])
def test_sentencepiece_matches_albert_and_xlnet_tokenizers(lines, tmp_path, tokenizer_class):
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=str(tmp_path / "spiece"), vocab_size=400,
        pad_id=0, unk_id=1, bos_id=-1, eos_id=-1, num_threads=1, minloglevel=2,
        user_defined_symbols=["[CLS]", "[SEP]", "[MASK]", "<sep>", "<cls>"])
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": tokenizer_class}))
    ours = hf_tokenizers.load(str(tmp_path))
    assert isinstance(ours, hf_tokenizers.SentencePieceHf)
    _compare(ours, tmp_path)


def test_directory_without_tokenizer_files_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no vocab\.txt, vocab\.json \+ merges\.txt or "
                       r"spiece\.model in"):
        hf_tokenizers.load(str(tmp_path))
