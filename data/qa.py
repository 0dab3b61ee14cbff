"""Extractive QA with unanswerable questions (SQuAD 2.0): encode, batch, decode, score.

``encode`` makes windows ``[CLS] question [SEP] context-window [SEP]`` (BERT's ``run_squad``
scheme, written afresh); ``make_dataset`` batches them in the ``span_qa`` schema;
``postprocess`` turns start/end logits into answer text; ``data/squad_metrics.py`` scores it.

Offsets: the context is split into words on whitespace, each tokenised on its own (no token
straddles two words), and the tokenizer's offsets (``encode_offsets``: SentencePiece's piece
offsets, or a Hugging Face tokenizer's offset mapping) give each token the characters
``[char_start, char_end)`` of the original context it covers. Gold spans are found from the
answer's characters; a prediction is the original slice ``context[char_start[s]:char_end[e]]``:
exact text, sub-word precise ("Paris" out of "Paris."), for tokenised (Disfl-QA) and raw (SQuAD)
text alike, without BERT's heuristic re-alignment of detokenised text (``get_final_text``).
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import re
from collections.abc import Iterator

import numpy as np

from data import features as feature_schema
from data import tasks
from data.options import QaOptions

_WORD = re.compile(r"\S+")  # \S in Unicode mode: the same words as str.split()


@dataclasses.dataclass
class QaFeatures:
    """Encoded windows ("features") of QA examples, in example order.

    Attributes:
      arrays: ``token_ids``, ``type_ids`` int32 [N, L]; ``start_positions``, ``end_positions``
        int32 [N] (0 = no answer in this window = the [CLS] position).
      example_index: int32 [N], index into the ``examples`` list each window came from.
      token_to_word: int32 [N, L], whitespace-word index in the context of each token; -1 outside
        the context ([CLS], question, [SEP], padding).
      token_char_start, token_char_end: int32 [N, L], the characters ``[start, end)`` of the
        context that each token covers (-1 outside the context; start == end for a bare "▁").
      is_max_context: bool [N, L], True where this window gives the token its most context
        (BERT's rule), so an answer seen by several overlapping windows is scored from one.
      special_ids: the tokenizer's [CLS], [SEP] and padding ids the rows were built with.
    """

    arrays: dict[str, np.ndarray]
    example_index: np.ndarray
    token_to_word: np.ndarray
    token_char_start: np.ndarray
    token_char_end: np.ndarray
    is_max_context: np.ndarray
    special_ids: feature_schema.SpecialIds

    def __len__(self) -> int:
        return len(self.example_index)


def _tokenize_contexts(tokenizer, contexts: list[str]):
    """Tokenises each distinct context once, each distinct word once (QA sets repeat both).

    Returns:
      ``({context: (first, count)}, flat)``: ``flat`` maps ``ids``, ``words`` (word index in its
      context), ``char_start``, ``char_end`` to int32 [T + 1], all contexts' tokens end to end
      plus a final -1, so that index -1 reads as "not a context token".
    """
    matches = {c: list(_WORD.finditer(c)) for c in dict.fromkeys(contexts)}
    vocab = list(dict.fromkeys(m.group() for ms in matches.values() for m in ms))
    spans = dict(zip(vocab, tokenizer.encode_offsets(vocab), strict=True))
    flat = {k: [] for k in ("ids", "words", "char_start", "char_end")}
    where = {}
    for context, ms in matches.items():
        first = len(flat["ids"])
        for w, m in enumerate(ms):
            ids, begins, ends = spans[m.group()]
            flat["ids"] += ids
            flat["words"] += [w] * len(ids)
            flat["char_start"] += [m.start() + b for b in begins]
            flat["char_end"] += [m.start() + e for e in ends]
        where[context] = (first, len(flat["ids"]) - first)
    return where, {k: np.asarray(v + [-1], np.int32) for k, v in flat.items()}


def _answer_tokens(example: dict, char_start: np.ndarray,
                   char_end: np.ndarray) -> tuple[int, int] | None:
    """Context-token span ``(first, last)`` of the first gold answer, given the characters
    ``[char_start, char_end)`` int [T] of each context token; None if there is no answer.

    The answer must match the context at ``answer_start`` up to whitespace (SQuAD's offsets are
    occasionally off, and training on a shifted span teaches the wrong thing).
    """
    if example["is_impossible"] or not example["answers"]:
        return None
    answer = example["answers"][0]
    begin, text = int(answer["answer_start"]), answer["text"]
    end = begin + len(text)
    if begin < 0 or " ".join(example["context"][begin:end].split()) != " ".join(text.split()):
        return None
    first = int(np.searchsorted(char_end, begin, side="right"))  # first token ending after begin
    last = int(np.searchsorted(char_start, end, side="left")) - 1  # last starting before end
    return (first, last) if first <= last else None


def _window_starts(num_tokens: int, window: int, stride: int) -> list[int]:
    """Window starts, every ``stride`` tokens until one reaches the end. As in BERT, the stride
    is the step between starts (not the overlap), capped at the window so no token is skipped."""
    starts = [0]
    while starts[-1] + window < num_tokens:
        starts.append(starts[-1] + min(stride, window))
    return starts


def _windows(num_tokens: int, query_length: int, span, max_seq_length: int, doc_stride: int):
    """The windows of one example.

    Returns:
      ``(seq int32 [W, L], is_max bool [W, L], answers int32 [W, 2])``: the context token at each
      position (-1 elsewhere); whether this window gives that token its most context (BERT's
      score: min(left, right) neighbours + 0.01 × window length, first window on ties); the gold
      (start, end) positions, (0, 0) where the window does not hold the whole span.
    """
    offset = query_length + 2  # [CLS] question [SEP]
    window = max_seq_length - offset - 1
    starts = _window_starts(num_tokens, window, doc_stride)
    seq = np.full((len(starts), max_seq_length), -1, np.int32)
    answers = np.zeros((len(starts), 2), np.int32)
    token = np.arange(num_tokens)
    scores = np.full((len(starts), num_tokens), -np.inf)
    for w, s in enumerate(starts):
        e = min(s + window, num_tokens)
        seq[w, offset:offset + e - s] = token[s:e]
        scores[w, s:e] = np.minimum(token[s:e] - s, e - 1 - token[s:e]) + 0.01 * (e - s)
        if span is not None and s <= span[0] and span[1] < e:
            answers[w] = (span[0] - s + offset, span[1] - s + offset)
    best = np.append(np.argmax(scores, axis=0), -1)  # index -1 (no token) → never a window
    return seq, best[seq] == np.arange(len(starts))[:, None], answers


def _token_rows(seq: np.ndarray, questions: list[list[int]], context_ids: np.ndarray,
                special: feature_schema.SpecialIds) -> dict[str, np.ndarray]:
    """``token_ids``, ``type_ids`` int32 [N, L] from context positions ``seq`` [N, L] (indices
    into ``context_ids``, -1 elsewhere) and each row's question; [CLS], [SEP] and padding are
    the tokenizer's ``special`` ids."""
    in_context = seq >= 0
    token_ids = np.where(in_context, context_ids[seq], special.pad).astype(np.int32)
    type_ids = in_context.astype(np.int32)
    closing = in_context.sum(axis=1)
    for row, question in enumerate(questions):
        token_ids[row, :len(question) + 2] = [special.cls, *question, special.sep]
        closing[row] += len(question) + 2
    token_ids[np.arange(len(seq)), closing] = special.sep
    type_ids[np.arange(len(seq)), closing] = 1  # as in BERT, the closing [SEP] is segment B
    return {"token_ids": token_ids, "type_ids": type_ids}


def encode(tokenizer, examples: list[dict], options: QaOptions, *,
           is_training: bool) -> QaFeatures:
    """Encodes QA examples into windows ``[CLS] question [SEP] context-window [SEP] pad``.

    Args:
      tokenizer: a ``data.tokenizer.Tokenizer`` or ``data.hf_tokenizers.HfTokenizer``: its
        ``encode_offsets`` and ``special_ids`` ([CLS], [SEP], padding).
      examples: dicts ``id, question, context, answers [{text, answer_start}], is_impossible``.
      options: ``max_seq_length`` (L), ``doc_stride`` (tokens between the starts of consecutive
        windows of a long context) and ``max_query_length`` (questions are cut to that).
      is_training: drops answerable examples whose gold text is not at ``answer_start`` (it
        cannot be trained on). Evaluation keeps every example, so each gets a prediction.

    Returns:
      :class:`QaFeatures` of ``N`` windows. A window holds the first gold span if it contains the
      whole of it, else start = end = 0, as do all windows of unanswerable examples.

    Raises:
      ValueError: if ``max_seq_length`` leaves no room for context after a question, or the
        tokenizer has no [CLS], [SEP] or padding token (GPT-2's).
    """
    special = tasks.sentence_specials(tokenizer)
    questions = tokenizer.encode([ex["question"] for ex in examples])
    max_seq_length = options.max_seq_length
    questions = [q[:options.max_query_length] for q in questions]
    if max_seq_length - (longest := max(map(len, questions), default=0)) - 3 < 1:
        raise ValueError(f"max_seq_length={max_seq_length} leaves no context tokens after a "
                         f"{longest}-token question and 3 special tokens")
    where, flat = _tokenize_contexts(tokenizer, [ex["context"] for ex in examples])
    index, windows = [], []  # per example: [W] indices; [W, L], [W, L], [W, 2] arrays
    for i, ex in enumerate(examples):
        first, count = where[ex["context"]]
        chars = slice(first, first + count)
        span = _answer_tokens(ex, flat["char_start"][chars], flat["char_end"][chars])
        if is_training and span is None and not ex["is_impossible"]:
            continue
        seq, best, answer = _windows(count, len(questions[i]), span, max_seq_length,
                                     options.doc_stride)
        index += [i] * len(seq)
        windows.append((np.where(seq >= 0, seq + first, -1), best, answer))  # flat token index
    if not index:
        raise ValueError("no examples to encode")
    seq, is_max, answers = (np.concatenate(x) for x in zip(*windows, strict=True))
    return QaFeatures(
        arrays=dict(_token_rows(seq, [questions[i] for i in index], flat["ids"], special),
                    start_positions=answers[:, 0], end_positions=answers[:, 1]),
        example_index=np.asarray(index, np.int32), token_to_word=flat["words"][seq],
        token_char_start=flat["char_start"][seq], token_char_end=flat["char_end"][seq],
        is_max_context=is_max, special_ids=special)


def _batch(features: QaFeatures, rows: np.ndarray, weights: np.ndarray) -> dict[str, np.ndarray]:
    out = {k: v[rows] for k, v in features.arrays.items()}
    out["example_weights"] = weights.astype(np.float32)
    return {k: out[k] for k in feature_schema.FEATURES["span_qa"]}


def _train_rows(pool: np.ndarray, seed: int, global_batch: int) -> Iterator[np.ndarray]:
    """Feature indices of successive global batches: epoch ``e`` is ``pool`` permuted by
    ``default_rng((seed, e))``; rows left over at an epoch's end start the next batch."""
    carry = pool[:0]
    for epoch in itertools.count():
        rows = np.concatenate([carry, np.random.default_rng((seed, epoch)).permutation(pool)])
        full = len(rows) // global_batch * global_batch
        yield from rows[:full].reshape(-1, global_batch)
        carry = rows[full:]


def make_dataset(features: QaFeatures, split: str, *, batch_size: int, seed: int,
                 process_index: int = 0, process_count: int = 1,
                 max_examples: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """Batches of encoded windows for one process, in ``span_qa`` schema.

    The global batch is ``process_count × batch_size`` rows; this process yields its contiguous
    slice, so the processes' batches concatenated equal a 1-process run's.

    Args:
      features: from :func:`encode`.
      split: ``"train"`` (infinite, reshuffled every epoch) or ``"dev"``/``"test"`` (one pass in
        order, the last global batch padded with ``[CLS] [SEP]`` rows of ``example_weights`` 0).
      batch_size: ``B``, rows per process.
      seed: data seed (train order and label budget).
      process_index, process_count: this process and how many there are.
      max_examples: train only; > 0 keeps every window of the first ``max_examples`` examples of
        ``default_rng(seed)``'s permutation of the encoded examples (``tasks.budget_indices``).

    Returns:
      Iterator of dicts: ``token_ids``, ``type_ids`` int32 [B, L]; ``start_positions``,
      ``end_positions`` int32 [B]; ``example_weights`` float32 [B].
    """
    if not 0 <= process_index < process_count or batch_size < 1:
        raise ValueError(f"need 0 <= process_index={process_index} < process_count="
                         f"{process_count} and batch_size={batch_size} >= 1")
    global_batch = batch_size * process_count
    mine = slice(process_index * batch_size, (process_index + 1) * batch_size)
    if split == "train":
        kept = np.random.default_rng(seed).permutation(np.unique(features.example_index))
        kept = kept[:max_examples] if max_examples > 0 else kept
        pool = np.nonzero(np.isin(features.example_index, kept))[0]
        return (_batch(features, rows[mine], np.ones(batch_size))
                for rows in _train_rows(pool, seed, global_batch))
    if split not in ("dev", "test"):
        raise ValueError(f"split={split!r}; use 'train', 'dev' or 'test'")
    return _eval_batches(features, global_batch, mine)


def _eval_batches(features: QaFeatures, global_batch: int,
                  mine: slice) -> Iterator[dict[str, np.ndarray]]:
    n = len(features)
    for first in range(0, n, global_batch):
        take = np.arange(first, first + global_batch)[mine]
        batch = _batch(features, np.minimum(take, n - 1), take < n)
        for k in features.arrays:
            batch[k][take >= n] = 0
        # As in data.tasks: a padding row is [CLS] [SEP], never empty.
        special = features.special_ids
        batch["token_ids"][take >= n] = special.pad
        batch["token_ids"][take >= n, :2] = (special.cls, special.sep)
        yield batch


def _best_spans(start_logits, end_logits, features: QaFeatures, n_best: int,
                max_answer_length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per window, the best valid span among the top ``n_best`` starts × ends.

    Returns:
      ``(score float [N] (-inf if none), start int [N], end int [N])``.
    """
    # A candidate token is in the context and covers at least one character.
    valid = features.token_char_end > features.token_char_start
    k = min(n_best, start_logits.shape[1])
    masked_start = np.where(valid & features.is_max_context, start_logits, -np.inf)
    masked_end = np.where(valid, end_logits, -np.inf)
    s = np.argsort(-masked_start, axis=1, kind="stable")[:, :k]
    e = np.argsort(-masked_end, axis=1, kind="stable")[:, :k]
    s_score = np.take_along_axis(masked_start, s, axis=1)
    e_score = np.take_along_axis(masked_end, e, axis=1)
    length = e[:, None, :] - s[:, :, None] + 1
    ok = (length >= 1) & (length <= max_answer_length)
    pair = np.where(ok, s_score[:, :, None] + e_score[:, None, :], -np.inf).reshape(len(s), -1)
    best = np.argmax(pair, axis=1)
    rows = np.arange(len(s))
    return pair[rows, best], s[rows, best // k], e[rows, best % k]


def postprocess(start_logits, end_logits, features: QaFeatures, examples: list[dict], *,
                n_best: int = 20, max_answer_length: int = 30,
                null_score_diff_threshold: float = 0.0) -> dict:
    """Turns span logits into answer text, one prediction per example.

    Args:
      start_logits, end_logits: float [N, L], the model's outputs for every window of
        ``features`` in order (padding rows of the last eval batch removed).
      features: the encoded windows of ``examples``.
      examples: the examples passed to :func:`encode`.
      n_best: starts and ends considered per window (the top ``n_best`` of each).
      max_answer_length: the longest span, in tokens.
      null_score_diff_threshold: predict "" when null score − best span score exceeds it.

    Returns:
      ``{example id: answer text}``; text is the original context slice ``context[start
      char:end char]`` of the span, "" for no answer.
    """
    start_logits, end_logits = np.asarray(start_logits), np.asarray(end_logits)
    if start_logits.shape != features.token_to_word.shape or end_logits.shape != start_logits.shape:
        raise ValueError(f"logits {start_logits.shape}/{end_logits.shape} do not match the "
                         f"{features.token_to_word.shape} windows; drop the padding rows first")
    score, s, e = _best_spans(start_logits, end_logits, features, n_best, max_answer_length)
    null = start_logits[:, 0] + end_logits[:, 0]
    by_example = collections.defaultdict(list)
    for row, i in enumerate(features.example_index):
        by_example[int(i)].append(row)
    out = {}
    for i, ex in enumerate(examples):
        rows = by_example.get(i)
        best = rows[int(np.argmax(score[rows]))] if rows else None
        # No window, no valid span (score -inf), or the null score wins: no answer.
        if best is None or null[rows].min() - score[best] > null_score_diff_threshold:
            out[ex["id"]] = ""
            continue
        char_start, char_end = features.token_char_start[best, s[best]], features.token_char_end[
            best, e[best]]
        out[ex["id"]] = ex["context"][char_start:char_end]
    return out
