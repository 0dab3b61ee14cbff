"""Encoder-decoder batches: the ``seq2seq`` schema of ``data/features.py``, and the fine-tuning
pipeline of seq2seq tasks (``data/seq2seq_tasks.py``).

A batch (``features.shapes("seq2seq_task", B=B, S=Ls, T=Lt)``):

* ``encoder_input_ids`` int32 [B, Ls]: source tokens + EOS, padded with 0;
* ``encoder_segment_ids``, ``encoder_positions`` int32 [B, Ls]: 1, 2, … per packed example (0 =
  padding; without packing, 1 on every real token) and the position within its example;
* ``decoder_target_ids`` int32 [B, Lt]: target tokens + EOS; ``decoder_input_ids``: the targets
  shifted right *within each segment*, starting with the decoder start id 0 (= pad, as T5);
* ``decoder_segment_ids``, ``decoder_positions`` int32 [B, Lt]; ``decoder_weights`` float32
  [B, Lt]: 1.0 on every real target token, EOS included;
* ``example_weights`` float32 [B] (fine-tuning only): 0.0 on the rows that pad the last eval
  batch, so every example is scored exactly once with static shapes.

The pretraining objectives (``data/denoising.py``) build their (input, target) id pairs and call
:func:`pad_pairs` or :func:`pack_pairs`; fine-tuning calls :func:`make_seq2seq_dataset`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
from absl import logging

from data.options import TaskOptions
from data.seq2seq_tasks import load_seq2seq_examples, seq2seq_spec
from data.tasks import budget_indices

DECODER_START_ID = 0  # T5: the pad id starts every decoder input.


def _empty(batch_size: int, source_length: int, target_length: int) -> dict[str, np.ndarray]:
    enc = np.zeros((batch_size, source_length), np.int32)
    dec = np.zeros((batch_size, target_length), np.int32)
    return {"encoder_input_ids": enc, "encoder_segment_ids": enc.copy(),
            "encoder_positions": enc.copy(), "decoder_input_ids": dec,
            "decoder_target_ids": dec.copy(), "decoder_segment_ids": dec.copy(),
            "decoder_positions": dec.copy(),
            "decoder_weights": np.zeros((batch_size, target_length), np.float32)}


def _place(batch, row: int, enc_start: int, dec_start: int, segment: int, inputs, targets):
    """Writes one example into ``row`` at the given offsets as segment ``segment``."""
    n, m = len(inputs), len(targets)
    batch["encoder_input_ids"][row, enc_start:enc_start + n] = inputs
    batch["encoder_segment_ids"][row, enc_start:enc_start + n] = segment
    batch["encoder_positions"][row, enc_start:enc_start + n] = np.arange(n)
    batch["decoder_target_ids"][row, dec_start:dec_start + m] = targets
    batch["decoder_input_ids"][row, dec_start] = DECODER_START_ID
    batch["decoder_input_ids"][row, dec_start + 1:dec_start + m] = targets[:-1]
    batch["decoder_segment_ids"][row, dec_start:dec_start + m] = segment
    batch["decoder_positions"][row, dec_start:dec_start + m] = np.arange(m)
    batch["decoder_weights"][row, dec_start:dec_start + m] = 1.0


def pad_pairs(pairs: Sequence[tuple[np.ndarray, np.ndarray]], batch_size: int,
              source_length: int, target_length: int) -> dict[str, np.ndarray]:
    """One example a row: ``pairs`` of (input ids, target ids), both ending with EOS already.

    Rows past ``len(pairs)`` are all padding (weights 0).

    Raises:
      ValueError: for more pairs than rows, or a pair longer than ``Ls``/``Lt``.
    """
    if len(pairs) > batch_size:
        raise ValueError(f"{len(pairs)} examples do not fit a batch of {batch_size} rows")
    batch = _empty(batch_size, source_length, target_length)
    for row, (inputs, targets) in enumerate(pairs):
        if len(inputs) > source_length or len(targets) > target_length:
            raise ValueError(f"an example of {len(inputs)}/{len(targets)} tokens exceeds the "
                             f"lengths {source_length}/{target_length}")
        _place(batch, row, 0, 0, 1, inputs, targets)
    return batch


def pack_pairs(pairs: Sequence[tuple[np.ndarray, np.ndarray]], batch_size: int,
               source_length: int, target_length: int) -> tuple[dict[str, np.ndarray], int]:
    """Packs examples in order into ``batch_size`` rows (next-fit: a new row when the next example
    does not fit both sides of the current one).

    Returns:
      ``(batch, taken)``: the batch and how many of ``pairs`` it holds (the rest go to the next
      batch). Each packed example is its own segment 1, 2, …; positions restart at 0 in each.
    """
    batch = _empty(batch_size, source_length, target_length)
    row, enc, dec, segment, taken = 0, 0, 0, 0, 0
    for inputs, targets in pairs:
        if enc + len(inputs) > source_length or dec + len(targets) > target_length:
            row, enc, dec, segment = row + 1, 0, 0, 0
            if row == batch_size:
                break
        segment += 1
        _place(batch, row, enc, dec, segment, inputs, targets)
        enc, dec, taken = enc + len(inputs), dec + len(targets), taken + 1
    return batch, taken


def encode_pairs(tokenizer, sources: Sequence[str], targets: Sequence[str], *,
                 max_source_length: int, max_target_length: int
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Tokenises and truncates (source, target) texts to ``ids[:max - 1] + [EOS]`` each.

    Raises:
      ValueError: for lengths below 2 or a tokenizer without an EOS token.
    """
    eos = tokenizer.special_ids.eos
    if eos is None:
        raise ValueError(f"the tokenizer {tokenizer.name} has no EOS token, which seq2seq "
                         "examples end with; use a SentencePiece model of pretrax")
    if min(max_source_length, max_target_length) < 2:
        raise ValueError(f"max_source_length={max_source_length} and max_target_length="
                         f"{max_target_length} must be >= 2 (a token and EOS)")
    out, cut = [], 0
    src_ids, tgt_ids = tokenizer.encode(list(sources)), tokenizer.encode(list(targets))
    for s, t in zip(src_ids, tgt_ids, strict=True):
        cut += len(s) >= max_source_length or len(t) >= max_target_length
        out.append((np.asarray([*s[:max_source_length - 1], eos], np.int32),
                    np.asarray([*t[:max_target_length - 1], eos], np.int32)))
    if cut:
        logging.info("truncated %d of %d seq2seq examples to %d/%d tokens", cut, len(out),
                     max_source_length, max_target_length)
    return out


def make_seq2seq_dataset(task: TaskOptions, split: str, *, tokenizer, max_source_length: int,
                         max_target_length: int, batch_size: int, seed: int, pack: bool = False,
                         process_index: int = 0, process_count: int = 1
                         ) -> Iterator[dict[str, np.ndarray]]:
    """Fixed-shape numpy batches of a seq2seq task for one process.

    Args:
      task: a seq2seq task (``data.seq2seq_tasks``).
      split: ``"train"``: endless; epoch ``e`` visits the examples in the permutation
        ``default_rng((seed, e))``, epochs concatenated. ``"dev"``/``"test"``: one pass in file
        order, never packed; the last global batch is padded with rows of ``example_weights`` 0.
      tokenizer: a ``data.tokenizer.Tokenizer`` (with EOS), e.g. the shipped
        ``data/tokenizers/bible_es_en_8k.model`` for the Bible task.
      max_source_length, max_target_length: ``Ls``, ``Lt``; longer texts are truncated (EOS kept).
      batch_size: ``B``, rows per process; the global batch is ``process_count * B`` rows.
      seed: the epoch permutations.
      pack: training only: several examples per row (segments), next-fit in shuffled order.
      (``task.max_train_examples`` > 0: training uses that many examples, the subset chosen by
      ``seed`` as ``data.tasks.budget_indices`` chooses classification's.)
      process_index, process_count: this process and how many read the same stream.

    Returns:
      An iterator of ``features.shapes("seq2seq_task", B=batch_size, S=…, T=…)`` dicts.

    Raises:
      ValueError: for a task that is not seq2seq, bad sizes or an empty split.
    """
    seq2seq_spec(task)
    if batch_size < 1 or not 0 <= process_index < process_count:
        raise ValueError(f"need batch_size >= 1 and 0 <= process_index < process_count; got "
                         f"{batch_size}, {process_index}, {process_count}")
    examples = load_seq2seq_examples(task, split)
    if split == "train" and task.max_train_examples:  # the label budget, chosen by the seed
        keep = budget_indices(len(examples["source"]), task.max_train_examples, seed)
        examples = {k: [v[i] for i in keep] for k, v in examples.items()}
    pairs = encode_pairs(tokenizer, examples["source"], examples["target"],
                         max_source_length=max_source_length, max_target_length=max_target_length)
    if not pairs:
        raise ValueError(f"task {task.name!r} split {split!r} has no examples")
    lengths = dict(source_length=max_source_length, target_length=max_target_length)
    if split == "train":
        return _train_batches(pairs, batch_size, seed, pack, process_index, process_count,
                              lengths)
    return _eval_batches(pairs, batch_size, process_index, process_count, lengths)


def _with_weights(batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    batch["example_weights"] = (batch["decoder_weights"].sum(1) > 0).astype(np.float32)
    return batch


def _train_batches(pairs, batch_size, seed, pack, process_index, process_count, lengths):
    global_rows = batch_size * process_count
    pending, epoch = [], 0
    while True:
        while len(pending) < (global_rows * 64 if pack else global_rows):  # refill from epochs
            pending += [pairs[i] for i in np.random.default_rng((seed, epoch)).permutation(
                len(pairs))]
            epoch += 1
        if not pack:
            mine = pending[process_index * batch_size:(process_index + 1) * batch_size]
            yield _with_weights(pad_pairs(mine, batch_size, **lengths))
            pending = pending[global_rows:]
            continue
        # Packing: the global batch is packed as one, and each process takes its rows.
        full, taken = pack_pairs(pending, global_rows, **lengths)
        rows = slice(process_index * batch_size, (process_index + 1) * batch_size)
        yield _with_weights({k: v[rows] for k, v in full.items()})
        pending = pending[taken:]


def _eval_batches(pairs, batch_size, process_index, process_count, lengths):
    global_rows = batch_size * process_count
    for step in range(math.ceil(len(pairs) / global_rows)):
        start = step * global_rows + process_index * batch_size
        yield _with_weights(pad_pairs(pairs[start:start + batch_size], batch_size, **lengths))
