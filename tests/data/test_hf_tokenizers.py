"""data.hf_tokenizers reproduces transformers' token ids on sample text, for a WordPiece vocab.txt
(BERT), a byte-level BPE vocab.json + merges.txt (GPT-2) and a spiece.model (ALBERT, XLNet), each
built here from the fixture corpus, and for the tokenizer.json alone that transformers saves of
each; their special ids are transformers' too, and ``data.tokenizer.load("hf:DIR")`` serves them
to the pipeline, with character offsets for span QA."""

import collections
import dataclasses
import gzip
import json

import pytest

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

import numpy as np  # noqa: E402
import sentencepiece as spm  # noqa: E402

from data import hf_tokenizers  # noqa: E402
from data import tokenizer as tokenizer_lib  # noqa: E402
from data.features import SpecialIds  # noqa: E402
from tests.conftest import FIXTURES  # noqa: E402

SAMPLES = ["Call me Ishmael. Some years ago—never mind how long precisely—having little money,",
           "  THE Café's   naïve résumé: 3,141 items (x2) cost $12.50; it's done!\tOK?  ",
           "And God said, Let there be light: and there was light.  ``Quoted'' 你好"]


@pytest.fixture(scope="module")
def lines() -> list[str]:
    with gzip.open(FIXTURES / "corpus_slice.txt.gz", "rt", encoding="utf-8") as f:
        return [line.strip() for line in f if line.strip()][:3000]


def _compare(ours, directory):
    """Ids with and without special tokens equal transformers'; returns their tokenizer. Also from
    the tokenizer.json alone that transformers 5 saves (no vocab.txt, vocab.json, spiece.model)."""
    theirs = transformers.AutoTokenizer.from_pretrained(str(directory))
    theirs.save_pretrained(str(directory / "saved"))
    for name in ("vocab.txt", "vocab.json", "spiece.model"):
        (directory / "saved" / name).unlink(missing_ok=True)
    again = hf_tokenizers.load(str(directory / "saved"))
    assert type(again.tokenizer.model) is type(ours.tokenizer.model)
    if isinstance(ours.tokenizer.model, tokenizers.models.Unigram):
        # transformers adds the specials an spiece.model lacks (XLNet's <mask> here) past its
        # vocabulary; read from the spiece.model they stay None, never an id the model lacks.
        pairs = zip(dataclasses.astuple(again.special_ids), dataclasses.astuple(ours.special_ids),
                    strict=True)
        assert all(b is None or a == b for a, b in pairs)
    else:
        assert again.special_ids == ours.special_ids
    assert again.encode_with_specials(SAMPLES) == ours.encode_with_specials(SAMPLES)
    for text in SAMPLES:
        assert ours.encode_with_specials([text])[0] == theirs(text)["input_ids"], text
        assert ours.encode([text])[0] == theirs(text, add_special_tokens=False)["input_ids"], text
    loaded = tokenizer_lib.load(f"hf:{directory}")  # the pipeline's interface: a batch, no specials
    assert loaded.encode(SAMPLES) == [ours.encode([t])[0] for t in SAMPLES]
    assert (loaded.special_ids, loaded.vocab_size) == (ours.special_ids, ours.vocab_size)
    for text in SAMPLES:  # offsets: transformers' offset mapping (a bare "▁" covers nothing)
        ids, begins, ends = loaded.encode_offsets([text])[0]
        want = theirs(text, add_special_tokens=False, return_offsets_mapping=True)
        tokens = theirs.convert_ids_to_tokens(want["input_ids"])
        assert ids == want["input_ids"]
        assert begins == [b for b, _ in want["offset_mapping"]], text
        assert ends == [b if t == "\u2581" else e
                        for t, (b, e) in zip(tokens, want["offset_mapping"], strict=True)], text
    return theirs


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
    assert isinstance(ours.tokenizer.model, tokenizers.models.WordPiece)
    unk = ours.tokenizer.token_to_id("[UNK]")
    assert unk in ours.encode_with_specials([SAMPLES[2]])[0]  # 你 is not in the vocab
    theirs = _compare(ours, tmp_path)
    assert ours.special_ids == SpecialIds(
        pad=theirs.pad_token_id, unk=theirs.unk_token_id, cls=theirs.cls_token_id,
        sep=theirs.sep_token_id, mask=theirs.mask_token_id, bos=None, eos=None)
    assert ours.special_ids.cls == 2 and ours.special_ids.mask == 4


def test_byte_level_bpe_matches_gpt2_tokenizer(lines, tmp_path):
    bpe = tokenizers.ByteLevelBPETokenizer()
    bpe.train_from_iterator(lines, vocab_size=600, special_tokens=["<|endoftext|>"],
                            show_progress=False)
    bpe.save_model(str(tmp_path))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "GPT2Tokenizer"}))
    ours = hf_tokenizers.load(str(tmp_path))
    assert isinstance(ours.tokenizer.model, tokenizers.models.BPE)
    theirs = _compare(ours, tmp_path)
    eos = theirs.eos_token_id
    assert eos == ours.tokenizer.token_to_id("<|endoftext|>")
    # GPT-2's one special token is its bos, eos and padding; it has no [CLS], [SEP] or [MASK].
    assert ours.special_ids == SpecialIds(pad=eos, unk=None, cls=None, sep=None, mask=None,
                                          bos=eos, eos=eos)
    rng = np.random.default_rng(0)
    for ids in [theirs(t)["input_ids"] + [eos] for t in SAMPLES] + [
            rng.integers(0, ours.vocab_size, 40).tolist() for _ in range(5)]:  # broken UTF-8 too
        assert ours.decode(ids) == theirs.decode(ids), ids


@pytest.mark.parametrize("tokenizer_class", ["AlbertTokenizer", "XLNetTokenizer"])
def test_sentencepiece_matches_albert_and_xlnet_tokenizers(lines, tmp_path, tokenizer_class):
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_prefix=str(tmp_path / "spiece"), vocab_size=400,
        pad_id=0, unk_id=1, bos_id=-1, eos_id=-1, num_threads=1, minloglevel=2,
        user_defined_symbols=["[CLS]", "[SEP]", "[MASK]", "<sep>", "<cls>"])
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": tokenizer_class}))
    ours = hf_tokenizers.load(str(tmp_path))
    assert isinstance(ours.tokenizer.model, tokenizers.models.Unigram)
    theirs = _compare(ours, tmp_path)
    special = ours.special_ids
    for name in ("pad", "unk", "cls", "sep"):
        assert getattr(special, name) == getattr(theirs, f"{name}_token_id"), name
    if tokenizer_class == "AlbertTokenizer":
        assert special.mask == theirs.mask_token_id == ours.tokenizer.token_to_id("[MASK]")
    else:  # this spiece.model has no <mask>: None, never a wrong id
        assert special.mask is None and (special.cls, special.sep) == (
            ours.tokenizer.token_to_id("<cls>"), ours.tokenizer.token_to_id("<sep>"))


def test_directory_without_tokenizer_files_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no tokenizer\.json, vocab\.txt, vocab\.json \+ "
                       r"merges\.txt or spiece\.model in .*: save the tokenizer there with "
                       r"save_pretrained\(DIR\) too"):
        hf_tokenizers.load(str(tmp_path))


def test_pretraining_refuses_a_hugging_face_tokenizer(tmp_path):
    """The pretraining pipelines build their rows from pretrax's own special ids."""
    with pytest.raises(ValueError, match=r"data\.tokenizer=hf:.* is a Hugging Face tokenizer "
                       r"\(set by launch\.convert\): launch\.finetune and launch\.generate use "
                       r"it, but pretraining needs one of pretrax's SentencePiece models; use "
                       r"--config\.data\.tokenizer=embedded"):
        tokenizer_lib.Tokenizer.load(f"hf:{tmp_path}")
    with pytest.raises(FileNotFoundError, match=r"no tokenizer\.json, vocab\.txt"):
        tokenizer_lib.load(f"hf:{tmp_path}")


FIX = r"save the tokenizer there again with transformers' save_pretrained\(DIR\)"


@pytest.mark.parametrize("files, problem", [
    ({"tokenizer.json": "{not json"}, r"tokenizer\.json: not a readable tokenizer\.json \(.+\); "
     + FIX + r", or remove it to use the vocab\.txt, vocab\.json \+ merges\.txt or spiece\.model "
     r"beside it$"),
    ({"tokenizer.json": '{"model": {"type": "WordPiece"}}'}, r"tokenizer\.json: not a readable "
     r"tokenizer\.json \(.+\)"),
    ({"tokenizer.json": b"\xff\xfe\x00garbage"}, r"tokenizer\.json: not a readable tokenizer"),
    ({"vocab.txt": "[PAD]\n", "tokenizer_config.json": "[1, 2]"},
     r"tokenizer_config\.json: a JSON list, not an object; " + FIX + "$"),
    ({"vocab.txt": "[PAD]\n", "special_tokens_map.json": "{"},
     r"special_tokens_map\.json: not a readable JSON file \(.+\); " + FIX + "$"),
    ({"vocab.txt": b"\xff\xfe[PAD]\n"}, r"vocab\.txt: not a readable text file \(.+\); " + FIX),
    ({"vocab.txt": "[PAD]\nthe\n"}, r"vocab\.txt has no \[UNK\] token, which WordPiece gives "
     r"for a word it cannot spell; " + FIX),
    ({"vocab.json": '{"a": 0}'}, r"merges\.txt not found: GPT-2's vocab\.json needs its merges; "
     + FIX + "$"),
    ({"vocab.json": '{"a": "zero"}', "merges.txt": "a b\n"}, r"vocab\.json \(token → id\) or "
     r"merges\.txt \(two tokens a line\) is malformed; " + FIX + "$"),
    ({"spiece.model": b"\x0a\xff\xff\xff"}, r"spiece\.model: not a SentencePiece model \(.+\); "
     r"download it again$"),
])
def test_a_damaged_tokenizer_file_is_named_in_one_line_with_the_fix(tmp_path, files, problem):
    for name, content in files.items():
        if isinstance(content, bytes):
            (tmp_path / name).write_bytes(content)
        else:
            (tmp_path / name).write_text(content)
    with pytest.raises((ValueError, FileNotFoundError), match=problem) as e:
        tokenizer_lib.load(f"hf:{tmp_path}")
    assert "\n" not in str(e.value) and str(e.value).startswith(str(tmp_path))
