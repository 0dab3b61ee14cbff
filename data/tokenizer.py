"""SentencePiece tokenizers that follow the stack's special ids (``data/features.py``).

``train`` builds a model whose ids 0..6 are pad, unk, [CLS], [SEP], [MASK], <s>, </s>;
``Tokenizer.load`` refuses any model that does not, so a wrong vocabulary fails at start-up instead
of silently shifting every special token.

Example::

  tok = Tokenizer.load()                    # the shipped 8k unigram model
  ids = tok.encode(["Call me Ishmael."])    # [[...]]

A ``.model`` path may be local or remote (``gs://…``, ``data/paths.py``): the file is read whole
and handed to SentencePiece as bytes. ``load(name)`` also accepts ``hf:DIR``, the tokenizer of a
Hugging Face checkpoint (what ``launch.convert`` writes into ``data.tokenizer``), as a
``data.hf_tokenizers.HfTokenizer`` with the same interface and its own ``special_ids``.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import tempfile

import numpy as np
import sentencepiece as spm

from data import features, paths
from data.skipped import Skipped
from data.text_files import MAX_LINE_CHARS, iter_lines, split_long_line

_PACKAGE = __name__.rpartition(".")[0]
EMBEDDED_MODEL = "corpus_8k.model"
WORD_START = "\u2581"  # SentencePiece's "▁": the piece begins a whitespace-separated word.

# The pieces behind each special id. Control symbols take the lowest free ids in list order,
# after pad/unk (0, 1) and before bos/eos (5, 6): that is what puts [CLS], [SEP], [MASK] on
# 2, 3, 4.
CONTROL_SYMBOLS = ("[CLS]", "[SEP]", "[MASK]")
SPECIAL_PIECES = {
    features.PAD_ID: "<pad>",
    features.UNK_ID: "<unk>",
    features.CLS_ID: "[CLS]",
    features.SEP_ID: "[SEP]",
    features.MASK_ID: "[MASK]",
    features.BOS_ID: "<s>",
    features.EOS_ID: "</s>",
}
HF_PREFIX = "hf:"
_FIX = ("train the model with data.tokenizer.train (or `python -m launch.train_tokenizer`), which "
        "sets pad=0, unk=1, [CLS]=2, [SEP]=3, [MASK]=4, <s>=5, </s>=6")


def _sentences(text_files: list[str], skipped: Skipped):
    """Non-empty lines of the files, in order (documents' blank lines dropped); lines that are
    not UTF-8 are counted in ``skipped``, and over-long lines split as the corpus reader does."""
    for path in text_files:
        for _, line in iter_lines(path, skipped):
            if len(line) > MAX_LINE_CHARS:
                yield from split_long_line(line)
            elif line:
                yield line


def train(text_files: list[str], model_prefix: str, *, vocab_size: int = 8192,
          model_type: str = "unigram", input_sentence_size: int = 2_000_000,
          seed: int = 0, user_defined_symbols: tuple[str, ...] = (),
          character_coverage: float = 0.9995, byte_fallback: bool = False) -> str:
    """Trains a SentencePiece model on plain or gzipped one-sentence-per-line files.

    Args:
      text_files: corpus files (see ``data.sources``); blank lines are skipped.
      model_prefix: writes ``{model_prefix}.model`` and ``{model_prefix}.vocab``.
      vocab_size: total pieces, the 7 specials included.
      model_type: ``unigram``, ``bpe``, ``char`` or ``word``.
      input_sentence_size: sentences sampled for training (0 = all).
      seed: SentencePiece's random seed (sentence sampling); training is otherwise deterministic.
      user_defined_symbols: pieces always kept whole, on the ids right after the 7 specials
        (7, 8, …), e.g. T5's sentinels ``<extra_id_0>``… (:func:`sentinel_symbols`).
      character_coverage: the share of the text's characters that get pieces of their own
        (SentencePiece's default 0.9995; 1.0 keeps rare accented letters such as ``¡``, ``Ñ``).
      byte_fallback: spell characters outside the vocabulary as UTF-8 byte pieces instead of
        ``<unk>``, so every text round-trips.

    Returns:
      The path of the ``.model`` file, already checked to follow the special ids. A remote
      ``model_prefix`` (``gs://…``): trained in a local temporary directory, then copied there.
    """
    if paths.is_remote(model_prefix):
        with tempfile.TemporaryDirectory() as local:
            name = os.path.basename(model_prefix)
            train(text_files, os.path.join(local, name), vocab_size=vocab_size,
                  model_type=model_type, input_sentence_size=input_sentence_size, seed=seed)
            paths.makedirs(os.path.dirname(model_prefix))
            for ext in (".model", ".vocab"):
                paths.write_bytes(model_prefix + ext, paths.read_bytes(
                    os.path.join(local, name + ext)))
        return model_prefix + ".model"
    os.makedirs(os.path.dirname(os.path.abspath(model_prefix)), exist_ok=True)
    spm.set_random_generator_seed(seed)
    skipped = Skipped()
    spm.SentencePieceTrainer.train(
        sentence_iterator=_sentences(list(text_files), skipped),
        model_prefix=model_prefix,
        vocab_size=vocab_size,
        model_type=model_type,
        input_sentence_size=input_sentence_size,
        shuffle_input_sentence=True,
        pad_id=features.PAD_ID,
        unk_id=features.UNK_ID,
        bos_id=features.BOS_ID,
        eos_id=features.EOS_ID,
        control_symbols=list(CONTROL_SYMBOLS),
        user_defined_symbols=list(user_defined_symbols),
        character_coverage=character_coverage,
        byte_fallback=byte_fallback,
        num_threads=os.cpu_count() or 1,
        minloglevel=2,
    )
    skipped.warn("tokenizer training text")
    path = model_prefix + ".model"
    Tokenizer.load(path)  # Fails loudly if SentencePiece ever reorders the specials.
    return path


def write_manifest(model_prefix: str, text_files: list[str], options: dict) -> str:
    """Writes ``{model_prefix}.manifest.json``: the training inputs (file name, bytes, sha256)
    and the options, so what a shipped model saw (and did not see) can be checked later."""
    inputs = []
    for path in text_files:
        with open(path, "rb") as f:
            data = f.read()
        inputs.append({"file": os.path.basename(path), "bytes": len(data),
                       "sha256": hashlib.sha256(data).hexdigest()})
    target = model_prefix + ".manifest.json"
    with open(target, "w", encoding="utf-8") as f:
        json.dump({"inputs": inputs, "options": options}, f, indent=1, sort_keys=True)
        f.write("\n")
    return target


def sentinel_symbols(count: int) -> tuple[str, ...]:
    """T5's span-corruption sentinels ``<extra_id_0>`` … ``<extra_id_{count-1}>``."""
    return tuple(f"<extra_id_{i}>" for i in range(count))


def _check_special_ids(sp: spm.SentencePieceProcessor, name: str) -> None:
    """Raises ValueError naming every special id the model puts elsewhere."""
    problems = []
    for want, piece in SPECIAL_PIECES.items():
        got = sp.piece_to_id(piece)
        if got != want:
            problems.append(f"{piece!r} is id {got}, expected {want}")
    if sp.pad_id() != features.PAD_ID:
        problems.append(f"pad id is {sp.pad_id()}, expected {features.PAD_ID}")
    if problems:
        raise ValueError(f"SentencePiece model {name} does not follow the special ids of "
                         f"data/features.py: {'; '.join(problems)}. Fix: {_FIX}.")


class Tokenizer:
    """A SentencePiece model that follows ``data.features``' special ids.

    Attributes:
      sp: the underlying ``sentencepiece.SentencePieceProcessor``.
      name: where the model came from (a path, or ``embedded:<file>``).
    """

    def __init__(self, sp: spm.SentencePieceProcessor, name: str):
        _check_special_ids(sp, name)
        self.sp = sp
        self.name = name

    @classmethod
    def load(cls, path: str | None = None) -> Tokenizer:
        """Loads a ``.model`` file, or the shipped model for None / ``"embedded"``.

        Raises:
          ValueError: if the model's special ids differ from ``data.features``.
          OSError: if the file cannot be read.
        """
        if path and path.startswith(HF_PREFIX):
            raise ValueError(
                f"data.tokenizer={path} is a Hugging Face tokenizer (set by launch.convert): "
                "launch.finetune and launch.generate use it, but pretraining needs one of "
                "pretrax's SentencePiece models; use --config.data.tokenizer=embedded or a "
                ".model file from launch.train_tokenizer")
        if path in (None, "", "embedded"):
            folder = importlib.resources.files(_PACKAGE).joinpath("tokenizers")
            resource = folder.joinpath(EMBEDDED_MODEL)
            proto, name = resource.read_bytes(), f"embedded:{EMBEDDED_MODEL}"
        else:  # a local or remote (gs://…) file, read whole: SentencePiece opens only local ones
            proto, name = paths.read_bytes(path), path
        return cls(spm.SentencePieceProcessor(model_proto=proto), name)

    @property
    def vocab_size(self) -> int:
        """Number of pieces ``V``; ids are in ``[0, V)``."""
        return self.sp.get_piece_size()

    @property
    def special_ids(self) -> features.SpecialIds:
        """Always ``features.EMBEDDED_SPECIAL_IDS`` (checked on load)."""
        return features.EMBEDDED_SPECIAL_IDS

    def encode(self, texts: list[str]) -> list[list[int]]:
        """Encodes a batch of strings (multi-threaded inside SentencePiece).

        Returns:
          One list of ids per text; no [CLS]/[SEP]/<s>/</s> added.
        """
        return self.sp.encode(list(texts), out_type=int, num_threads=os.cpu_count() or 1)

    def encode_offsets(self, texts: list[str]) -> list[tuple[list[int], list[int], list[int]]]:
        """Per text: its ids (no specials) and the characters ``[begin, end)`` of the text that
        each piece covers (SentencePiece's offsets; a bare "▁" covers none, begin == end)."""
        return [_piece_spans(text, proto) for text, proto in zip(
            texts, self.sp.encode(list(texts), return_type="proto"), strict=True)]

    def decode(self, ids):
        """Ids → text: a list of ids gives a string, a list of lists gives a list of strings."""
        if isinstance(ids, np.ndarray):
            ids = ids.tolist()
        return self.sp.decode(ids)

    def piece(self, token_id: int) -> str:
        """The piece string of one id, e.g. ``"▁the"``."""
        return self.sp.id_to_piece(int(token_id))

    def is_word_start(self) -> np.ndarray:
        """Which ids begin a word, for whole-word masking.

        Returns:
          bool [V]: True for pieces starting with "▁"; False for continuation pieces and for all
          special ids (they never belong to a word).
        """
        starts = np.array([self.sp.id_to_piece(i).startswith(WORD_START)
                           for i in range(self.vocab_size)], dtype=bool)
        starts[:features.NUM_SPECIAL_IDS] = False
        return starts


def _piece_spans(text: str, proto) -> tuple[list[int], list[int], list[int]]:
    """Ids and character spans (within ``text``) of one SentencePiece-encoded text."""
    ids = [p.id for p in proto.pieces]
    begins, ends = [p.begin for p in proto.pieces], [p.end for p in proto.pieces]
    if not text.isascii():  # SentencePiece offsets count UTF-8 bytes.
        byte_to_char = [i for i, ch in enumerate(text) for _ in ch.encode("utf-8")] + [len(text)]
        begins, ends = [byte_to_char[b] for b in begins], [byte_to_char[e] for e in ends]
    return ids, begins, ends


def load(name: str | None = None):
    """The tokenizer a config's ``data.tokenizer`` names: ``hf:DIR`` (a Hugging Face checkpoint's,
    ``data.hf_tokenizers.HfTokenizer``), else ``Tokenizer.load(name)``.

    Raises:
      FileNotFoundError: ``DIR`` holds no tokenizer files, or the ``.model`` file is missing.
      ValueError: a SentencePiece model whose special ids differ from ``data.features``.
    """
    if name and name.startswith(HF_PREFIX):
        from data import hf_tokenizers
        return hf_tokenizers.HfTokenizer.load(name[len(HF_PREFIX):])
    return Tokenizer.load(name)
