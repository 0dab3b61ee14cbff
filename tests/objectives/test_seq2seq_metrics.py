"""Seq2seq metrics through sacrebleu and rouge-score: known values, and the baselines that the
data's PROVENANCE.md quotes, recomputed."""

import pytest

from data import seq2seq_tasks
from data.options import TaskOptions
from objectives import seq2seq_metrics as m


def test_identical_hypotheses_score_100():
    refs = ["The cat sat on the mat.", "Él fué á Jerusalén."]
    scores = m.compute(["bleu", "chrf", "rouge1", "rouge2", "rougeL"], refs, refs)
    assert scores == pytest.approx(dict.fromkeys(scores, 100.0))


def test_a_hand_checked_bleu():
    # 1-4-gram precisions 5/6, 3/5, 2/4, 1/3; brevity penalty 1 (6 = 6 tokens):
    # BLEU = exp(mean(log p)) = (5/6 * 3/5 * 2/4 * 1/3) ** (1/4) = 0.4889.
    assert m.bleu(["the cat sat on a mat"], ["the cat sat on the mat"]) == pytest.approx(
        100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25, abs=1e-6)


def test_a_hand_checked_rouge_with_stemming():
    # Stemmed unigrams: hyp {cat, run, fast}, ref {the, cat, run}: 2 common → P = R = F = 2/3.
    # Bigrams: hyp {cat run, run fast}, ref {the cat, cat run}: 1 common → 1/2. LCS = 2 → 2/3.
    scores = m.rouge(["cats running fast"], ["the cat runs"])
    assert scores == pytest.approx({"rouge1": 200 / 3, "rouge2": 50.0, "rougeL": 200 / 3})


def test_signatures_name_the_settings():
    sig = m.signatures()
    assert sig["bleu"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert "nc:6|nw:0" in sig["chrf"]


def test_unknown_metrics_and_length_mismatch_are_errors():
    with pytest.raises(ValueError, match="generative_qa_scores"):
        m.compute(["squad"], ["a"], ["a"])
    with pytest.raises(ValueError, match="1 hypotheses but 2 references"):
        m.bleu(["a"], ["a", "b"])


def test_the_lead_baseline_reproduces_provenance():
    """data/tasks/seq2seq/PROVENANCE.md: first sentence on the 870 test records of this copy,
    R-1 / R-2 / R-L = 33.70 / 16.36 / 29.48 (and dev 33.80 / 16.19 / 29.30)."""
    for split, want in (("test", (33.70, 16.36, 29.48)), ("dev", (33.80, 16.19, 29.30))):
        ex = seq2seq_tasks.load_seq2seq_examples(TaskOptions("summarization_debian_desc"), split)
        got = m.lead_baseline_rouge(ex["source"], ex["target"])
        assert tuple(round(got[k], 2) for k in ("rouge1", "rouge2", "rougeL")) == want


def test_copy_the_source_translation_baseline():
    ex = seq2seq_tasks.load_seq2seq_examples(TaskOptions("translation_bible_es_en"), "test")
    got = m.copy_source_scores(ex["source"], ex["target"])
    assert round(got["bleu"], 2) == 0.18 and round(got["chrf"], 2) == 17.36


def test_first_sentence_rule():
    assert m.first_sentence("Foo is a tool. It does x.\nMore.") == "Foo is a tool."
    assert m.first_sentence("Version 2.0 adds e.g. speed. Also") == "Version 2.0 adds e.g. speed."
    assert m.first_sentence("no end here\nsecond line") == "no end here"
