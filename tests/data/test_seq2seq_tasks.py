"""Seq2seq tasks: the shipped files' splits, the direction flag, the generative QA view, the
bring-your-own files and the TFDS feature mapping (against tfds.testing.mock_data, offline)."""

import gzip
import json

import pytest

from data import seq2seq_tasks, tasks
from data.options import TaskOptions

# Pinned from data/tasks/seq2seq/PROVENANCE.md (this copy's rows); a change means a changed split.
SIZES = {
    "translation_bible_es_en": (27174, 1624, 1629),
    "translation_bible_en_es": (27174, 1624, 1629),
    "summarization_debian_desc": (30425, 1756, 870),
    "qa_disflqa_generative": (6364, 787, 849),  # the span-QA task's split
}


@pytest.mark.parametrize("name", sorted(SIZES))
def test_split_sizes_and_kind(name):
    task = TaskOptions(name)
    assert tasks.task_spec(task).kind == "seq2seq"
    got = tuple(tasks.num_examples(task, s) for s in ("train", "dev", "test"))
    assert got == SIZES[name]


def test_the_direction_flag_swaps_source_and_target():
    es_en = tasks.load_examples(TaskOptions("translation_bible_es_en"), "test")
    en_es = tasks.load_examples(TaskOptions("translation_bible_en_es"), "test")
    assert es_en["source"] == en_es["target"] and es_en["target"] == en_es["source"]
    assert es_en["source"][0].startswith("Este es el libro de las generaciones de Adam.")
    assert es_en["id"][0] == "Gen 5:1"


def test_bible_splits_are_whole_chapters():
    chapters = {}
    for row in seq2seq_tasks.bible_rows():
        chapters.setdefault(f"{row['book']} {row['chapter']}", set()).add(row["split"])
    assert all(len(s) == 1 for s in chapters.values())


def test_summarization_examples_are_document_to_synopsis():
    ex = tasks.load_examples(TaskOptions("summarization_debian_desc"), "train")
    assert ex["id"][0] == "debian:0ad"
    assert ex["target"][0] == "Real-time strategy game of ancient warfare"
    assert ex["source"][0].startswith("0 A.D. (pronounced")


def test_generative_qa_targets_are_answers_or_unanswerable():
    spans = tasks.load_examples(TaskOptions("qa_disflqa"), "train")
    gen = tasks.load_examples(TaskOptions("qa_disflqa_generative"), "train")
    assert gen["id"] == [ex["id"] for ex in spans]
    assert gen["target"].count(seq2seq_tasks.UNANSWERABLE) == 1677  # PROVENANCE: unanswerable
    first = spans[0]
    assert gen["source"][0] == f"question: {first['question']} context: {first['context']}"
    assert gen["target"][0] == first["answers"][0]["text"]


def test_generative_qa_scores_a_perfect_answer_sheet_100():
    examples = tasks.load_examples(TaskOptions("qa_disflqa_generative"), "dev")
    scores = seq2seq_tasks.generative_qa_scores(
        dict(zip(examples["id"], examples["target"], strict=True)), "dev")
    assert scores["exact"] == 100.0 and scores["NoAns_total"] == 210.0
    wrong = dict.fromkeys(examples["id"], seq2seq_tasks.UNANSWERABLE)
    assert seq2seq_tasks.generative_qa_scores(wrong, "dev")["exact"] == pytest.approx(
        100 * 210 / 787)


def test_generative_qa_baseline_answers_unanswerable_everywhere():
    from launch.evaluation import seq2seq as scoring
    examples = tasks.load_examples(TaskOptions("qa_disflqa_generative"), "dev")
    spec = seq2seq_tasks.seq2seq_spec(TaskOptions("qa_disflqa_generative"))
    base = scoring.baselines(spec, examples["source"], examples["target"], examples["id"], "dev")
    assert base == {"always_unanswerable_exact": pytest.approx(100 * 210 / 787),
                    "always_unanswerable_f1": pytest.approx(100 * 210 / 787)}
    half = scoring.baselines(spec, [], [], examples["id"][:100], "dev")  # only the ids given
    no_answer = sum(t == seq2seq_tasks.UNANSWERABLE for t in examples["target"][:100])
    assert half["always_unanswerable_exact"] == pytest.approx(no_answer)


def _write(path, rows, fmt):
    if fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        keys = list(rows[0])
        lines = ["\t".join(keys)] + ["\t".join(r[k] for k in keys) for r in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.parametrize("fmt", ["tsv", "jsonl"])
def test_a_file_task_carves_dev_and_test_by_source_hash(tmp_path, fmt):
    rows = [{"source": f"frase número {i}", "target": f"sentence number {i}"} for i in range(200)]
    path = tmp_path / f"pairs.{fmt}"
    _write(path, rows, fmt)
    task = TaskOptions("file", kind="seq2seq", train_path=str(path))
    parts = {s: tasks.load_examples(task, s) for s in ("train", "dev", "test")}
    assert sum(len(p["source"]) for p in parts.values()) == 200
    assert 140 <= len(parts["train"]["source"]) <= 180
    assert not set(parts["train"]["source"]) & set(parts["test"]["source"])
    for source, target in zip(parts["dev"]["source"], parts["dev"]["target"], strict=True):
        assert target == source.replace("frase número", "sentence number")  # pairs kept


def test_a_file_task_with_its_own_columns_and_dev_file(tmp_path):
    train, dev = tmp_path / "train.tsv", tmp_path / "dev.tsv.gz"
    _write(train, [{"de": f"Satz {i}", "en": f"sentence {i}"} for i in range(50)], "tsv")
    with gzip.open(dev, "wt", encoding="utf-8") as f:
        f.write("de\ten\nHallo\tHello\n")
    task = TaskOptions("file", kind="seq2seq", train_path=str(train), dev_path=str(dev),
                       source_column="de", target_column="en")
    assert tasks.load_examples(task, "dev")["source"] == ["Hallo"]
    # The train file keeps the rows of the dev bucket (dev comes from its own file).
    assert len(tasks.load_examples(task, "train")["source"]) + len(
        tasks.load_examples(task, "test")["source"]) == 50


def test_a_missing_column_is_a_one_line_error(tmp_path):
    path = tmp_path / "x.tsv"
    _write(path, [{"src": "a", "tgt": "b"}], "tsv")
    with pytest.raises(ValueError, match=r"no column 'source'.*source_column"):
        tasks.load_examples(TaskOptions("file", kind="seq2seq", train_path=str(path)), "train")


def test_an_unknown_seq2seq_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="translation_bible_es_en"):
        seq2seq_tasks.seq2seq_spec(TaskOptions("nope"))


@pytest.mark.parametrize("name,source,target", [
    ("wmt14_translate/de-en", "de", "en"),
    ("cnn_dailymail", "article", "highlights"),
    ("xsum", "document", "summary"),
])
def test_tfds_tasks_map_their_features_to_source_and_target(name, source, target):
    tfds = pytest.importorskip("tensorflow_datasets")
    from data import seq2seq_tfds

    assert seq2seq_tfds.TFDS_SEQ2SEQ[name] == (source, target)
    with tfds.testing.mock_data(num_examples=4):
        got = tasks.load_examples(TaskOptions(name), "dev")
        raw = list(tfds.as_numpy(tfds.load(name, split="validation")))
    assert got["source"] == [ex[source].decode() for ex in raw]
    assert got["target"] == [ex[target].decode() for ex in raw]
    assert len(got["id"]) == 4


def test_the_tfds_builder_matches_the_fast_path(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    import data.task_builders  # noqa: F401  Registers the builders.

    rows = list(tfds.as_numpy(tfds.load("translation_bible_en_es", split="test",
                                        data_dir=str(tmp_path))))
    fast = tasks.load_examples(TaskOptions("translation_bible_en_es"), "test")
    assert [r["source"].decode() for r in rows] == fast["source"]
    assert [r["target"].decode() for r in rows] == fast["target"]
    assert [r["id"].decode() for r in rows] == fast["id"]
