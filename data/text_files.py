"""Corpus text files: bytes → lines → documents, with bad parts skipped and counted.

A corpus file holds one sentence per line, a blank line between documents, plain or gzipped
UTF-8, on a local disk or remote (``gs://…``, through ``data/paths.py``). What is wrong with a
file is handled here, once for every reader (the pretraining corpus and the tokenizer trainer):

* a file that looks binary (NUL bytes or undecodable bytes in its first 8 KiB), a file most of
  whose lines are not UTF-8, and a broken or truncated gzip file are errors naming the file;
* a line that is not UTF-8 is skipped and counted (``data.skipped``), with its ``path:line``;
* a line longer than :data:`MAX_LINE_CHARS` characters is split into sentences (and pieces of at
  most that many characters), counted, so nothing unbounded reaches the tokenizer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from data import paths
from data.skipped import Reason, Skipped

_SNIFF_BYTES = 8192
_BINARY_FRACTION = 0.1
# Longer lines are split into sentences (and pieces of at most this many characters): no line of
# the shipped corpus comes near it, and SentencePiece's memory grows with its input's length.
MAX_LINE_CHARS = 1 << 16

BAD_UTF8 = Reason("line that is not valid UTF-8 was skipped",
                  "lines that are not valid UTF-8 were skipped",
                  "re-encode the files as UTF-8 (e.g. `iconv -f latin1 -t utf-8 in.txt > out.txt`) "
                  "to keep them")
LONG_LINE = Reason(f"line longer than {MAX_LINE_CHARS} characters was split into sentences",
                   f"lines longer than {MAX_LINE_CHARS} characters were split into sentences",
                   "put one sentence per line to choose where they break")

# A sentence ends at . ! or ? followed by whitespace and something that can start a sentence.
# Deliberately simple (no abbreviation list): "Mr. Smith" splits, which costs sentence pairs
# little.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'“‘(\[])")


def split_sentences(text: str) -> list[str]:
    """Splits free text into sentences: first on newlines (paragraphs), then with a regex.

    Returns:
      Stripped, non-empty sentences in order.
    """
    sentences = []
    for paragraph in text.splitlines():
        sentences.extend(s.strip() for s in _SENTENCE_BREAK.split(paragraph.strip()))
    return [s for s in sentences if s]


def _open_binary(path: str):
    """Opens ``path`` (local or remote) for binary reading, through gzip when its first bytes or
    its name say so."""
    return paths.open_decompressed(path)


def _check_not_binary(path: str) -> None:
    """Raises ValueError when the first bytes of ``path`` (decompressed) look binary.

    Text never holds NUL bytes and UTF-8 text holds few undecodable ones; a file whose first
    8 KiB are more than 10% of either is binary (or UTF-16, or another encoding).
    """
    with _open_binary(path) as f:
        sample = f.read(_SNIFF_BYTES)
    if not sample:
        return
    bad = sample.count(b"\0") + sample.decode("utf-8", errors="replace").count("\ufffd")
    if bad > _BINARY_FRACTION * len(sample):
        raise ValueError(
            f"{path}: looks binary ({bad} of its first {len(sample)} bytes are NUL or not UTF-8), "
            "not text. Remove it from --config.data.corpus (or narrow the glob); if it is text in "
            "another encoding (UTF-16, Latin-1), re-encode it: `iconv -t utf-8`")


def iter_lines(path: str, skipped: Skipped | None = None) -> Iterator[tuple[int, str]]:
    """Yields ``(line_number, stripped_text)`` for every line of a plain or gzipped UTF-8 file.

    A line that is not valid UTF-8 is skipped and counted in ``skipped`` (reported by its owner;
    with None, reported here once the file is read).

    Raises:
      ValueError: naming the file when it looks binary, when most of its lines are not UTF-8,
        or when it is a broken or truncated gzip file.
    """
    own = skipped is None
    skipped = Skipped() if own else skipped
    good = bad = 0
    try:
        _check_not_binary(path)
        with _open_binary(path) as f:
            for number, raw in enumerate(f, start=1):
                try:
                    text = raw.decode("utf-8-sig" if number == 1 else "utf-8").strip()
                except UnicodeDecodeError:
                    bad += 1
                    skipped.add(BAD_UTF8, f"{path}:{number}")
                    continue
                good += bool(text)
                yield number, text
    except (OSError, EOFError) as err:  # gzip.BadGzipFile is an OSError
        raise ValueError(f"{path}: cannot be read as {'gzip' if _is_gzip(path) else 'text'} "
                         f"({err}); the file may be truncated or corrupt: re-create it or remove "
                         "it from --config.data.corpus") from err
    if bad > good:
        raise ValueError(
            f"{path}: {bad} of its {bad + good} lines are not valid UTF-8: the file is in another "
            "encoding (or binary). Re-encode it as UTF-8, e.g. `iconv -f latin1 -t utf-8 in.txt "
            "> out.txt`, or remove it from --config.data.corpus")
    if own:
        skipped.warn(path)


def _is_gzip(path: str) -> bool:
    return paths.is_gzip(path)


class Document(list):
    """A document: a list of sentences that remembers where it starts (``origin``, "path:line").

    It compares equal to the plain list of its sentences; slices and copies are plain lists.
    """

    def __init__(self, sentences=(), origin: str = ""):
        super().__init__(sentences)
        self.origin = origin


def origin(doc) -> str:
    """Where a document starts (``"path:line"``), or ``"?"`` when it does not say."""
    return getattr(doc, "origin", "") or "?"


def _chunks(text: str, size: int) -> Iterator[str]:
    """``text`` in pieces of at most ``size`` characters, cut at a space where one is near."""
    start = 0
    while len(text) - start > size:
        cut = text.rfind(" ", start + size // 2, start + size)
        cut = start + size if cut < 0 else cut
        yield text[start:cut]
        start = cut
    yield text[start:]


def split_long_line(text: str, max_chars: int = MAX_LINE_CHARS) -> list[str]:
    """A line of more than ``max_chars`` characters as sentences (:func:`split_sentences`), each
    cut into pieces of at most ``max_chars`` characters: a bounded tokenizer input, whatever the
    line. Time and memory are linear in the line's length."""
    pieces = []
    for sentence in split_sentences(text):
        pieces.extend(p.strip() for p in _chunks(sentence, max_chars))
    return [p for p in pieces if p]


def documents_from_lines(lines: Iterable[tuple[str, str]], skipped: Skipped | None = None,
                         max_chars: int = MAX_LINE_CHARS) -> list[Document]:
    """Documents from ``(location, text)`` lines: one sentence per line, blank lines between
    documents. Pure: :func:`read_text_file` feeds it a file's lines.

    A line longer than ``max_chars`` characters is split into sentences of at most that many
    (:func:`split_long_line`, counted in ``skipped``), so no sentence given to the tokenizer is
    unbounded.

    Returns:
      Documents, each a non-empty :class:`Document` of stripped sentences, in order.
    """
    return list(iter_documents(lines, skipped, max_chars))


def iter_documents(lines: Iterable[tuple[str, str]], skipped: Skipped | None = None,
                   max_chars: int = MAX_LINE_CHARS) -> Iterator[Document]:
    """:func:`documents_from_lines`, one document at a time (a streamed corpus never holds a
    whole file)."""
    skipped = Skipped() if skipped is None else skipped
    current = None
    for where, text in lines:
        text = text.strip()
        if not text:
            if current:
                yield current
            current = None
            continue
        if current is None:
            current = Document(origin=where)
        if len(text) > max_chars:
            skipped.add(LONG_LINE, where)
            current.extend(split_long_line(text, max_chars))
        else:
            current.append(text)
    if current:
        yield current


def read_text_file(path: str, skipped: Skipped | None = None) -> list[Document]:
    """Reads one file of sentences, one per line, with a blank line between documents.

    Lines that are not UTF-8 are skipped, and lines longer than :data:`MAX_LINE_CHARS` split into
    sentences; both are counted in ``skipped`` (with None, reported here once).

    Returns:
      Documents, each a non-empty :class:`Document` of sentence strings, in file order; none for
      a file without a sentence (the caller decides whether that is an error).

    Raises:
      ValueError: when the file looks binary, is mostly not UTF-8, or is a broken gzip file.
    """
    own = skipped is None
    skipped = Skipped() if own else skipped
    lines = ((f"{path}:{n}", text) for n, text in iter_lines(path, skipped))
    documents = documents_from_lines(lines, skipped)
    if own:
        skipped.warn(path)
    return documents
