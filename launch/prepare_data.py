r"""Tokenises a pretraining corpus once into TFRecord shards that pretraining streams.

  python -m launch.prepare_data --corpus='/data/books/*.txt.gz' --tokenizer=embedded \
      --output=/data/books_prepared --num_shards=64

Then pretrain with ``--config.data.corpus=prepared:/data/books_prepared`` (the same tokenizer).
Writes ``shard-*.tfrecord``, ``manifest.json`` and ``unigram_counts.npy`` (``data/prepared.py``);
memory stays bounded whatever the corpus size.
"""

from absl import app, flags

from launch import binary
from launch.preparing import run as preparing

_CORPUS = flags.DEFINE_string(
    "corpus", None, "Text files or globs (comma-separated; one sentence per line, blank line "
    "between documents, plain or .gz), 'embedded', or 'tfds:NAME[:FEATURE]'.", required=True)
_TOKENIZER = flags.DEFINE_string("tokenizer", "embedded",
                                 "'embedded' or a SentencePiece .model path.")
_OUTPUT = flags.DEFINE_string("output", None, "Directory to write.", required=True)
_NUM_SHARDS = flags.DEFINE_integer(
    "num_shards", 64, "TFRecord files; at least the data.num_shards of the runs reading it.")
_TFDS_DATA_DIR = flags.DEFINE_string("tfds_data_dir", "", "Where prepared TFDS datasets live.")


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    preparing.prepare(_CORPUS.value, _TOKENIZER.value, _OUTPUT.value, _NUM_SHARDS.value,
                      _TFDS_DATA_DIR.value)


def run() -> None:
    """Console-script entry point."""
    binary.run(main)


if __name__ == "__main__":
    run()
