"""launch.compare on a seq2seq task: compare.py:seq2seq_smoke (a few steps, 16 pairs, 2 seeds,
pretrained vs scratch) writes the report with BLEU/chrF and the copy-the-source baseline."""

import os

from launch.comparison import run as comparison
from launch.configs import compare


def test_the_must_show_defaults():
    c = compare.get_config("seq2seq")
    assert c.pretrain.model.arch == "t5" and c.pretrain.data.denoising == "span_corruption"
    assert c.budgets == "translation_bible_es_en=2000,0" and c.seeds == 3
    assert [r[:3] for r in comparison.plan(c)][:2] == [
        ("translation_bible_es_en", 2000, "scratch"), ("translation_bible_es_en", 2000,
                                                       "pretrained")]


def test_seq2seq_smoke_compares_pretrained_and_scratch(t5_corpus, tmp_path):
    c = compare.get_config("seq2seq_smoke")
    c.pretrain.data.corpus, c.pretrain.data.eval_fraction = t5_corpus, 0.125
    summary = comparison.compare(c, str(tmp_path))
    tests = [x for x in summary["comparisons"] if x["split"] == "test" and x["main"]]
    assert [(x["task"], x["budget"], x["metric"], x["n"]) for x in tests] == [
        ("translation_bible_es_en", 16, "bleu", 2)]
    with open(os.path.join(tmp_path, "report.md"), encoding="utf-8") as f:
        text = f.read()
    assert "copy_source_bleu" in text and "seq2seq_loss" in text and "chrf" in text
