"""The official SQuAD 2.0 metric: exact match and F1 over normalised answers, by answerability.

Written afresh from the metric's definition (the official ``evaluate-v2.0.py``); plain Python,
used by ``launch/evaluation/scoring.py`` on the text ``data.qa.postprocess`` extracts.
"""

from __future__ import annotations

import collections
import re
import string

import numpy as np

_ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles a/an/the, single spaces."""
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _f1(prediction: str, gold: str) -> float:
    pred_tokens, gold_tokens = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)  # no-answer is right only against no-answer
    common = sum((collections.Counter(pred_tokens) & collections.Counter(gold_tokens)).values())
    if not common:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_v2_scores(predictions: dict, examples: list[dict]) -> dict[str, float]:
    """The official SQuAD 2.0 exact match and F1 (percent), overall and by answerability.

    As the official script: an example is answerable if it has gold answers (and here is not
    marked ``is_impossible``); its golds are the texts that normalise to something non-empty, or
    "" if none does. An unanswerable example's only gold is "". Scores are maxima over golds.

    Returns:
      ``exact, f1, total, HasAns_exact, HasAns_f1, HasAns_total, NoAns_exact, NoAns_f1,
      NoAns_total``, scores in percent; a group with no examples has only its ``*_total``.

    Raises:
      KeyError: if an example has no prediction (skipping it would inflate the score).
    """
    missing = [ex["id"] for ex in examples if ex["id"] not in predictions]
    if missing:
        raise KeyError(f"{len(missing)} examples have no prediction, e.g. {missing[:3]}")
    groups = {"HasAns": ([], []), "NoAns": ([], [])}
    for ex in examples:
        has_answer = bool(ex["answers"]) and not ex["is_impossible"]
        golds = [a["text"] for a in ex["answers"] if normalize_answer(a["text"])]
        golds = golds if has_answer and golds else [""]
        pred = predictions[ex["id"]]
        exact, f1 = groups["HasAns" if has_answer else "NoAns"]
        exact.append(max(float(normalize_answer(pred) == normalize_answer(g)) for g in golds))
        f1.append(max(_f1(pred, g) for g in golds))
    groups["all"] = tuple(h + n for h, n in zip(groups["HasAns"], groups["NoAns"], strict=True))
    out = {}
    for name, (exact, f1) in groups.items():
        prefix = "" if name == "all" else name + "_"
        out[prefix + "total"] = float(len(exact))
        if exact:  # as the official script: an empty group has no scores, not a 0
            out[prefix + "exact"] = 100.0 * float(np.mean(exact))
            out[prefix + "f1"] = 100.0 * float(np.mean(f1))
    return out
