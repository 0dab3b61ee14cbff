"""Bad pretraining and fine-tuning input: each case gives an error that names the file, the line
and the fix, or skips the bad part, counts it and reports it once, losing nothing else.

Corpus cases go through ``pipeline.load_corpus``/``make_dataset`` (and the CLM and PLM pipelines)
as a run does; task cases through ``data.tasks.load_examples``.
"""

import gzip
import itertools
import json
import logging
import time

import numpy as np
import pytest

from data import clm, pipeline, plm, sources, task_sources, tasks, text_files, tokenizer
from data.skipped import Skipped
from data.tokenizer import Tokenizer
from tests.data.batch_checks import check_schema, check_sentence_batch
from tests.data.test_tasks import task_options

B, L, P = 4, 32, 5


def _good_doc(d: int, sentences: int = 3) -> str:
    return "\n".join(f"Document {d} says sentence {s} about the sea." for s in range(sentences))


def _corpus(path, docs: list[str], encoding=None) -> str:
    data = "\n\n".join(docs) + "\n"
    path.write_bytes(data.encode("utf-8") if encoding is None else data)
    return str(path)


def _options(data_options, corpus: str, **overrides):
    fields = dict(max_seq_length=L, max_predictions_per_seq=P, sop_swap_prob=0.5,
                  order_min_segments=1, order_max_segments=3, plm_k=4.0, plm_max_span=3,
                  perm_size=0)
    return data_options(corpus, **{**fields, **overrides})


def _batches(opts, objectives=("mlm", "nsp"), n=2, split="train"):
    return list(itertools.islice(pipeline.make_dataset(
        opts.corpus, opts.instances, split, batch_size=B, seed=0, objectives=objectives), n))


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.load("embedded")


# Corpus files.

def test_a_missing_file_is_named(tmp_path, data_options):
    with pytest.raises(ValueError, match=r"corpus path or glob '.*nope\.txt' matches no file; "
                                         r"check the path .* or use 'embedded'"):
        pipeline.load_corpus(data_options(str(tmp_path / "nope.txt")).corpus)


def test_an_empty_file_alone_is_an_error_among_others_skipped(tmp_path, data_options, caplog):
    empty = tmp_path / "b_empty.txt"
    empty.write_text("\n  \n\n")
    with pytest.raises(ValueError, match=r"no sentences in .*b_empty\.txt; a corpus file holds "
                                         r"one sentence per line"):
        pipeline.load_corpus(data_options(str(empty)).corpus)
    _corpus(tmp_path / "a.txt", [_good_doc(d) for d in range(6)])
    corpus = pipeline.load_corpus(data_options(f"{tmp_path}/*.txt").corpus)
    assert len(corpus.train_docs) + len(corpus.eval_docs) == 6
    assert _warnings(caplog) == [
        f"corpus '{tmp_path}/*.txt': 1 file without a sentence was skipped ({empty}); remove "
        "empty files from --config.data.corpus"]


def test_lines_not_utf8_are_skipped_counted_and_located(tmp_path, data_options, caplog):
    docs = [_good_doc(d) for d in range(6)]
    text = "\n\n".join(docs).encode()
    text = text.replace(b"Document 1 says sentence 1", b"Caf\xe9 1 says sentence 1")
    text = text.replace(b"Document 4 says sentence 0", b"\xff\xfe 4 says sentence 0")
    path = tmp_path / "mixed.txt"
    path.write_bytes(text + b"\n")
    skipped = Skipped()
    got = sources.read_documents(str(path), skipped=skipped)
    want = [d.split("\n") for d in docs]
    del want[1][1], want[4][0]
    assert got == want and skipped.count(text_files.BAD_UTF8) == 2
    pipeline.load_corpus(data_options(str(path)).corpus)
    assert _warnings(caplog) == [
        f"corpus '{path}': 2 lines that are not valid UTF-8 were skipped ({path}:6, {path}:17); "
        "re-encode the files as UTF-8 (e.g. `iconv -f latin1 -t utf-8 in.txt > out.txt`) to "
        "keep them"]


@pytest.mark.parametrize("content, problem", [
    (bytes(range(256)) * 40, r"looks binary \(\d+ of its first 8192 bytes are NUL or not UTF-8"),
    ("A text in UTF-16.\n".encode("utf-16") * 50, r"looks binary .*UTF-16, Latin-1"),
    ("Café au lait is served every morning in the old town.\n".encode("latin-1") * 20
     + b"ok\n",
     r"20 of its 21 lines are not valid UTF-8: the file is in another encoding .*iconv"),
    (gzip.compress("".join(f"Sentence {i}.\n" for i in range(5000)).encode())[:5000],
     r"cannot be read as gzip .*truncated"),
])
def test_binary_wrong_encoding_and_truncated_files_are_errors(tmp_path, data_options, content,
                                                              problem):
    _corpus(tmp_path / "a.txt", [_good_doc(d) for d in range(6)])
    (tmp_path / "b.txt").write_bytes(content)
    with pytest.raises(ValueError, match=r"b\.txt: " + problem):
        pipeline.load_corpus(data_options(f"{tmp_path}/*.txt").corpus)


def test_a_10mb_line_is_split_in_bounded_time(tmp_path, data_options, caplog, tok):
    words = " ".join(f"word{i % 997}" for i in range(100))  # long sentences: fewer instances
    line = " ".join(f"Sentence {i} has {words}." for i in range(10 ** 7 // 700))
    blob = "x" * 200_000  # a line with no space and no sentence end: cut into pieces
    path = _corpus(tmp_path / "long.txt", [_good_doc(0), "Before.\n" + line + "\nAfter.",
                                           *(_good_doc(d) for d in range(1, 5)), blob])
    assert len(line) >= 10 ** 7
    start = time.perf_counter()
    docs = sources.read_documents(path)
    read_s = time.perf_counter() - start
    limit = text_files.MAX_LINE_CHARS
    assert all(len(s) <= limit for d in docs for s in d)
    assert " ".join(docs[1][1:-1]) == line and docs[1][0] == "Before."
    assert "".join(docs[-1]) == blob and len(docs[-1]) == 4
    opts = _options(data_options, path)
    start = time.perf_counter()
    batch = _batches(opts, n=1)[0]
    first_batch_s = time.perf_counter() - start
    check_sentence_batch(batch, ("mlm", "nsp"), batch_size=B, max_seq_length=L,
                         max_predictions=P, vocab_size=tok.vocab_size)
    print(f"10 MB line: read {read_s:.2f} s, first batch {first_batch_s:.2f} s")
    assert f"({path}:6, {path}:25); put one sentence per line" in "\n".join(_warnings(caplog))
    assert "2 lines longer than 65536 characters were split into sentences" in caplog.text


def test_documents_too_short_are_skipped_per_task(tmp_path, data_options, tok, caplog):
    word = next(w for w in ("the", "sea", "a") if len(tok.encode([w])[0]) == 1)
    docs = [_good_doc(0), "One lonely sentence.", _good_doc(1), word, _good_doc(2),
            _good_doc(3), _good_doc(4), "Another single sentence here.", _good_doc(5)]
    path = _corpus(tmp_path / "short.txt", docs)
    corpus = pipeline.load_corpus(_options(data_options, path).corpus)
    assert len(corpus.eval_docs) == 1 and len(corpus.eval_docs[0]) == 3  # a good one
    for task, skipped in (("nsp", "3 documents with fewer than 2 sentences were skipped (NSP "
                                  "needs a sentence that follows another) "
                                  f"({path}:5, {path}:11, {path}:25)"),
                          ("sop", f"1 document with fewer than 2 tokens was skipped (SOP needs 2 "
                                  f"segments) ({path}:11)"),
                          ("order", f"1 document with fewer than 2 tokens was skipped (order "
                                    f"needs 2 segments) ({path}:11)")):
        caplog.clear()
        opts = _options(data_options, path, order_min_segments=2)
        for batch in _batches(opts, ("mlm", task), n=3):
            check_sentence_batch(batch, ("mlm", task), batch_size=B, max_seq_length=L,
                                 max_predictions=P, vocab_size=tok.vocab_size)
        assert _warnings(caplog) == [f"corpus '{path}', train split: {skipped}; " + (
            "give every document at least 2 sentences, one per line, with blank lines only "
            "between documents" if task == "nsp" else
            "such documents hold almost no text; join them to their neighbours to keep it")]
        _batches(opts, ("mlm", task), n=3)
        assert len(_warnings(caplog)) == 1  # reported once


def test_nothing_left_after_filtering_names_the_corpus_the_rule_and_the_fix(tmp_path,
                                                                            data_options):
    path = _corpus(tmp_path / "lines.txt", [f"Sentence {d} stands alone." for d in range(12)])
    with pytest.raises(ValueError, match=(
            r"corpus '.*lines\.txt': none of its 11 train documents is long enough for NSP: 11 "
            r"documents with fewer than 2 sentences were skipped .*lines\.txt:1, .*lines\.txt:3, "
            r".*, and 8 more\)\. Fix: give every document at least 2 sentences, one per line, "
            r"with blank lines only between documents, or pretrain without nsp")):
        _batches(_options(data_options, path))
    for batch in _batches(_options(data_options, path), ("mlm", "sop")):  # SOP cuts inside them
        assert batch["sop_labels"].shape == (B,)
    controls = _corpus(tmp_path / "controls.txt", ["\x01\x02\n\x7f"] * 5)
    with pytest.raises(ValueError, match=(
            r"corpus '.*controls\.txt' has 0 documents after what was skipped \(10 sentences "
            r"that tokenise to nothing were dropped \(.*controls\.txt:1 sentence 1, .*, and 7 "
            r"more\)\); with eval_fraction=0\.1 that leaves fewer than 2 for training")):
        pipeline.load_corpus(data_options(controls).corpus)


def test_an_eval_split_left_empty_is_an_error_not_a_hang(tmp_path, data_options):
    docs = [_good_doc(d) for d in range(10)]
    docs[5] = "The held-out document has one sentence."  # the one eval document (of 10)
    opts = _options(data_options, _corpus(tmp_path / "c.txt", docs))
    assert len(_batches(opts)) == 2  # train is fine
    with pytest.raises(ValueError, match=r"none of its 1 eval documents is long enough for NSP: .*"
                                         r"c\.txt:21\)\. Fix: .*; or raise "
                                         r"--config\.data\.eval_fraction, or pretrain without nsp"):
        _batches(opts, split="eval")
    # Documents that can never give an instance (the filter above keeps them out) stop the
    # stream with an error instead of looping forever.
    one_token = [[np.array([100], np.int32)]]
    with pytest.raises(ValueError, match=r"data shard 0: 100 passes over its 1 documents gave no "
                                         r"order instance"):
        next(pipeline._train_epochs(
            one_token, _options(data_options, "x", order_min_segments=2).instances, 0, 0, B, 0,
            "order"))


def test_clm_and_plm_read_dirty_corpora_too(tmp_path, data_options, tok):
    text = "\n\n".join([_good_doc(0), "Single.", _good_doc(1), "x" * 70_000, _good_doc(2),
                        _good_doc(3)]).encode() + b"\n\nBad \xe9 line.\n" + b"\n\n".join(
        _good_doc(d).encode() for d in range(4, 9)) + b"\n"
    (tmp_path / "dirty.txt").write_bytes(text)
    (tmp_path / "empty.txt").write_text("")
    opts = _options(data_options, f"{tmp_path}/*.txt")
    for split in ("train", "eval"):
        batch = next(clm.make_dataset(opts.corpus, opts.clm, split, batch_size=B, seed=0))
        check_schema(batch, "clm", B=B, L=L)
        assert batch["token_ids"].max() < tok.vocab_size
        assert set(np.unique(batch["clm_weights"]).tolist()) <= {0.0, 1.0}
        batch = next(plm.make_dataset(opts.corpus, opts.plm, split, batch_size=B, seed=0))
        check_schema(batch, "plm", B=B, L=L, P=P)
        assert batch["token_ids"].max() < tok.vocab_size
    for task in ("nsp", "sop", "order"):
        for split in ("train", "eval"):
            batch = _batches(opts, ("mlm", task), n=1, split=split)[0]
            check_sentence_batch(batch, ("mlm", task), batch_size=B, max_seq_length=L,
                                 max_predictions=P, vocab_size=tok.vocab_size)


def test_tokenizer_training_skips_the_same_lines(tmp_path, fixture_corpus, caplog):
    text = gzip.decompress(open(fixture_corpus, "rb").read())
    path = tmp_path / "train.txt"
    path.write_bytes(b"Caf\xe9 noir.\n" + text + b"\n" + b"word " * 20_000 + b"\n")
    model = tokenizer.train([str(path)], str(tmp_path / "tok"), vocab_size=300)
    assert Tokenizer.load(model).vocab_size == 300
    assert _warnings(caplog)[0] == (
        f"tokenizer training text: 1 line that is not valid UTF-8 was skipped ({path}:1); "
        "re-encode the files as UTF-8 (e.g. `iconv -f latin1 -t utf-8 in.txt > out.txt`) to "
        "keep them")


# Fine-tuning task files.

def _task(tmp_path, name: str, content: bytes, **overrides):
    (tmp_path / name).write_bytes(content)
    path = str(tmp_path / name)
    return task_options("file", train_path=path, dev_path=path, test_path=path, **overrides)


@pytest.mark.parametrize("name, content, overrides, problem", [
    ("t.tsv", b"text\tlabel\nfine\tpos\nbad\tmeh\n", dict(labels="neg,pos"),
     r"t\.tsv, line 3: label 'meh' is not one of the task's labels \['neg', 'pos'\]; list every "
     r"label, in class-index order, with --config.task.labels=neg,pos,meh"),
    ("t.tsv", b"text\tlabel\nfine\t\n", dict(labels="neg,pos"),
     r"t\.tsv, line 2: the label is empty; fill it in \(one of \['neg', 'pos'\]\) or remove"),
    ("t.tsv", b"text\tlabel\nfine\tpos\nfine\t\n", {},
     r"t\.tsv, line 3: the label is empty; fill it in or remove the row"),
    ("t.csv", b"sentence,label\nfine,pos\n", dict(labels="neg,pos"),
     r"t\.csv, line 2: no column 'text'; the columns are \['label', 'sentence'\]\. Name the "
     r"right one with --config.task.text_column=<column>"),
    ("t.jsonl", b'{"text": "ok", "label": "pos"}\n{"text": "ok"}\n', dict(labels="neg,pos"),
     r"t\.jsonl, line 2: no column 'label'; the columns are \['text'\]\. Name the right one "
     r"with --config.task.label_column=<column>"),
    ("t.tsv", "text\tlabel\nfine\tpos\nDéjà vu\tneg\n".encode("latin-1"), dict(labels="neg,pos"),
     r"t\.tsv, line 3: not valid UTF-8 \(invalid continuation byte\); a task file is UTF-8 "
     r"text: re-encode it, e\.g\. `iconv -f latin1 -t utf-8 in\.tsv > out\.tsv`"),
    # Any field size is read (as in JSONL), so a quote never closed swallows the rest of the file
    # into one field: the field count names where it opened.
    ("t.csv", b'text,label\n"a quote never closed,pos\n' + b"more text\n" * 20_000,
     dict(labels="neg,pos"), r"t\.csv, line 2: 1 fields but the header has 2 \(\['text', "
                             r"'label'\]\) \(one quoted field runs from line 2 to line 20002: is "
                             r"a quote never closed\?\); check the delimiter and quoting"),
    ("t.tsv", b"text\tlabel\tlabel\nfine\tpos\tneg\n", dict(labels="neg,pos"),
     r"t\.tsv, line 1: the header names the column 'label' twice \(columns 2 and 3\); rename or "
     r"remove one"),
    ("t.csv", b"label,text,label\npos,fine,neg\n", {},
     r"t\.csv, line 1: the header names the column 'label' twice \(columns 1 and 3\)"),
    ("t.jsonl", b'{"text": "a", "label": "pos"}\n{"text": "b", "label": "pos", "label": "neg"}\n',
     dict(labels="neg,pos"), r"t\.jsonl, line 2: the key 'label' appears twice in one object; "
                             r"keep one"),
])
def test_task_file_errors_name_file_line_and_fix(tmp_path, name, content, overrides, problem):
    with pytest.raises(ValueError, match=problem):
        tasks.load_examples(_task(tmp_path, name, content, **overrides), "train")


def test_task_file_empty_texts_are_skipped_counted_and_located(tmp_path, caplog, tok):
    rows = "".join(f"text {i}\t{'pos' if i % 2 else 'neg'}\n" for i in range(30))
    content = "\ufefftext\tlabel\n\tpos\n" + rows + "   \tneg\n"  # a spreadsheet's BOM too
    task = _task(tmp_path, "t.tsv", content.encode(), labels="neg,pos")
    examples = tasks.load_examples(task, "test")
    assert examples["text_a"] == [f"text {i}" for i in range(30)]
    assert examples["labels"].tolist() == [i % 2 for i in range(30)]
    path = tmp_path / "t.tsv"
    assert _warnings(caplog)[-1] == (
        f"{path}: 2 rows with an empty text were skipped (line 2, line 33); fill in the text or "
        "remove those rows (in dev/test they are not scored)")
    batch = next(tasks.make_dataset(task, "train", tokenizer=tok, max_seq_length=16,
                                    batch_size=4, seed=0))
    check_schema(batch, "classification", B=4, L=16)


def test_a_damaged_embedded_task_file_says_so(tmp_path, monkeypatch):
    path = tmp_path / "topic.tsv.gz"
    path.write_bytes(gzip.compress(b"noun.act\tan act\nnoun.nope\tsomething\n"))
    monkeypatch.setattr(task_sources, "embedded_task_file", lambda name: str(path))
    with pytest.raises(ValueError, match=r"topic\.tsv\.gz, line 2: label 'noun\.nope' is not one "
                                         r"of .*; the shipped file is damaged: reinstall pretrax"):
        task_sources._read_classification("topic_wordnet")


@pytest.mark.parametrize("name", ["t.tsv", "t.csv", "t.jsonl"])
def test_a_20mb_field_reads_the_same_in_tsv_csv_and_jsonl(tmp_path, name):
    long_text = "word " * 4_000_000  # 20 MB in one field, past the csv module's 128 KiB
    rows = [(long_text, "pos")] + [(f"short text {i}", "neg") for i in range(30)]
    if name.endswith("jsonl"):
        content = "".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows)
    else:
        sep = "\t" if name.endswith("tsv") else ","
        content = f"text{sep}label\n" + "".join(f"{t}{sep}{lab}\n" for t, lab in rows)
    task = _task(tmp_path, name, content.encode(), labels="neg,pos")
    examples = tasks.load_examples(task, "test")
    assert examples["text_a"] == [t.strip() for t, _ in rows]
    assert examples["labels"].tolist() == [1] + [0] * 30


def _texts_in(split: str, n: int) -> list[str]:
    """``n`` texts whose hash puts them in ``split`` when carved from a train file."""
    texts = (f"row {i}" for i in itertools.count())
    return list(itertools.islice((t for t in texts if task_sources.split_of(t + "\t") == split),
                                 n))


def test_a_split_left_empty_by_the_carving_says_how_many_rows_and_what_to_do(tmp_path):
    (tmp_path / "one.tsv").write_text(f"text\tlabel\n{_texts_in('train', 1)[0]}\tpos\n")
    task = task_options("file", train_path=str(tmp_path / "one.tsv"), labels="neg,pos")
    assert len(tasks.load_examples(task, "train")["labels"]) == 1
    with pytest.raises(ValueError, match=r"one\.tsv has 1 usable row; the dev split is carved "
                       r"from it \(the rows whose text hashes into its 10% bucket\) and got "
                       r"none\. Give a dev file with --config\.task\.dev_path=FILE, or use more "
                       r"rows"):
        tasks.load_examples(task, "dev")
    (tmp_path / "two.tsv").write_text("text\tlabel\n" + "".join(
        f"{t}\tpos\n" for t in _texts_in("dev", 1) + _texts_in("test", 1)))
    task = task_options("file", train_path=str(tmp_path / "two.tsv"), labels="neg,pos")
    with pytest.raises(ValueError, match=r"two\.tsv: its 2 usable rows all went to the dev and "
                       r"test splits carved from it, leaving none to train on; give "
                       r"--config\.task\.dev_path=FILE and --config\.task\.test_path=FILE"):
        tasks.num_examples(task, "train")
    task = task_options("file", train_path=str(tmp_path / "two.tsv"), labels="neg,pos",
                        dev_path=str(tmp_path / "one.tsv"), test_path=str(tmp_path / "one.tsv"))
    assert tasks.num_examples(task, "train") == 2  # nothing carved: every row trains
