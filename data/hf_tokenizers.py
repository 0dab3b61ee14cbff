"""Hugging Face checkpoints' tokenizers, through the ``tokenizers`` library: transformers' ids.

``load(directory)`` reads, in transformers' order of preference:

* ``tokenizer.json`` — any model it holds (WordPiece, byte-level BPE, Unigram, …), as saved;
* ``vocab.txt`` — BERT's WordPiece (``BertTokenizer``'s normalizer, pre-tokenizer and
  ``[CLS] … [SEP]``);
* ``vocab.json`` + ``merges.txt`` — GPT-2's byte-level BPE;
* ``spiece.model`` — ALBERT's or XLNet's SentencePiece, with transformers' preprocessing
  (``data.sentencepiece_hf.transformers_style``).

Special ids come from ``tokenizer_config.json`` / ``special_tokens_map.json`` (``cls_token`` …),
else the family's defaults: BERT's ``[PAD] [UNK] [CLS] [SEP] [MASK]``; GPT-2's
``<|endoftext|>`` as bos, eos and padding; ALBERT's or XLNet's pieces. ``HfTokenizer`` puts the
result behind the interface the input pipeline uses for pretrax's SentencePiece models (batch
``encode`` without specials, ``encode_offsets`` for span QA, ``vocab_size``, ``special_ids``,
``decode``). Texts are tokenised once, before tf.data, so this costs nothing per step.

Plain Python (the ``tokenizers`` library); nothing here imports Flax or reads the network. The
directory may be local or remote (``gs://…``, read through ``data/paths.py``).
"""

from __future__ import annotations

import json
import os

import numpy as np
import tokenizers
from tokenizers import AddedToken, decoders, models, normalizers, pre_tokenizers, processors

from data import paths, sentencepiece_hf
from data.features import SpecialIds

TOKENIZER_JSON, CONFIG, SPECIAL_MAP = ("tokenizer.json", "tokenizer_config.json",
                                       "special_tokens_map.json")
FILES = (TOKENIZER_JSON, CONFIG, SPECIAL_MAP, "added_tokens.json", "vocab.txt", "vocab.json",
         "merges.txt", "spiece.model")
_NAMES = ("pad", "unk", "cls", "sep", "mask", "bos", "eos")
BERT_TOKENS = {"pad": "[PAD]", "unk": "[UNK]", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]"}
GPT2_TOKENS = {"pad": "<|endoftext|>", "bos": "<|endoftext|>", "eos": "<|endoftext|>"}
ALBERT_TOKENS = {"pad": "<pad>", "unk": "<unk>", "cls": "[CLS]", "sep": "[SEP]", "mask": "[MASK]",
                 "bos": "[CLS]", "eos": "[SEP]"}
XLNET_TOKENS = {"pad": "<pad>", "unk": "<unk>", "cls": "<cls>", "sep": "<sep>", "mask": "<mask>",
                "bos": "<s>", "eos": "</s>"}
_RESAVE = "save the tokenizer there again with transformers' save_pretrained(DIR)"


def _json(path: str) -> dict:
    """A JSON object file, {} when it is absent.

    Raises:
      ValueError: naming the file when it is not a JSON object.
    """
    if not paths.exists(path):
        return {}
    try:
        with paths.open(path) as f:
            value = json.load(f)
    except (ValueError, OSError) as e:
        raise ValueError(f"{path}: not a readable JSON file ({e}); {_RESAVE}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: a JSON {type(value).__name__}, not an object; {_RESAVE}")
    return value


def _lines(path: str, why: str) -> list[str]:
    """The lines of a UTF-8 text file (``why``: who needs it, when it is absent).

    Raises:
      FileNotFoundError / ValueError: naming the file and the fix.
    """
    if not paths.exists(path):
        raise FileNotFoundError(f"{path} not found: {why}; {_RESAVE}")
    try:
        with paths.open(path) as f:
            return [line.rstrip("\n") for line in f]
    except (UnicodeDecodeError, OSError) as e:
        raise ValueError(f"{path}: not a readable text file ({e}); {_RESAVE}") from None


def _settings(directory: str) -> dict:
    """``special_tokens_map.json`` overlaid by ``tokenizer_config.json``."""
    return {**_json(os.path.join(directory, SPECIAL_MAP)), **_json(os.path.join(directory, CONFIG))}


def _token(settings: dict, name: str, default: str | None) -> str | None:
    """``{name}_token`` (a string, or an AddedToken dict), else ``default``."""
    value = settings.get(f"{name}_token")
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else default


def _state(component) -> str:
    """A tokenizer component's JSON, '' for None (to ask what kind of pre-tokenizer it is)."""
    return "" if component is None else component.__getstate__().decode("utf-8", "replace")


def _with_specials(tokenizer: tokenizers.Tokenizer, tokens) -> None:
    """Marks ``tokens`` that the vocabulary holds as special (matched whole in raw text)."""
    present = [t for t in dict.fromkeys(tokens) if t and tokenizer.token_to_id(t) is not None]
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in present])


def add_template(tokenizer, first: str, last: str, xlnet: bool = False) -> None:
    """``first A last`` (``A <sep> <cls>`` for XLNet) as transformers adds around a text."""
    ids = [(t, tokenizer.token_to_id(t)) for t in (first, last)]
    if any(i is None for _, i in ids):
        return  # the vocabulary lacks them: no specials added
    single, pair = ((f"$A:0 {last}:0 {first}:2", f"$A:0 {last}:0 $B:1 {last}:1 {first}:2")
                    if xlnet else (f"{first}:0 $A:0 {last}:0", f"{first}:0 $A:0 {last}:0 "
                                   f"$B:1 {last}:1"))
    tokenizer.post_processor = processors.TemplateProcessing(single=single, pair=pair,
                                                             special_tokens=ids)


def _wordpiece(directory: str, settings: dict) -> tokenizers.Tokenizer:
    """BERT's ``vocab.txt`` as transformers' ``BertTokenizer`` builds it."""
    path = os.path.join(directory, "vocab.txt")
    vocab = {line: i for i, line in enumerate(_lines(path, "BERT's vocabulary"))}
    tokens = {n: _token(settings, n, d) for n, d in BERT_TOKENS.items()}
    if tokens["unk"] not in vocab:
        raise ValueError(f"{path} has no {tokens['unk']} token, which WordPiece gives for a word "
                         f"it cannot spell; {_RESAVE} (or name the vocabulary's unk_token in "
                         f"{CONFIG})")
    tokenizer = tokenizers.Tokenizer(models.WordPiece(vocab, unk_token=tokens["unk"]))
    tokenizer.normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=settings.get("tokenize_chinese_chars", True),
        strip_accents=settings.get("strip_accents"),
        lowercase=settings.get("do_lower_case", True))
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.decoder = decoders.WordPiece(prefix="##")
    _with_specials(tokenizer, tokens.values())
    add_template(tokenizer, tokens["cls"], tokens["sep"])
    return tokenizer


def _byte_level_bpe(directory: str, settings: dict) -> tokenizers.Tokenizer:
    """GPT-2's ``vocab.json`` + ``merges.txt`` as transformers' ``GPT2Tokenizer`` builds them."""
    vocab = _json(os.path.join(directory, "vocab.json"))
    merges = [tuple(line.split()) for line in _lines(os.path.join(directory, "merges.txt"),
                                                     "GPT-2's vocab.json needs its merges")
              if line.strip() and not line.startswith("#version")]
    if not all(isinstance(i, int) for i in vocab.values()) or any(len(m) != 2 for m in merges):
        raise ValueError(f"{directory}: vocab.json (token → id) or merges.txt (two tokens a "
                         f"line) is malformed; {_RESAVE}")
    tokenizer = tokenizers.Tokenizer(models.BPE(vocab, merges, continuing_subword_prefix="",
                                                end_of_word_suffix="", fuse_unk=False))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(
        add_prefix_space=settings.get("add_prefix_space", False))
    tokenizer.decoder = decoders.ByteLevel()
    _with_specials(tokenizer, [_token(settings, n, GPT2_TOKENS[n]) for n in ("bos", "eos")])
    return tokenizer


def _spiece(directory: str, settings: dict) -> tokenizers.Tokenizer:
    """ALBERT's or XLNet's ``spiece.model`` as transformers' ``AlbertTokenizer`` /
    ``XLNetTokenizer`` builds it."""
    path = os.path.join(directory, "spiece.model")
    proto = sentencepiece_hf.read_proto(paths.read_bytes(path), path)
    xlnet = _is_xlnet(settings)
    tokenizer = sentencepiece_hf.transformers_style(
        proto, xlnet=xlnet, lower_case=settings.get("do_lower_case", not xlnet),
        keep_accents=settings.get("keep_accents", False), name=path)
    tokens = {n: _token(settings, n, d) for n, d in (XLNET_TOKENS if xlnet else
                                                     ALBERT_TOKENS).items()}
    _with_specials(tokenizer, [*tokens.values(), *(["<eop>", "<eod>"] if xlnet else [])])
    add_template(tokenizer, tokens["cls"], tokens["sep"], xlnet)
    return tokenizer


def _is_xlnet(settings: dict) -> bool:
    return "XLNet" in str(settings.get("tokenizer_class", ""))


def _tokenizer_json(path: str) -> tokenizers.Tokenizer:
    """Raises ValueError naming a damaged tokenizer.json and the fix."""
    try:
        if paths.is_remote(path):  # the Rust library opens local files only
            return tokenizers.Tokenizer.from_str(paths.read_bytes(path).decode("utf-8"))
        return tokenizers.Tokenizer.from_file(path)
    except Exception as e:  # noqa: BLE001 - the Rust library raises a bare Exception
        why = (str(e).strip().splitlines() or ["unknown error"])[0][:200]
        raise ValueError(f"{path}: not a readable tokenizer.json ({why}); {_RESAVE}, or remove "
                         "it to use the vocab.txt, vocab.json + merges.txt or spiece.model "
                         "beside it") from None


def default_tokens(tokenizer: tokenizers.Tokenizer, settings: dict) -> dict[str, str]:
    """The family's special tokens, by the tokenizer's model: WordPiece → BERT's, byte-level
    BPE → GPT-2's, else (SentencePiece) ALBERT's or XLNet's (by ``tokenizer_class``)."""
    if isinstance(tokenizer.model, models.WordPiece):
        return BERT_TOKENS
    if '"ByteLevel"' in _state(tokenizer.pre_tokenizer):
        return GPT2_TOKENS
    return XLNET_TOKENS if _is_xlnet(settings) else ALBERT_TOKENS


def special_ids(tokenizer: tokenizers.Tokenizer, settings: dict) -> SpecialIds:
    """The ids of the special tokens the settings (else the family) name; None where the
    vocabulary lacks one. A byte-level BPE has no unknown token (every byte has an id), and
    pads with its end of text unless it names a padding token."""
    defaults = default_tokens(tokenizer, settings)
    ids = {n: tokenizer.token_to_id(t) if (t := _token(settings, n, defaults.get(n))) else None
           for n in _NAMES}
    if defaults is GPT2_TOKENS:
        ids["unk"] = None
        ids["pad"] = ids["eos"] if _token(settings, "pad", None) is None else ids["pad"]
    return SpecialIds(**ids)


def load(directory: str) -> HfTokenizer:
    """The tokenizer of a Hugging Face checkpoint directory, by the files it holds.

    Raises:
      FileNotFoundError: naming the files looked for.
      ValueError: naming a damaged file and the fix.
    """
    settings = _settings(directory)
    readers = ((TOKENIZER_JSON, lambda: _tokenizer_json(os.path.join(directory, TOKENIZER_JSON))),
               ("vocab.txt", lambda: _wordpiece(directory, settings)),
               ("vocab.json", lambda: _byte_level_bpe(directory, settings)),
               ("spiece.model", lambda: _spiece(directory, settings)))
    for name, read in readers:
        if paths.exists(os.path.join(directory, name)):
            tokenizer = read()
            return HfTokenizer(tokenizer, special_ids(tokenizer, settings), f"hf:{directory}")
    raise FileNotFoundError(f"no tokenizer.json, vocab.txt, vocab.json + merges.txt or "
                            f"spiece.model in {directory}: save the tokenizer there with "
                            "save_pretrained(DIR) too")


class HfTokenizer:
    """A Hugging Face checkpoint's tokenizer behind the interface of ``data.tokenizer.Tokenizer``
    that the input pipeline, the tasks, span QA and generation use.

    Attributes:
      tokenizer: the ``tokenizers.Tokenizer`` (its post-processor adds transformers' specials).
      name: ``hf:<directory>``.
    """

    def __init__(self, tokenizer: tokenizers.Tokenizer, special: SpecialIds, name: str):
        self.tokenizer, self.name, self._special = tokenizer, name, special
        self._size = max(tokenizer.get_vocab(with_added_tokens=True).values(), default=-1) + 1

    @classmethod
    def load(cls, directory: str) -> HfTokenizer:
        """``load(directory)``; raises FileNotFoundError naming the files looked for."""
        return load(directory)

    @property
    def vocab_size(self) -> int:
        """``V``: one past the largest id the tokenizer produces."""
        return self._size

    @property
    def special_ids(self) -> SpecialIds:
        return self._special

    def encode(self, texts: list[str]) -> list[list[int]]:
        """One list of ids per text, without special tokens."""
        return [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def encode_with_specials(self, texts: list[str]) -> list[list[int]]:
        """The ids transformers' tokenizer gives by default (``[CLS] … [SEP]`` for BERT)."""
        return [e.ids for e in self.tokenizer.encode_batch(list(texts))]

    def encode_offsets(self, texts: list[str]) -> list[tuple[list[int], list[int], list[int]]]:
        """Per text: ids (no specials) and the characters ``[begin, end)`` each covers; a bare
        "▁" (SentencePiece's word start) covers none, as in ``data.tokenizer``."""
        out = []
        for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False):
            begins = [b for b, _ in e.offsets]
            ends = [b if t == sentencepiece_hf.WORD_START else end
                    for t, (b, end) in zip(e.tokens, e.offsets, strict=True)]
            out.append((e.ids, begins, ends))
        return out

    def decode(self, ids):
        """Ids → text: a list of ids gives a string, a list of lists a list of strings."""
        if isinstance(ids, np.ndarray):
            ids = ids.tolist()
        if ids and isinstance(ids[0], list):
            return [self.tokenizer.decode(x, skip_special_tokens=False) for x in ids]
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)
