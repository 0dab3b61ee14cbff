"""Tokenizers of Hugging Face checkpoints, read from their own files, reproducing transformers' ids.

* ``WordPiece`` — BERT's ``vocab.txt`` (basic tokenizer: clean, split punctuation and CJK, lower
  case and strip accents when uncased; then greedy longest-match WordPiece with ``##``).
* ``ByteLevelBpe`` — GPT-2's ``vocab.json`` + ``merges.txt``.
* ``SentencePieceHf`` — ALBERT's / XLNet's ``spiece.model`` with transformers' preprocessing.

``load(directory)`` picks the one whose files are there. ``encode(text)`` returns the ids that the
transformers tokenizer returns with its default ``add_special_tokens=True``; ``ids(text)`` the same
without special tokens; ``special_ids`` the tokenizer's own ``data.features.SpecialIds`` (BERT's
[PAD]=0 … from vocab.txt; GPT-2 has only ``<|endoftext|>``, which is its bos, eos and padding).
``HfTokenizer`` (``data.tokenizer.load("hf:DIR")``) puts one of them behind the interface the input
pipeline uses for pretrax's SentencePiece models (batch ``encode`` without specials, ``vocab_size``,
``special_ids``, ``decode``).

Why not tensorflow-text's WordPiece (as the issue first proposed): tensorflow-text pins the full
``tensorflow`` package, which conflicts with the ``tensorflow-cpu`` that pretrax installs; these
pure-Python tokenizers reproduce transformers' ids (tests/data/test_hf_tokenizers.py) without it.
The pipeline tokenises each text once, before tf.data, so they cost nothing per step.

Plain Python (and SentencePiece); nothing here imports Flax or reads the network.
"""

from __future__ import annotations

import json
import os
import unicodedata

import numpy as np
import regex
import sentencepiece as spm

from data.features import SpecialIds


def _tokenizer_config(directory: str) -> dict:
    path = os.path.join(directory, "tokenizer_config.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _token(cfg: dict, name: str, default: str) -> str:
    """``tokenizer_config.json``'s ``{name}_token`` (a string, or an AddedToken dict), else
    ``default``."""
    value = cfg.get(f"{name}_token", default)
    return value.get("content", default) if isinstance(value, dict) else (value or default)


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return any(lo <= cp <= hi for lo, hi in (
        (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
        (0x2B740, 0x2B81F), (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F)))


class WordPiece:
    """BERT's tokenizer from ``vocab.txt``: ``[CLS] … [SEP]`` ids, as ``BertTokenizer``."""

    def __init__(self, vocab: dict[str, int], lower_case: bool = True, max_chars: int = 100,
                 tokens: dict[str, str] | None = None):
        self.vocab, self.lower_case, self.max_chars = vocab, lower_case, max_chars
        self.tokens = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]",
                       "mask": "[MASK]", **(tokens or {})}
        self.pieces = {i: p for p, i in vocab.items()}

    @classmethod
    def from_dir(cls, directory: str) -> WordPiece:
        with open(os.path.join(directory, "vocab.txt"), encoding="utf-8") as f:
            vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
        cfg = _tokenizer_config(directory)
        tokens = {n: _token(cfg, n, d) for n, d in (("pad", "[PAD]"), ("unk", "[UNK]"),
                                                    ("cls", "[CLS]"), ("sep", "[SEP]"),
                                                    ("mask", "[MASK]"))}
        return cls(vocab, cfg.get("do_lower_case", True), tokens=tokens)

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    @property
    def special_ids(self) -> SpecialIds:
        """[PAD], [UNK], [CLS], [SEP], [MASK] (None when vocab.txt lacks one); no bos/eos."""
        ids = {n: self.vocab.get(t) for n, t in self.tokens.items()}
        return SpecialIds(bos=None, eos=None, **ids)

    def _words(self, text: str) -> list[str]:
        chars = []
        for ch in text:
            cp = ord(ch)
            if cp == 0 or cp == 0xFFFD or (unicodedata.category(ch).startswith("C")
                                           and ch not in "\t\n\r"):
                continue
            chars.append(f" {ch} " if _is_cjk(cp) else " " if ch.isspace() else ch)
        words = []
        for word in "".join(chars).split():
            if self.lower_case:
                word = "".join(c for c in unicodedata.normalize("NFD", word.lower())
                               if unicodedata.category(c) != "Mn")
            piece = ""
            for ch in word:
                if _is_punctuation(ch):
                    words += [piece, ch] if piece else [ch]
                    piece = ""
                else:
                    piece += ch
            if piece:
                words.append(piece)
        return words

    def _pieces(self, word: str) -> list[str]:
        if len(word) > self.max_chars:
            return [self.tokens["unk"]]
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    break
                end -= 1
            if end == start:
                return [self.tokens["unk"]]
            pieces.append(piece)
            start = end
        return pieces

    def ids(self, text: str) -> list[int]:
        """The ids of ``text``, without [CLS]/[SEP]."""
        return [self.vocab[p] for w in self._words(text) for p in self._pieces(w)]

    def encode(self, text: str) -> list[int]:
        return [self.vocab[self.tokens["cls"]], *self.ids(text), self.vocab[self.tokens["sep"]]]

    def decode(self, ids: list[int]) -> str:
        """Pieces joined by spaces, ``##`` continuations glued on (BertTokenizer's decode, without
        its clean-up of spaces before punctuation)."""
        return " ".join(self.pieces[int(i)] for i in ids).replace(" ##", "")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte → printable character table."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
            *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


class ByteLevelBpe:
    """GPT-2's byte-level BPE from ``vocab.json`` + ``merges.txt`` (no special tokens added)."""

    PATTERN = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+"""
                            r"""|\s+(?!\S)|\s+""")

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]],
                 eos_token: str = "<|endoftext|>"):
        self.vocab, self.eos_token = vocab, eos_token
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        self.byte_chars = _bytes_to_unicode()
        self.char_bytes = {c: b for b, c in self.byte_chars.items()}
        self.pieces = {i: p for p, i in vocab.items()}

    @classmethod
    def from_dir(cls, directory: str) -> ByteLevelBpe:
        with open(os.path.join(directory, "vocab.json"), encoding="utf-8") as f:
            vocab = json.load(f)
        with open(os.path.join(directory, "merges.txt"), encoding="utf-8") as f:
            merges = [tuple(line.split()) for line in f
                      if line.strip() and not line.startswith("#version")]
        cfg = _tokenizer_config(directory)
        return cls(vocab, merges, _token(cfg, "eos", "<|endoftext|>"))

    @property
    def vocab_size(self) -> int:
        return max(self.vocab.values()) + 1

    @property
    def special_ids(self) -> SpecialIds:
        """GPT-2 has one special token, ``<|endoftext|>``: bos, eos and padding (padding is
        masked by position, never attended to or scored); no [CLS], [SEP], [MASK] or unk."""
        eos = self.vocab.get(self.eos_token)
        return SpecialIds(pad=eos, unk=None, cls=None, sep=None, mask=None, bos=eos, eos=eos)

    def _bpe(self, word: str) -> list[str]:
        parts = list(word)
        while len(parts) > 1:
            pairs = [(self.ranks.get(p, float("inf")), i)
                     for i, p in enumerate(zip(parts, parts[1:], strict=False))]
            rank, i = min(pairs)
            if rank == float("inf"):
                break
            first, second = parts[i], parts[i + 1]
            merged, j = [], 0
            while j < len(parts):  # merge every occurrence of the pair, left to right
                if j < len(parts) - 1 and (parts[j], parts[j + 1]) == (first, second):
                    merged.append(first + second)
                    j += 2
                else:
                    merged.append(parts[j])
                    j += 1
            parts = merged
        return parts

    def ids(self, text: str) -> list[int]:
        ids = []
        for token in self.PATTERN.findall(text):
            chars = "".join(self.byte_chars[b] for b in token.encode("utf-8"))
            ids += [self.vocab[p] for p in self._bpe(chars)]
        return ids

    def encode(self, text: str) -> list[int]:
        return self.ids(text)  # GPT2Tokenizer adds no special tokens

    def decode(self, ids: list[int]) -> str:
        """GPT2Tokenizer's decode: pieces → bytes → UTF-8 (invalid bytes become U+FFFD)."""
        chars = "".join(self.pieces[int(i)] for i in ids)
        return bytes(self.char_bytes[c] for c in chars).decode("utf-8", errors="replace")


ALBERT_TOKENS = {"pad": "<pad>", "unk": "<unk>", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]",
                 "bos": "[CLS]", "eos": "[SEP]"}
XLNET_TOKENS = {"pad": "<pad>", "unk": "<unk>", "cls": "<cls>", "sep": "<sep>", "mask": "<mask>",
                "bos": "<s>", "eos": "</s>"}


class SentencePieceHf:
    """ALBERT's / XLNet's ``spiece.model`` with transformers' preprocessing: ``[CLS] … [SEP]``
    (ALBERT) or ``… <sep> <cls>`` (XLNet)."""

    def __init__(self, model_file: str, lower_case: bool = True, keep_accents: bool = False,
                 xlnet: bool = False, tokens: dict[str, str] | None = None):
        self.sp = spm.SentencePieceProcessor(model_file=model_file)
        self.lower_case, self.keep_accents, self.xlnet = lower_case, keep_accents, xlnet
        self.tokens = dict(XLNET_TOKENS if xlnet else ALBERT_TOKENS, **(tokens or {}))

    @classmethod
    def from_dir(cls, directory: str) -> SentencePieceHf:
        cfg = _tokenizer_config(directory)
        xlnet = "XLNet" in cfg.get("tokenizer_class", "")
        defaults = XLNET_TOKENS if xlnet else ALBERT_TOKENS
        return cls(os.path.join(directory, "spiece.model"), cfg.get("do_lower_case", not xlnet),
                   cfg.get("keep_accents", False), xlnet,
                   tokens={n: _token(cfg, n, d) for n, d in defaults.items()})

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def _id(self, piece: str) -> int | None:
        i = self.sp.piece_to_id(piece)
        return i if self.sp.id_to_piece(i) == piece else None

    @property
    def special_ids(self) -> SpecialIds:
        """ALBERT's [CLS] [SEP] [MASK] <pad> <unk> (bos = [CLS], eos = [SEP], as
        AlbertTokenizer); XLNet's <cls> <sep> <mask> <pad> <unk> <s> </s>. None when the model
        lacks the piece."""
        return SpecialIds(**{n: self._id(t) for n, t in self.tokens.items()})

    def decode(self, ids: list[int]) -> str:
        return self.sp.decode([int(i) for i in ids])

    def ids(self, text: str) -> list[int]:
        """The ids of ``text``, without special tokens."""
        text = " ".join(text.strip().split()).replace("``", '"').replace("''", '"')
        if not self.keep_accents:
            text = "".join(c for c in unicodedata.normalize("NFKD", text)
                           if not unicodedata.combining(c))
        if self.lower_case:
            text = text.lower()
        return [self.sp.piece_to_id(p) for p in self.sp.encode(text, out_type=str)]

    def encode(self, text: str) -> list[int]:
        ids = self.ids(text)
        if self.xlnet:
            return ids + [self.sp.piece_to_id("<sep>"), self.sp.piece_to_id("<cls>")]
        return [self.sp.piece_to_id("[CLS]"), *ids, self.sp.piece_to_id("[SEP]")]


def from_tokenizer_json(directory: str):
    """A ``WordPiece`` or ``ByteLevelBpe`` from ``tokenizer.json`` alone (transformers 5's
    ``save_pretrained`` writes no vocab.txt / vocab.json).

    Raises:
      ValueError: for a tokenizer.json whose model is neither (e.g. a Unigram, which needs the
        spiece.model).
    """
    path = os.path.join(directory, "tokenizer.json")
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    model, cfg = spec.get("model", {}), _tokenizer_config(directory)
    pre = (spec.get("pre_tokenizer") or {}).get("type")
    if model.get("type") == "WordPiece":
        lower = (spec.get("normalizer") or {}).get("lowercase", cfg.get("do_lower_case", True))
        tokens = {n: _token(cfg, n, d) for n, d in (("pad", "[PAD]"), ("unk", "[UNK]"),
                                                    ("cls", "[CLS]"), ("sep", "[SEP]"),
                                                    ("mask", "[MASK]"))}
        return WordPiece(model["vocab"], lower, model.get("max_input_chars_per_word", 100),
                         tokens=tokens)
    if model.get("type") == "BPE" and pre == "ByteLevel":
        merges = [tuple(m.split()) if isinstance(m, str) else tuple(m) for m in model["merges"]]
        return ByteLevelBpe(model["vocab"], merges, _token(cfg, "eos", "<|endoftext|>"))
    raise ValueError(f"{path}: a {model.get('type')} model (pre-tokenizer {pre}) is not one "
                     "pretrax reads; keep the checkpoint's vocab.txt, vocab.json + merges.txt or "
                     "spiece.model next to it")


def load(directory: str):
    """The tokenizer of a Hugging Face checkpoint directory, by the files it holds
    (``tokenizer.json`` when it is the only one, for WordPiece and byte-level BPE).

    Raises:
      FileNotFoundError: naming the files looked for.
      ValueError: for a tokenizer.json of another kind.
    """
    for name, cls in (("vocab.txt", WordPiece), ("vocab.json", ByteLevelBpe),
                      ("spiece.model", SentencePieceHf)):
        if os.path.exists(os.path.join(directory, name)):
            return cls.from_dir(directory)
    if os.path.exists(os.path.join(directory, "tokenizer.json")):
        return from_tokenizer_json(directory)
    raise FileNotFoundError(f"no vocab.txt, vocab.json + merges.txt, spiece.model or "
                            f"tokenizer.json in {directory}: save the tokenizer there with "
                            "save_pretrained(DIR) too")


class HfTokenizer:
    """A Hugging Face checkpoint's tokenizer behind the interface of ``data.tokenizer.Tokenizer``
    that the input pipeline, the tasks and generation use.

    Attributes:
      hf: the ``WordPiece``, ``ByteLevelBpe`` or ``SentencePieceHf`` underneath.
      name: ``hf:<directory>``.
      family: ``"bert"``, ``"gpt2"``, ``"albert"`` or ``"xlnet"`` (by the tokenizer's files).
    """

    def __init__(self, hf, name: str):
        self.hf, self.name = hf, name
        if isinstance(hf, WordPiece):
            self.family = "bert"
        elif isinstance(hf, ByteLevelBpe):
            self.family = "gpt2"
        else:
            self.family = "xlnet" if hf.xlnet else "albert"

    @classmethod
    def load(cls, directory: str) -> HfTokenizer:
        """Raises FileNotFoundError naming the files looked for."""
        return cls(load(directory), f"hf:{directory}")

    @property
    def vocab_size(self) -> int:
        """``V``: one past the largest id the tokenizer produces."""
        return self.hf.vocab_size

    @property
    def special_ids(self) -> SpecialIds:
        return self.hf.special_ids

    def encode(self, texts: list[str]) -> list[list[int]]:
        """One list of ids per text, without special tokens."""
        return [self.hf.ids(t) for t in texts]

    def decode(self, ids):
        """Ids → text: a list of ids gives a string, a list of lists a list of strings."""
        if isinstance(ids, np.ndarray):
            ids = ids.tolist()
        if ids and isinstance(ids[0], list):
            return [self.hf.decode(x) for x in ids]
        return self.hf.decode(ids)
