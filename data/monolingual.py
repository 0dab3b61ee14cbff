"""Monolingual Spanish and English corpora from the TRAIN split of the Bible translation task.

For denoising pretraining in the mBART setting: each language is its own corpus, and no example
ever holds a verse beside its translation. A document is one chapter (one verse a line, in verse
order); each language's chapters are shuffled independently (different seeds), so the two files
are not aligned by position either. Only ``split == "train"`` rows are used: dev and test verses
never reach pretraining or the tokenizer (``data/tokenizers/bible_es_en_8k``), which is what
``tests/data/test_seq2seq_corpora.py`` checks.

The shipped files ``data/corpora/seq2seq/bible_{es,en}_train.txt.gz`` were written by::

  python scripts/build_seq2seq_corpora.py

They are outside ``data/corpora/*.txt.gz``, so the default ``"embedded"`` corpus is unchanged;
pass them as ``--config.data.corpus=<path>`` (``corpus_paths()`` gives the paths).
"""

from __future__ import annotations

import gzip
import importlib.resources
import os

import numpy as np

from data.seq2seq_tasks import bible_rows

_PACKAGE = __name__.rpartition(".")[0]
LANGUAGES = ("es", "en")
SHUFFLE_SEEDS = {"es": 1909, "en": 2015}  # independent chapter orders (RV1909, WEB 2015 stable)


def corpus_file_name(lang: str) -> str:
    return f"bible_{lang}_train.txt.gz"


def corpus_paths() -> dict[str, str]:
    """``{lang: path}`` of the shipped monolingual corpora (found through importlib.resources)."""
    root = importlib.resources.files(_PACKAGE).joinpath("corpora", "seq2seq")
    return {lang: str(root.joinpath(corpus_file_name(lang))) for lang in LANGUAGES}


def train_chapters(path: str | None = None) -> dict[str, dict[str, list[str]]]:
    """``{lang: {"Book chapter": [verse, …]}}`` of the train split, chapters in canonical order."""
    out = {lang: {} for lang in LANGUAGES}
    for row in bible_rows(path):
        if row["split"] != "train":
            continue
        chapter = f"{row['book']} {row['chapter']}"
        for lang in LANGUAGES:
            out[lang].setdefault(chapter, []).append(row[lang])
    return out


def monolingual_documents(lang: str, path: str | None = None) -> list[tuple[str, list[str]]]:
    """``(chapter, verses)`` documents of one language, in that language's shuffled order."""
    chapters = train_chapters(path)[lang]
    names = sorted(chapters)
    order = np.random.default_rng(SHUFFLE_SEEDS[lang]).permutation(len(names))
    return [(names[i], chapters[names[i]]) for i in order]


def write_corpora(out_dir: str, path: str | None = None) -> dict[str, str]:
    """Writes ``bible_{lang}_train.txt.gz`` (one verse a line, a blank line between chapters) for
    both languages into ``out_dir``; returns ``{lang: written path}``. Deterministic bytes (gzip
    mtime 0)."""
    os.makedirs(out_dir, exist_ok=True)
    written = {}
    for lang in LANGUAGES:
        text = "\n\n".join("\n".join(verses) for _, verses in monolingual_documents(lang, path))
        target = os.path.join(out_dir, corpus_file_name(lang))
        with open(target, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0,
                                                      filename="") as f:
            f.write((text + "\n").encode("utf-8"))
        written[lang] = target
    return written
