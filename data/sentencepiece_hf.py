"""SentencePiece models (``.model`` protos) as Hugging Face ``tokenizers`` tokenizers.

Two conversions, for two different promises:

* ``exact(proto)`` — what ``SentencePieceProcessor.encode`` gives, id for id: the model's own
  normalizer spec (its precompiled character map, extra whitespace removal, the "▁" dummy prefix)
  in front of the same Unigram (or BPE) model. ``launch.convert --to_hf`` writes pretrax's
  tokenizer this way into an export's ``tokenizer.json``.
* ``transformers_style(proto, xlnet=…)`` — what transformers' ``AlbertTokenizer`` /
  ``XLNetTokenizer`` build from a checkpoint's ``spiece.model`` (their own preprocessing: ``````
  and ``''`` become ``"``, accents stripped, lower case, then whitespace split), so a converted
  ALBERT or XLNet reads its ``spiece.model`` as transformers does.

Plain Python: SentencePiece's protobuf schema and the ``tokenizers`` library.
"""

from __future__ import annotations

import re

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers

WORD_START = "\u2581"  # "▁": SentencePiece's escaped space, the start of a word
_UNIGRAM, _BPE = 1, 2  # TrainerSpec.ModelType
_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED = 1, 2, 3, 4  # ModelProto.SentencePiece.Type


def read_proto(model: bytes, name: str):
    """The ``ModelProto`` of a serialised SentencePiece model (``name`` in errors).

    Raises:
      ValueError: when the bytes are not a SentencePiece model.
    """
    from google.protobuf.message import DecodeError
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    try:
        proto.ParseFromString(model)
    except DecodeError as e:
        raise ValueError(f"{name}: not a SentencePiece model ({e}); download it again") from None
    if not proto.pieces:
        raise ValueError(f"{name}: not a SentencePiece model (no pieces); download it again")
    return proto


def _bpe_merges(proto) -> list[tuple[str, str]]:
    """BPE merges from the piece scores (SentencePiece's BPE stores no merge list): every split
    of a normal piece into two normal pieces, the higher-scoring (earlier-learnt) piece first."""
    normal = {p.piece: (p.score, i) for i, p in enumerate(proto.pieces) if p.type == _NORMAL}
    ranked = sorted((-score, i, piece[:k], piece[k:]) for piece, (score, i) in normal.items()
                    for k in range(1, len(piece)) if piece[:k] in normal and piece[k:] in normal)
    return [(left, right) for _, _, left, right in ranked]


def _model(proto, name: str):
    trainer = proto.trainer_spec
    if trainer.model_type == _UNIGRAM:
        return models.Unigram([(p.piece, p.score) for p in proto.pieces], unk_id=trainer.unk_id,
                              byte_fallback=trainer.byte_fallback)
    if trainer.model_type == _BPE:
        return models.BPE({p.piece: i for i, p in enumerate(proto.pieces)}, _bpe_merges(proto),
                          unk_token=trainer.unk_piece, fuse_unk=True,
                          byte_fallback=trainer.byte_fallback)
    kind = {3: "word", 4: "char"}.get(trainer.model_type, str(trainer.model_type))
    raise ValueError(f"{name} is a SentencePiece {kind} model; Hugging Face's tokenizer.json "
                     "holds unigram and bpe ones: train the tokenizer with --model_type=unigram "
                     "(the default) or bpe")


def _specials(tokenizer: Tokenizer, proto) -> None:
    """Control and unknown pieces become special tokens, matched whole in the raw text."""
    tokenizer.add_special_tokens([AddedToken(p.piece, special=True, normalized=False)
                                  for p in proto.pieces if p.type in (_CONTROL, _UNKNOWN)])


def exact(proto, name: str = "the SentencePiece model") -> Tokenizer:
    """A tokenizer that gives ``SentencePieceProcessor(proto).encode``'s ids (tested on text with
    accents, full-width and CJK characters, tabs and runs of spaces), its control pieces
    (pretrax's ``<pad>``, ``[CLS]``, ``[SEP]``, ``[MASK]``, ``<s>``, ``</s>``) as special tokens.

    Raises:
      ValueError: for a char or word model (``tokenizer.json`` has no such model).
    """
    spec = proto.normalizer_spec
    tokenizer = Tokenizer(_model(proto, name))
    steps = []
    if spec.precompiled_charsmap:
        steps.append(normalizers.Precompiled(spec.precompiled_charsmap))
    if spec.remove_extra_whitespaces:  # spaces only, as SentencePiece
        steps += [normalizers.Replace(Regex(r"\A +| +\z"), ""),
                  normalizers.Replace(Regex(" {2,}"), " ")]
    if spec.escape_whitespaces:
        steps.append(normalizers.Replace(" ", WORD_START))
    if spec.add_dummy_prefix:  # Metaspace adds no prefix to text that starts with "▁" already
        steps.append(normalizers.Replace(Regex(rf"\A{WORD_START}"), WORD_START * 2))
    tokenizer.normalizer = normalizers.Sequence(steps)
    splits = []
    if spec.add_dummy_prefix:
        splits.append(pre_tokenizers.Metaspace(replacement=WORD_START, prepend_scheme="always",
                                               split=False))
    user = sorted((p.piece for p in proto.pieces if p.type == _USER_DEFINED), key=len,
                  reverse=True)
    if user:  # SentencePiece emits user-defined pieces whole
        splits.append(pre_tokenizers.Split(Regex("|".join(map(re.escape, user))), "isolated"))
    if splits:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(splits)
    steps = [decoders.Replace(WORD_START, " ")]
    if proto.trainer_spec.byte_fallback:
        steps.append(decoders.ByteFallback())
    steps.append(decoders.Fuse())
    if spec.add_dummy_prefix:
        steps.append(decoders.Strip(" ", 1, 0))
    tokenizer.decoder = decoders.Sequence(steps)
    _specials(tokenizer, proto)
    return tokenizer


def transformers_style(proto, *, xlnet: bool, lower_case: bool, keep_accents: bool,
                       name: str = "spiece.model") -> Tokenizer:
    """The tokenizer transformers' ``AlbertTokenizer`` (``xlnet=False``) or ``XLNetTokenizer``
    builds from ``spiece.model``: its normalizers and whitespace split (transformers' ids, which
    may differ from ``SentencePieceProcessor.encode``'s), without special tokens added around
    the text (``data.hf_tokenizers`` adds the post-processor)."""
    tokenizer = Tokenizer(_model(proto, name))
    steps = [normalizers.Replace("``", '"'), normalizers.Replace("''", '"')]
    if xlnet or not keep_accents:
        steps += [normalizers.NFKD(), normalizers.StripAccents()]
    if lower_case:
        steps.append(normalizers.Lowercase())
    if proto.normalizer_spec.precompiled_charsmap:
        steps.append(normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap))
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Metaspace(replacement=WORD_START, prepend_scheme="always")])
    tokenizer.decoder = decoders.Metaspace(replacement=WORD_START, prepend_scheme="always")
    return tokenizer
