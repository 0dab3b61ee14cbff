"""Tokenizers of Hugging Face checkpoints, read from their own files, reproducing transformers' ids.

* ``WordPiece`` — BERT's ``vocab.txt`` (basic tokenizer: clean, split punctuation and CJK, lower
  case and strip accents when uncased; then greedy longest-match WordPiece with ``##``).
* ``ByteLevelBpe`` — GPT-2's ``vocab.json`` + ``merges.txt``.
* ``SentencePieceHf`` — ALBERT's / XLNet's ``spiece.model`` with transformers' preprocessing.

``load(directory)`` picks the one whose files are there. ``encode(text)`` returns the ids that the
transformers tokenizer returns with its default ``add_special_tokens=True``. Plain Python (and
SentencePiece); nothing here imports Flax or reads the network.
"""

from __future__ import annotations

import json
import os
import unicodedata

import regex
import sentencepiece as spm


def _tokenizer_config(directory: str) -> dict:
    path = os.path.join(directory, "tokenizer_config.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


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

    def __init__(self, vocab: dict[str, int], lower_case: bool = True, max_chars: int = 100):
        self.vocab, self.lower_case, self.max_chars = vocab, lower_case, max_chars

    @classmethod
    def from_dir(cls, directory: str) -> WordPiece:
        with open(os.path.join(directory, "vocab.txt"), encoding="utf-8") as f:
            vocab = {line.rstrip("\n"): i for i, line in enumerate(f)}
        return cls(vocab, _tokenizer_config(directory).get("do_lower_case", True))

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
            return ["[UNK]"]
        pieces, start = [], 0
        while start < len(word):
            end = len(word)
            while end > start:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    break
                end -= 1
            if end == start:
                return ["[UNK]"]
            pieces.append(piece)
            start = end
        return pieces

    def encode(self, text: str) -> list[int]:
        pieces = [p for w in self._words(text) for p in self._pieces(w)]
        return [self.vocab[p] for p in ("[CLS]", *pieces, "[SEP]")]


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

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]]):
        self.vocab = vocab
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        self.byte_chars = _bytes_to_unicode()

    @classmethod
    def from_dir(cls, directory: str) -> ByteLevelBpe:
        with open(os.path.join(directory, "vocab.json"), encoding="utf-8") as f:
            vocab = json.load(f)
        with open(os.path.join(directory, "merges.txt"), encoding="utf-8") as f:
            merges = [tuple(line.split()) for line in f
                      if line.strip() and not line.startswith("#version")]
        return cls(vocab, merges)

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

    def encode(self, text: str) -> list[int]:
        ids = []
        for token in self.PATTERN.findall(text):
            chars = "".join(self.byte_chars[b] for b in token.encode("utf-8"))
            ids += [self.vocab[p] for p in self._bpe(chars)]
        return ids


class SentencePieceHf:
    """ALBERT's / XLNet's ``spiece.model`` with transformers' preprocessing: ``[CLS] … [SEP]``
    (ALBERT) or ``… <sep> <cls>`` (XLNet)."""

    def __init__(self, model_file: str, lower_case: bool = True, keep_accents: bool = False,
                 xlnet: bool = False):
        self.sp = spm.SentencePieceProcessor(model_file=model_file)
        self.lower_case, self.keep_accents, self.xlnet = lower_case, keep_accents, xlnet

    @classmethod
    def from_dir(cls, directory: str) -> SentencePieceHf:
        cfg = _tokenizer_config(directory)
        xlnet = "XLNet" in cfg.get("tokenizer_class", "")
        return cls(os.path.join(directory, "spiece.model"), cfg.get("do_lower_case", not xlnet),
                   cfg.get("keep_accents", False), xlnet)

    def encode(self, text: str) -> list[int]:
        text = " ".join(text.strip().split()).replace("``", '"').replace("''", '"')
        if not self.keep_accents:
            text = "".join(c for c in unicodedata.normalize("NFKD", text)
                           if not unicodedata.combining(c))
        if self.lower_case:
            text = text.lower()
        ids = [self.sp.piece_to_id(p) for p in self.sp.encode(text, out_type=str)]
        if self.xlnet:
            return ids + [self.sp.piece_to_id("<sep>"), self.sp.piece_to_id("<cls>")]
        return [self.sp.piece_to_id("[CLS]"), *ids, self.sp.piece_to_id("[SEP]")]


def load(directory: str):
    """The tokenizer of a Hugging Face checkpoint directory, by the files it holds.

    Raises:
      FileNotFoundError: naming the files looked for.
    """
    for name, cls in (("vocab.txt", WordPiece), ("vocab.json", ByteLevelBpe),
                      ("spiece.model", SentencePieceHf)):
        if os.path.exists(os.path.join(directory, name)):
            return cls.from_dir(directory)
    raise FileNotFoundError(f"no vocab.txt, vocab.json + merges.txt or spiece.model in "
                            f"{directory}: save the tokenizer with save_pretrained(DIR) too")
