"""Zero- and few-shot classification with a GPT workdir: label words scored by log-likelihood.

Each test example becomes a prompt (``k`` training examples with their answers first, then the
example) and each class a label word (``VERBALIZERS``: "negative" / "positive", "yes" / "no", a
topic's name); the prediction is the class whose word has the highest log-likelihood after the
prompt. Calibrated (contextual calibration, Zhao et al. 2021, "Calibrate Before Use"): the label
words' probabilities, normalised over the classes, are divided by their probabilities after the
same prompt with a content-free input ("N/A" for every text), which removes the prompt's own
preference for a word. Both accuracies are reported, with the majority class for scale.

``Scorer`` is the model side (log-likelihood of a continuation, rolling log-likelihood,
greedy generation); ``launch/comparison/lm_eval_adapter.py`` puts it behind lm-eval's ``LM``.
"""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from data import tasks
from data.options import TaskOptions

CONTENT_FREE = "N/A"
# Label words per class index of the embedded tasks; other tasks use their label names.
VERBALIZERS = {
    "sentiment_rt": ("negative", "positive"),
    "nli_vitaminc": ("yes", "no", "maybe"),
    "paraphrase_bible": ("no", "yes"),
}
QUESTIONS = {
    "sentiment_rt": "Sentiment:", "topic_wordnet": "Topic:",
    "nli_vitaminc": "Is the claim supported?", "paraphrase_bible": "Same meaning?",
}


class Scorer:
    """Log-likelihoods under a causal LM, in fixed-shape batches (one compilation).

    Args:
      model, params: a GPT pretraining model (``{"logits": [B, L, V]}``) and its parameters.
      max_length: ``L``: rows are cut on the left to fit (the continuation always kept).
      pad_id: the id rows are padded with (never scored).
      batch_size: rows a call of the compiled function.
    """

    def __init__(self, model, params, *, max_length: int, pad_id: int, batch_size: int = 16,
                 tokenizer=None):
        self.model, self.params, self.tokenizer = model, params, tokenizer
        self.max_length, self.pad_id, self.batch_size = max_length, pad_id, batch_size

        @jax.jit
        def token_scores(p, ids_BL, targets_BL):
            logits = model.apply({"params": p}, {"token_ids": ids_BL},
                                 deterministic=True)["logits"].astype(jnp.float32)
            logp = jax.nn.log_softmax(logits, axis=-1)
            picked = jnp.take_along_axis(logp, targets_BL[..., None], -1)[..., 0]
            return picked, jnp.argmax(logits, -1) == targets_BL
        self._token_scores = token_scores

    @classmethod
    def from_workdir(cls, workdir: str, step: int = -1, batch_size: int = 16) -> Scorer:
        """The scorer of a GPT workdir's checkpoint (pretrained here or converted)."""
        from launch.generation import run as generating  # noqa: PLC0415
        model, params, tokenizer, _ = generating.load_model(workdir, step)
        return cls(model, params, max_length=model.config.max_length,
                   pad_id=tokenizer.special_ids.pad, batch_size=batch_size, tokenizer=tokenizer)

    def loglikelihood(self, requests: list[tuple[list[int], list[int]]]
                      ) -> list[tuple[float, bool]]:
        """Per (context ids, continuation ids): (Σ log p(continuation | context), whether every
        continuation token is the argmax). The context must hold at least one token."""
        out = []
        for start in range(0, len(requests), self.batch_size):
            part = requests[start:start + self.batch_size]
            ids = np.full((self.batch_size, self.max_length), self.pad_id, np.int32)
            targets = np.zeros_like(ids)
            scored = np.zeros(ids.shape, bool)
            for row, (context, continuation) in enumerate(part):
                if not context or not continuation:
                    raise ValueError("loglikelihood needs a non-empty context and continuation")
                full = (list(context) + list(continuation))[-(self.max_length + 1):]
                n = len(full) - 1
                ids[row, :n], targets[row, :n] = full[:-1], full[1:]
                scored[row, n - min(len(continuation), n):n] = True
            picked, greedy = jax.device_get(self._token_scores(self.params, ids, targets))
            for row in range(len(part)):
                mask = scored[row]
                out.append((float(picked[row][mask].sum()), bool(greedy[row][mask].all())))
        return out

    def loglikelihood_rolling(self, ids: list[int], first: int) -> float:
        """Σ log p of every token of ``ids``, the first conditioned on ``first`` (e.g. the
        end-of-text id), in disjoint windows of ``max_length`` tokens, each with as much of the
        preceding text as fits."""
        full, total = [first] + list(ids), 0.0
        requests = []
        for start in range(1, len(full), self.max_length):
            piece = full[start:start + self.max_length]
            requests.append((full[:start], piece))
        for ll, _ in self.loglikelihood(requests):
            total += ll
        return total


def _texts(examples: dict, i: int) -> list[str]:
    return [examples["text_a"][i]] + ([examples["text_b"][i]] if examples["text_b"] else [])


def _prompt(task: str, texts: list[str]) -> str:
    return "\n".join(texts + [QUESTIONS.get(task, "Answer:")])


def verbalizers(task: str, label_names) -> tuple[str, ...]:
    return VERBALIZERS.get(task) or tuple(n.split(".")[-1] for n in label_names)


def classify(scorer: Scorer, task: str, *, shots: int = 0, examples: int = 200,
             seed: int = 0) -> dict[str, float]:
    """Zero- (``shots`` = 0) or k-shot accuracy of ``scorer``'s model on ``task``'s test split.

    Returns:
      ``zeroshot/<task>/k<shots>/accuracy`` (uncalibrated), ``…/calibrated_accuracy`` and
      ``…/majority_accuracy`` (always the most frequent test class), over ``examples`` test
      examples (``tasks.eval_subset``: the same sample for every model).
    """
    options = TaskOptions(task)
    spec = tasks.task_spec(options)
    if spec.kind != "classification":
        raise ValueError(f"zero-shot scoring needs a classification task, not {spec.kind}")
    words = verbalizers(task, spec.label_names)
    test, train = tasks.load_examples(options, "test"), tasks.load_examples(options, "train")
    rng = np.random.default_rng(seed)
    demo_rows = rng.choice(len(train["labels"]), shots, replace=False) if shots else []
    demos = "".join(_prompt(task, _texts(train, i)) + f" {words[int(train['labels'][i])]}\n\n"
                    for i in demo_rows)
    test = tasks.eval_subset(test, examples)  # a seeded sample: test files are label-sorted
    n = len(test["labels"])
    encode = scorer.tokenizer.encode
    word_ids = encode([" " + w for w in words])
    free = [CONTENT_FREE] * (2 if test["text_b"] else 1)
    prompts = [demos + _prompt(task, free)] + [demos + _prompt(task, _texts(test, i))
                                               for i in range(n)]
    prompt_ids = encode(prompts)
    scores = np.array([ll for ll, _ in scorer.loglikelihood(
        [(p, w) for p in prompt_ids for w in word_ids])]).reshape(len(prompts), len(words))
    probs = np.exp(scores - scores.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    calibrated = probs[1:] / probs[0]
    labels = np.asarray(test["labels"][:n])
    key = f"zeroshot/{task}/k{shots}"
    return {f"{key}/accuracy": float((probs[1:].argmax(1) == labels).mean()),
            f"{key}/calibrated_accuracy": float((calibrated.argmax(1) == labels).mean()),
            f"{key}/majority_accuracy": float(np.bincount(labels).max() / n)}


def evaluate_workdir(workdir: str, task_names: list[str], shots: list[int], *, examples: int,
                     output: str) -> dict[str, float]:
    """``classify`` for every classification task and shot count; written to ``output``
    (reused when it exists)."""
    if os.path.exists(output):
        with open(output) as f:
            return json.load(f)
    scorer = Scorer.from_workdir(workdir)
    results = {}
    for task in task_names:
        if tasks.task_spec(TaskOptions(task)).kind == "classification":
            for k in shots:
                results.update(classify(scorer, task, shots=k, examples=examples))
    os.makedirs(os.path.dirname(output), exist_ok=True)
    with open(output + ".tmp", "w") as f:
        json.dump(results, f, indent=1)
    os.replace(output + ".tmp", output)
    return results
