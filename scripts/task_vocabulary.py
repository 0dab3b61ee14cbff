"""How foreign is each task's text to a pretraining corpus and its tokenizer?

  python scripts/task_vocabulary.py [--corpus=embedded] [--tokenizer=embedded] [--tasks=…]

For each task's training split (never dev or test) and for the corpus itself (every 20th
sentence): SentencePiece pieces per word, the share of word tokens and of word types (lower-cased)
that never occur in the corpus, and, for two-class tasks, how many of the 200 words that best
separate the labels (|log-odds| between the classes, words in at least 10 examples) the corpus
never has, or has fewer than 5 times: the words a fine-tuned classifier leans on, whose
embeddings pretraining cannot have shaped if the corpus lacks them.
"""

from __future__ import annotations

import collections
import math
import re
import sys

from absl import app, flags

sys.path.insert(0, ".")

from data import sources, tasks  # noqa: E402
from data import tokenizer as tokenizer_lib  # noqa: E402
from data.options import TaskOptions  # noqa: E402

_CORPUS = flags.DEFINE_string("corpus", "embedded", "pretraining corpus (launch.pretrain's)")
_TOKENIZER = flags.DEFINE_string("tokenizer", "embedded", "SentencePiece model")
_TASKS = flags.DEFINE_string(
    "tasks", "sentiment_rt,topic_wordnet,nli_vitaminc,paraphrase_bible,qa_disflqa",
    "comma-separated task names")
_WORD = re.compile(r"[A-Za-z]+(?:'[a-z]+)?")


def _texts(task: str) -> tuple[list[str], list[int] | None]:
    examples = tasks.load_examples(TaskOptions(name=task), "train")
    if isinstance(examples, list):  # span QA: questions and contexts, no labels
        return [t for ex in examples for t in (ex["question"], ex["context"])], None
    second = examples["text_b"] or [""] * len(examples["text_a"])
    texts = [" ".join(filter(None, pair))
             for pair in zip(examples["text_a"], second, strict=True)]
    return texts, [int(y) for y in examples["labels"]]


def polar_words(texts: list[str], labels: list[int], top: int = 200,
                min_count: int = 10) -> list[str]:
    """The ``top`` words (in ≥ ``min_count`` examples) with the largest |log-odds| between the
    two classes, add-one smoothed."""
    per = [collections.Counter(), collections.Counter()]
    for text, y in zip(texts, labels, strict=True):
        per[y].update({w.lower() for w in _WORD.findall(text)})
    totals = [sum(c.values()) for c in per]
    def log_odds(w: str) -> float:
        return math.log((per[1][w] + 1) / totals[1]) - math.log((per[0][w] + 1) / totals[0])

    scored = [(abs(log_odds(w)), w) for w in set(per[0]) | set(per[1])
              if per[0][w] + per[1][w] >= min_count]
    return [w for _, w in sorted(scored, reverse=True)[:top]]


def main(_):
    sentences = [s for doc in sources.read_documents(_CORPUS.value) for s in doc]
    counts = collections.Counter(w.lower() for s in sentences for w in _WORD.findall(s))
    sp = tokenizer_lib.load(_TOKENIZER.value)
    print(f"corpus {_CORPUS.value}: {len(sentences)} sentences, {sum(counts.values())} words, "
          f"{len(counts)} word types; tokenizer {_TOKENIZER.value}\n")
    print(f"{'text (train split)':<20} {'words':>9} {'pieces/word':>11} {'unseen tokens':>13} "
          f"{'unseen types':>12}  label-bearing words (of 200) never / < 5 in the corpus")
    rows = [("corpus (1 in 20)", sentences[::20], None)]
    rows += [(t, *_texts(t)) for t in [x.strip() for x in _TASKS.value.split(",") if x.strip()]]
    for name, texts, labels in rows:
        words = [w for t in texts for w in _WORD.findall(t)]
        pieces = sum(len(ids) for ids in sp.encode(words))
        types = {w.lower() for w in words}
        unseen = sum(counts[w.lower()] == 0 for w in words) / len(words)
        unseen_types = sum(counts[w] == 0 for w in types) / len(types)
        line = (f"{name:<20} {len(words):>9} {pieces / len(words):>11.2f} {100 * unseen:>12.1f}% "
                f"{100 * unseen_types:>11.1f}%")
        if labels is not None and len(set(labels)) == 2:
            polar = polar_words(texts, labels)
            never = [w for w in polar if counts[w] == 0]
            rare = [w for w in polar if 0 < counts[w] < 5]
            line += f"  {len(never)} / {len(rare)}: e.g. {', '.join(never[:8])}"
        print(line)


if __name__ == "__main__":
    app.run(main)
