"""Tests for the fine-tuning task data: data/tasks.py, task_sources.py, task_files.py and the
TFDS builders of task_builders.py.

Small bring-your-own files are written into tmp_path by the tests themselves; the embedded tasks
are the real shipped files.
"""

import dataclasses
import gzip
import json
import logging

import numpy as np
import pytest

from data import features, task_sources, task_tfds, tasks
from data.options import TaskOptions
from data.tokenizer import Tokenizer

# Measured once and recorded in data/tasks/PROVENANCE.md; a change means the split changed.
SIZES = {
    "sentiment_rt": (8544, 1003, 1021),
    "topic_wordnet": (65506, 8310, 8248),
    "nli_vitaminc": (44801, 4510, 5357),
    "paraphrase_bible": (49534, 6892, 5764),
    "qa_disflqa": (6364, 787, 849),
}


def task_options(name="sentiment_rt", **overrides) -> TaskOptions:
    """A task's options: the defaults of launch/configs/finetune.py, ``overrides`` by name."""
    return TaskOptions(name, **overrides)


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.load("embedded")


# Splits of the embedded tasks.

def test_split_of_is_stable_and_80_10_10():
    # Golden values: these pin the MD5 bucketing, so the published splits cannot drift.
    assert [task_sources.split_of(k) for k in ("Gen 1", "Westlife", "k2", "k9")] == [
        "train", "test", "dev", "dev"]
    keys = [f"key {i}" for i in range(20_000)]
    got = [task_sources.split_of(k) for k in keys]
    assert got == [task_sources.split_of(k) for k in keys]
    fractions = [got.count(s) / len(got) for s in task_sources.SPLITS]
    assert fractions == pytest.approx([0.8, 0.1, 0.1], abs=0.01)


@pytest.mark.parametrize("name", list(SIZES))
def test_embedded_sizes_and_labels(name):
    spec = tasks.TASKS[name]
    task = task_options(name)
    sizes = tuple(tasks.num_examples(task, s) for s in task_sources.SPLITS)
    assert sizes == SIZES[name]
    if spec.kind == "span_qa":
        return
    train = tasks.load_examples(task, "train")
    assert train["labels"].dtype == np.int32
    # Every class occurs in train; indices stay inside the label set.
    assert set(np.unique(train["labels"])) == set(range(len(spec.label_names)))
    assert (train["text_b"] is not None) == spec.pair


def test_label_sets_and_counts():
    def counts(name):
        labels = np.concatenate([tasks.load_examples(task_options(name), s)["labels"]
                                 for s in task_sources.SPLITS])
        names = tasks.TASKS[name].label_names
        return dict(zip(names, np.bincount(labels, minlength=len(names)).tolist(), strict=True))

    # 37 neutral sentences are dropped.
    assert counts("sentiment_rt") == {"negative": 5326, "positive": 5242}
    assert counts("nli_vitaminc") == {"SUPPORTS": 27242, "REFUTES": 20169,
                                      "NOT ENOUGH INFO": 7257}
    assert counts("paraphrase_bible") == {"not_paraphrase": 31095, "paraphrase": 31095}
    topic = counts("topic_wordnet")  # No header row: all 82,064 lines are examples.
    assert len(topic) == 25 and sum(topic.values()) == 82064
    assert list(topic) == sorted(topic) and topic["noun.motive"] == 42


def _groups_by_split(name, group_of_record):
    return {s: {group_of_record(r) for r in task_sources.embedded_splits(name)[s]}
            for s in task_sources.SPLITS}


def _raw_group_map(name, key_columns, group):
    """record texts → group, from the raw rows, for texts that occur in exactly one group."""
    how = task_sources._EMBEDDED_CLASSIFICATION[name]
    seen = {}
    for _, row in task_sources._tsv_rows(task_sources.embedded_task_file(name), how):
        seen.setdefault(tuple(row[c] for c in key_columns), set()).add(group(row))
    return {key: next(iter(g)) for key, g in seen.items() if len(g) == 1}


@pytest.mark.parametrize("name", list(SIZES))
def test_groups_never_straddle_splits(name):
    if name in ("sentiment_rt", "topic_wordnet"):
        groups = _groups_by_split(name, lambda r: task_sources.normalise(r[0]))
    elif name == "qa_disflqa":
        groups = _groups_by_split(name, lambda r: r["context"])
    else:
        # Groups of these tasks are not in the records: look them up from the raw rows, keeping
        # only records whose texts occur in one group (a refrain such as "And the LORD spake
        # unto Moses, saying," recurs across chapters).
        how = task_sources._EMBEDDED_CLASSIFICATION[name]
        lookup = _raw_group_map(name, (how.text_a, how.text_b), how.group)
        groups = _groups_by_split(name, lambda r: lookup.get((r[0], r[1])))
        for s in groups:
            groups[s].discard(None)
        assert min(len(g) for g in groups.values()) > 50
    train, dev, test = (groups[s] for s in task_sources.SPLITS)
    assert not (train & dev or train & test or dev & test)


def test_qa_examples():
    examples = tasks.load_examples(task_options("qa_disflqa"), "dev")
    assert isinstance(examples, list) and len(examples) == SIZES["qa_disflqa"][1]
    for ex in examples:
        assert set(ex) == {"id", "question", "context", "answers", "is_impossible"}
        assert isinstance(ex["id"], str) and isinstance(ex["is_impossible"], bool)
        assert ex["is_impossible"] == (not ex["answers"])
        for a in ex["answers"]:
            start = a["answer_start"]
            assert ex["context"][start:start + len(a["text"])] == a["text"]


def test_copies_and_bad_names():
    task = task_options("sentiment_rt")
    tasks.load_examples(task, "dev")["text_a"].clear()  # The cache must not see this.
    assert len(tasks.load_examples(task, "dev")["text_a"]) == SIZES["sentiment_rt"][1]
    with pytest.raises(ValueError, match="unknown task"):
        tasks.task_spec(task_options("glue/nope"))
    with pytest.raises(ValueError, match="split"):
        tasks.load_examples(task_options(), "validation")


# Encoding.

def _reference_truncation(len_a, len_b, budget):
    while len_a + len_b > budget:  # BERT's _truncate_seq_pair.
        if len_a > len_b:
            len_a -= 1
        else:
            len_b -= 1
    return len_a, len_b


def test_truncated_lengths_equals_the_loop():
    for budget, len_a, len_b in np.ndindex(14, 16, 16):
        want = _reference_truncation(len_a, len_b, budget)
        assert tasks.truncated_lengths(len_a, len_b, budget) == want, (len_a, len_b, budget)


def test_encode_single_and_pair(tok, caplog):
    caplog.set_level(logging.INFO)
    short, long = "A fine film.", " ".join(["word"] * 40)
    single = tasks.encode(tok, {"text_a": [short, long], "text_b": None,
                                "labels": np.array([1, 0], np.int32)}, 16)
    ids = tok.encode([short])[0]
    assert single["token_ids"].shape == single["type_ids"].shape == (2, 16)
    assert single["token_ids"].dtype == np.int32
    want = [features.CLS_ID, *ids, features.SEP_ID]
    assert single["token_ids"][0, :len(want)].tolist() == want
    assert not single["token_ids"][0, len(want):].any() and not single["type_ids"].any()
    assert single["token_ids"][1, -1] == features.SEP_ID  # Truncated to exactly L.
    assert "truncated 1 of 2" in caplog.text

    pair = tasks.encode(tok, {"text_a": [short], "text_b": [long],
                              "labels": np.array([0], np.int32)}, 16)
    row, types = pair["token_ids"][0], pair["type_ids"][0]
    len_a, len_b = tasks.truncated_lengths(len(ids), len(tok.encode([long])[0]), 13)
    assert row[0] == features.CLS_ID and row[len_a + 1] == features.SEP_ID
    assert row[-1] == features.SEP_ID and len_a + len_b + 3 == 16
    assert types.tolist() == [0] * (len_a + 2) + [1] * (len_b + 1)
    np.testing.assert_array_equal(pair["labels"], [0])


# Batches.

def _write_tsv(path, header, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write("\t".join(header) + "\n")
        for row in rows:
            f.write("\t".join(str(x) for x in row) + "\n")
    return str(path)


@pytest.fixture
def small_task(tmp_path):
    """A 37-row single-text file task (every text distinct) with explicit dev/test files."""
    # Words, not numerals: the embedded tokenizer maps some digits to <unk> (rows would clash).
    words = ("apple bread chair dance eagle fence grape house island jacket kettle lemon mirror "
             "needle orange pencil queen river saddle table umbrella violin window yellow zebra "
             "anchor basket candle desert engine forest garden harbor jungle kitchen ladder "
             "market").split()
    rows = [(f"the {w} is {'good' if i % 3 else 'bad'}", "pos" if i % 3 else "neg")
            for i, w in enumerate(words)]
    train = _write_tsv(tmp_path / "train.tsv", ("text", "label"), rows)
    return task_options("file", train_path=train, dev_path=train, test_path=train,
                        labels="neg,pos")


def _batches(task, split, tok, n, **kwargs):
    kwargs = dict(dict(max_seq_length=16, batch_size=8, seed=3), **kwargs)
    it = tasks.make_dataset(task, split, tokenizer=tok, **kwargs)
    return [next(it) for _ in range(n)] if n else list(it)


def _assert_schema(batch, kind, batch_size, length):
    want = features.shapes(kind, B=batch_size, L=length)
    assert {k: (v.shape, str(v.dtype)) for k, v in batch.items()} == want


def test_make_dataset_schema_embedded(tok):
    for split in ("train", "dev"):
        batch = _batches(task_options("nli_vitaminc", max_train_examples=64), split, tok, 1)[0]
        _assert_schema(batch, "classification", 8, 16)
        assert (batch["type_ids"] == 1).any()  # A pair task.


def test_train_epochs_carry_over(small_task, tok):
    everything = tasks.encode(tok, tasks.load_examples(small_task, "train"), 16)["token_ids"]
    got = np.concatenate([b["token_ids"] for b in _batches(small_task, "train", tok, 5)])
    order = np.r_[np.random.default_rng((3, 0)).permutation(37),
                  np.random.default_rng((3, 1)).permutation(37)][:40]
    np.testing.assert_array_equal(got, everything[order])


def test_label_budget_is_seed_determined(small_task, tok):
    def seen(seed):
        budget = dataclasses.replace(small_task, max_train_examples=10)
        batches = _batches(budget, "train", tok, 4, batch_size=5, seed=seed)
        return {tuple(row) for b in batches for row in b["token_ids"]}

    everything = tasks.encode(tok, tasks.load_examples(small_task, "train"), 16)["token_ids"]
    subset = {tuple(row) for row in everything[tasks.budget_indices(37, 10, seed=3)]}
    assert seen(3) == subset and len(subset) == 10  # 20 rows = 2 epochs of the same 10.
    assert seen(3) == seen(3)
    assert seen(4) != seen(3)


def test_eval_padding_covers_every_example_once(small_task, tok):
    batches = _batches(small_task, "dev", tok, 0)
    assert len(batches) == 5  # ceil(37 / 8)
    weights = np.concatenate([b["example_weights"] for b in batches])
    assert weights.sum() == 37 and weights[37:].sum() == 0
    rows = np.concatenate([b["token_ids"] for b in batches])
    everything = tasks.encode(tok, tasks.load_examples(small_task, "dev"), 16)
    np.testing.assert_array_equal(rows[:37], everything["token_ids"])  # File order, once each.
    assert (rows[37:, :2] == (features.CLS_ID, features.SEP_ID)).all()
    _assert_schema(batches[-1], "classification", 8, 16)


@pytest.mark.parametrize("split", ["train", "dev"])
def test_process_slices_concatenate_to_the_global_batch(small_task, tok, split):
    n = 6 if split == "train" else 0
    whole = _batches(small_task, split, tok, n, batch_size=8)
    parts = [_batches(small_task, split, tok, n, batch_size=4, process_index=p, process_count=2)
             for p in range(2)]
    assert len(parts[0]) == len(parts[1]) == len(whole)
    for k, batch in enumerate(whole):
        for key in batch:
            np.testing.assert_array_equal(
                np.concatenate([parts[0][k][key], parts[1][k][key]]), batch[key])


def test_make_dataset_rejects_span_qa(tok):
    with pytest.raises(ValueError, match="data.qa"):
        tasks.make_dataset(task_options("qa_disflqa"), "train", tokenizer=tok,
                           max_seq_length=16, batch_size=2, seed=0)


# Bring-your-own files.

def test_file_formats_give_the_same_examples(tmp_path):
    rows = [("premise one", "hypothesis, one", "yes"), ("premise \"two\"", "h two", "no")] * 3
    tsv = _write_tsv(tmp_path / "t.tsv", ("a", "b", "y"), rows)
    csv_path = tmp_path / "t.csv.gz"
    with gzip.open(csv_path, "wt", encoding="utf-8") as f:
        f.write("a,b,y\n")
        for a, b, y in rows:
            f.write(",".join('"' + x.replace('"', '""') + '"' for x in (a, b, y)) + "\n")
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text("".join(json.dumps({"a": a, "b": b, "y": y}) + "\n" for a, b, y in rows))
    got = []
    for path in (tsv, str(csv_path), str(jsonl)):
        task = task_options("file", train_path=path, dev_path=path, test_path=path,
                            text_column="a", text_b_column="b", label_column="y", labels="no,yes")
        assert tasks.task_spec(task).pair and tasks.task_spec(task).label_names == ("no", "yes")
        ex = tasks.load_examples(task, "test")
        got.append((ex["text_a"], ex["text_b"], ex["labels"].tolist()))
    assert got[0] == got[1] == got[2]
    assert got[0][0][1] == 'premise "two"' and got[0][2][:2] == [1, 0]


def test_file_carves_dev_and_test(tmp_path, caplog, tok):
    caplog.set_level(logging.INFO)
    rows = [(f"text {i}", f"{i / 10:.1f}") for i in range(200)]
    path = _write_tsv(tmp_path / "reg.tsv", ("text", "score"), rows)
    task = task_options("file", train_path=path, label_column="score", kind="regression")
    sizes = [tasks.num_examples(task, s) for s in task_sources.SPLITS]
    assert sum(sizes) == 200 and 140 < sizes[0] < 180 and min(sizes) > 0
    assert "carved" in caplog.text
    dev = tasks.load_examples(task, "dev")
    assert dev["labels"].dtype == np.float32
    assert all(task_sources.split_of(t + "\t") == "dev" for t in dev["text_a"])
    assert tasks.task_spec(task).metrics == ("pearson", "spearman")
    batch = _batches(task, "train", tok, 1)[0]
    _assert_schema(batch, "regression", 8, 16)


def test_file_labels_inferred_when_not_given(tmp_path):
    path = _write_tsv(tmp_path / "t.tsv", ("text", "label"), [("x", "b"), ("y", "a"), ("z", "c")])
    spec = tasks.task_spec(task_options("file", train_path=path))
    assert spec.label_names == ("a", "b", "c") and spec.metrics == ("accuracy", "macro_f1")


def test_file_errors_name_the_problem_and_the_fix(tmp_path):
    path = _write_tsv(tmp_path / "t.tsv", ("sentence", "label"), [("ok", "pos"), ("bad", "meh")])
    task = task_options("file", train_path=path, labels="neg,pos")
    with pytest.raises(ValueError, match=r"t.tsv, line 2: no column 'text'.*\['label', "
                                         r"'sentence'\].*--config.task.text_column"):
        tasks.load_examples(task, "train")
    task = dataclasses.replace(task, text_column="sentence")
    with pytest.raises(ValueError, match=r"line 3: label 'meh' is not one of.*\['neg', 'pos'\]"
                                         r".*--config.task.labels=neg,pos,meh"):
        tasks.load_examples(task, "train")
    task = dataclasses.replace(task, kind="regression", labels="")
    with pytest.raises(ValueError, match=r"line 2: label 'pos' is not a finite number"):
        tasks.load_examples(task, "train")
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text('{"text": "a", "label": 1}\n{oops\n')
    with pytest.raises(ValueError, match="t.jsonl, line 2: not valid JSON"):
        tasks.load_examples(task_options("file", train_path=str(jsonl), labels="0,1"), "train")
    (tmp_path / "t.txt").write_text("text\tlabel\n")
    for name, problem in (("t.txt", "--config.task.format"), ("missing.tsv", "cannot read")):
        with pytest.raises(ValueError, match=problem):
            tasks.load_examples(task_options("file", train_path=str(tmp_path / name),
                                             labels="0,1"), "train")


def test_file_empty_texts_skipped_with_one_warning(tmp_path, caplog):
    path = _write_tsv(tmp_path / "t.tsv", ("text", "label"),
                      [("", "a"), ("fine", "b"), ("  ", "a")])
    task = task_options("file", train_path=path, dev_path=path, test_path=path, labels="a,b")
    assert tasks.load_examples(task, "train")["text_a"] == ["fine"]
    assert "t.tsv: 2 rows with an empty text were skipped (line 2, line 4); fill in" in caplog.text
    empty = _write_tsv(tmp_path / "e.tsv", ("text", "label"), [("", "a")])
    with pytest.raises(ValueError, match="no usable rows"):
        tasks.load_examples(task_options("file", train_path=empty, labels="a,b"), "train")


# TFDS: the embedded builders, and GLUE/SQuAD through TFDS's offline mock data.

def test_tfds_builder_matches_the_fast_path(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    import data.task_builders  # noqa: F401

    ds = tfds.load("sentiment_rt", split="validation", data_dir=str(tmp_path))
    rows = list(tfds.as_numpy(ds))
    fast = tasks.load_examples(task_options("sentiment_rt"), "dev")
    assert [r["text"].decode() for r in rows] == fast["text_a"]
    assert [int(r["label"]) for r in rows] == fast["labels"].tolist()
    # The generic TFDS loader (the GLUE path) gives exactly load_examples' dicts.
    via_tfds = task_tfds.tfds_examples("sentiment_rt", "test", str(tmp_path))
    fast = tasks.load_examples(task_options("sentiment_rt"), "test")
    assert via_tfds["text_a"] == fast["text_a"] and via_tfds["text_b"] is None
    np.testing.assert_array_equal(via_tfds["labels"], fast["labels"])


def test_glue_and_squad_through_mock_tfds(tok):
    tfds = pytest.importorskip("tensorflow_datasets")
    with tfds.testing.mock_data(policy=tfds.testing.MockPolicy.USE_CODE, num_examples=12):
        mrpc = task_options("glue/mrpc")
        ex = tasks.load_examples(mrpc, "dev")
        assert len(ex["text_a"]) == len(ex["text_b"]) == 12
        assert isinstance(ex["text_a"][0], str) and ex["labels"].dtype == np.int32
        batch = _batches(mrpc, "test", tok, 1)[0]
        _assert_schema(batch, "classification", 8, 16)
        stsb = tasks.load_examples(task_options("glue/stsb"), "train")
        assert stsb["labels"].dtype == np.float32
        assert tasks.load_examples(task_options("glue/sst2"), "test")["text_b"] is None
        mnli = tasks.load_examples(task_options("glue/mnli"), "test")
        assert set(mnli["labels"].tolist()) <= {0, 1, 2}
        squad = tasks.load_examples(task_options("squad/v2.0"), "dev")
        assert len(squad) == 12
        first = squad[0]
        assert isinstance(first["id"], str) and isinstance(first["context"], str)
        assert all(isinstance(a["text"], str) and isinstance(a["answer_start"], int)
                   for a in first["answers"])
    assert [task_sources.tfds_split("glue/mnli", s) for s in task_sources.SPLITS] == [
        "train[:95%]", "train[95%:]", "validation_matched"]
