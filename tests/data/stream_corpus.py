"""Small streamed corpora for tests: the fixture slice cut into short documents over several
gzipped files (``stream:``), and the same prepared into TFRecord shards (``prepared:``)."""

from __future__ import annotations

import gzip
import os
import pathlib

from data import prepared, sources

FIXTURE = pathlib.Path(__file__).parent.parent / "fixtures" / "corpus_slice.txt.gz"


def write_split_corpus(directory, files: int = 4, sentences: int = 8) -> str:
    """The fixture's documents cut into documents of ``sentences`` sentences, dealt round-robin
    into ``files`` gzipped files; returns ``stream:DIR/part-*.txt.gz``."""
    docs = sources.read_text_file(str(FIXTURE))
    pieces = [d[i:i + sentences] for d in docs for i in range(0, len(d), sentences)]
    os.makedirs(directory, exist_ok=True)
    for f in range(files):
        with gzip.open(os.path.join(directory, f"part-{f}.txt.gz"), "wt") as out:
            out.write("\n\n".join("\n".join(p) for p in pieces[f::files]) + "\n")
    return f"stream:{directory}/part-*.txt.gz"


def write_prepared_corpus(directory, shards: int = 4, sentences: int = 8) -> str:
    """:func:`write_split_corpus`'s text prepared into ``shards`` TFRecord files; returns
    ``prepared:DIR``."""
    text = write_split_corpus(os.path.join(directory, "text"), shards, sentences)
    out = os.path.join(directory, "prepared")
    prepared.prepare(text[len("stream:"):], "embedded", out, shards, progress=lambda _: None)
    return f"prepared:{out}"
