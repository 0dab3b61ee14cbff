"""Host-side metrics of seq2seq tasks, computed once over a whole eval split with the field's
reference implementations: ``sacrebleu`` (BLEU, chrF) and Google's ``rouge-score`` (ROUGE-1/2/L).

Every metric takes ``(hypotheses, references)``: lists of detokenised strings, one reference per
hypothesis. Scores are percentages (0-100), as the papers print them:

* ``bleu``: sacrebleu's corpus BLEU (13a tokenisation, exponential smoothing), the WMT standard;
* ``chrf``: sacrebleu's corpus chrF (character 6-grams, beta 2);
* ``rouge1``/``rouge2``/``rougeL``: the mean over examples of rouge-score's F-measure, with the
  Porter stemmer (``use_stemmer=True``) as in the CNN/DM and XSum literature. ``rougeL`` is the
  sentence-level LCS (not ``rougeLsum``).

:func:`signatures` gives sacrebleu's signature strings: print them with every BLEU/chrF figure.
SQuAD 2.0 EM/F1 of generative QA need ``data/squad_metrics.py`` and are computed on the data side
(``data.seq2seq_tasks.generative_qa_scores``; objectives/ never imports data/).

The baselines the task provenance quotes are computed here too, from plain lists:
:func:`copy_source_scores` (translation: the source as the hypothesis) and
:func:`lead_baseline_rouge` (summarisation: the document's first sentence).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def _check(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    if not hypotheses:
        raise ValueError("no hypotheses to score")


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu corpus BLEU (default: 13a, exp smoothing, case-sensitive)."""
    import sacrebleu

    _check(hypotheses, references)
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """sacrebleu corpus chrF (chrF2: character 6-grams, beta 2, no word n-grams)."""
    import sacrebleu

    _check(hypotheses, references)
    return float(sacrebleu.corpus_chrf(list(hypotheses), [list(references)]).score)


def signatures() -> dict[str, str]:
    """sacrebleu's signature of each of its metrics here, e.g.
    ``nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0``."""
    from sacrebleu.metrics import BLEU, CHRF

    out = {}
    for name, metric in (("bleu", BLEU()), ("chrf", CHRF())):
        metric.corpus_score(["a"], [["a"]])  # the signature records the reference count
        out[name] = str(metric.get_signature())
    return out


def rouge(hypotheses: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """Mean ROUGE-1/2/L F-measure × 100 (rouge-score, Porter stemming)."""
    from rouge_score import rouge_scorer

    _check(hypotheses, references)
    scorer = rouge_scorer.RougeScorer(list(_ROUGE_TYPES), use_stemmer=True)
    totals = dict.fromkeys(_ROUGE_TYPES, 0.0)
    for hyp, ref in zip(hypotheses, references, strict=True):
        for name, score in scorer.score(ref, hyp).items():  # score(target, prediction)
            totals[name] += score.fmeasure
    return {name: 100.0 * total / len(hypotheses) for name, total in totals.items()}


METRICS = ("bleu", "chrf", *_ROUGE_TYPES)


def compute(names: Sequence[str], hypotheses: Sequence[str],
            references: Sequence[str]) -> dict[str, float]:
    """``{name: value}`` for each name in ``METRICS`` (ROUGE computed once for all three).

    Raises:
      ValueError: for an unknown name; ``"squad"`` is scored on the data side
        (``data.seq2seq_tasks.generative_qa_scores``).
    """
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise ValueError(f"unknown seq2seq metrics {unknown}; known: {list(METRICS)} (SQuAD's "
                         "exact/f1 come from data.seq2seq_tasks.generative_qa_scores)")
    out = {}
    if "bleu" in names:
        out["bleu"] = bleu(hypotheses, references)
    if "chrf" in names:
        out["chrf"] = chrf(hypotheses, references)
    if any(n in _ROUGE_TYPES for n in names):
        scores = rouge(hypotheses, references)
        out.update({n: scores[n] for n in names if n in _ROUGE_TYPES})
    return out


def copy_source_scores(sources: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """The copy-the-source translation baseline: BLEU and chrF of the sources as hypotheses
    (what a model scores by learning nothing but to copy; shared names and numbers score)."""
    return {"bleu": bleu(sources, references), "chrf": chrf(sources, references)}


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z(\"'])")


def first_sentence(document: str) -> str:
    """The lead baseline's summary: the first line up to the first ``.``/``!``/``?`` followed by
    whitespace and a capital letter or quote (the rule of the dataset's PROVENANCE.md)."""
    line = document.split("\n")[0]
    match = _SENTENCE_END.search(line)
    return line[:match.start()] if match else line


def lead_baseline_rouge(documents: Sequence[str], summaries: Sequence[str]) -> dict[str, float]:
    """ROUGE-1/2/L of the first sentence of each document against its summary."""
    return rouge([first_sentence(d) for d in documents], summaries)
