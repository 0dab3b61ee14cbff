r"""Trains a SentencePiece tokenizer that follows pretrax's special ids.

Reproduce the shipped model (data/tokenizers/README.md)::

  python -m launch.train_tokenizer --corpus=embedded --vocab_size=8192 \
      --model_type=unigram --output_prefix=data/tokenizers/corpus_8k --seed=0

The joint Spanish-English model with T5 sentinels (data/tokenizers/README.md)::

  python -m launch.train_tokenizer \
      --corpus='data/corpora/seq2seq/bible_*_train.txt.gz' \
      --vocab_size=8192 --model_type=unigram --sentinels=100 --character_coverage=1.0 \
      --byte_fallback --output_prefix=data/tokenizers/bible_es_en_8k --seed=0

Writes ``<output_prefix>.model``, ``.vocab`` and ``.manifest.json`` (the input files' sha256 and
the options); ids 0..6 are <pad>, <unk>, [CLS], [SEP], [MASK], <s>, </s>, then the sentinels.
Corpus files and the output prefix may be local or remote (``gs://…``); TensorFlow is imported
only for remote paths (``data/paths.py``).
"""

import time

from absl import app, flags, logging

from data import sources, tokenizer
from launch import binary

_CORPUS = flags.DEFINE_string(
    "corpus", "embedded", "Comma-separated text files or globs (one sentence per line, blank line "
    "between documents, plain or .gz; local or gs://), or 'embedded' for the shipped corpus.")
_VOCAB_SIZE = flags.DEFINE_integer("vocab_size", 8192,
                                   "Pieces in the vocabulary, specials included.")
_MODEL_TYPE = flags.DEFINE_enum("model_type", "unigram", ["unigram", "bpe", "char", "word"],
                                "SentencePiece model type.")
_OUTPUT_PREFIX = flags.DEFINE_string("output_prefix", None,
                                     "Writes <prefix>.model and <prefix>.vocab (local or gs://).",
                                     required=True)
_INPUT_SENTENCE_SIZE = flags.DEFINE_integer(
    "input_sentence_size", 2_000_000, "Sentences sampled for training (0 = all).")
_SEED = flags.DEFINE_integer("seed", 0, "SentencePiece random seed.")
_SENTINELS = flags.DEFINE_integer(
    "sentinels", 0, "Reserve T5's sentinels <extra_id_0>… (user-defined symbols on ids 7, 8, …) "
    "for span corruption (data/denoising.py).")
_COVERAGE = flags.DEFINE_float("character_coverage", 0.9995,
                               "Share of characters with pieces of their own (1.0 = all).")
_BYTE_FALLBACK = flags.DEFINE_bool("byte_fallback", False,
                                   "Unknown characters as UTF-8 byte pieces instead of <unk>.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    files = sources.corpus_files(_CORPUS.value)
    logging.info("training a %s tokenizer of %d pieces on %d files", _MODEL_TYPE.value,
                 _VOCAB_SIZE.value, len(files))
    start = time.perf_counter()
    path = tokenizer.train(files, _OUTPUT_PREFIX.value, vocab_size=_VOCAB_SIZE.value,
                           model_type=_MODEL_TYPE.value,
                           input_sentence_size=_INPUT_SENTENCE_SIZE.value, seed=_SEED.value,
                           user_defined_symbols=tokenizer.sentinel_symbols(_SENTINELS.value),
                           character_coverage=_COVERAGE.value, byte_fallback=_BYTE_FALLBACK.value)
    options = {f.name: f.value for f in (_VOCAB_SIZE, _MODEL_TYPE, _INPUT_SENTENCE_SIZE, _SEED,
                                         _SENTINELS, _COVERAGE, _BYTE_FALLBACK)}
    manifest = tokenizer.write_manifest(_OUTPUT_PREFIX.value, files, options)
    tok = tokenizer.Tokenizer.load(path)
    print(f"wrote {path}: {tok.vocab_size} pieces in {time.perf_counter() - start:.1f} s; "
          f"specials {[tok.piece(i) for i in range(7)]}; inputs in {manifest}")


def run() -> None:
    """Console-script entry point."""
    binary.run(main)


if __name__ == "__main__":
    run()
