"""A causal LM (GPT) on a seq2seq task, as prompt → continuation.

A row is ``source [SEP] target </s>`` (the source cut to ``data.max_seq_length - 1`` tokens, the
target to ``data.max_target_length - 1``): the causal-LM objective (``objectives/clm.py``) with
``clm_weights`` 1 only where the next token is a target token (</s> included), 0 on the prompt,
so the model is trained on the targets alone. Evaluation decodes from the prompt
``source [SEP]`` (left-padded, ``lm.generation.generate``) up to </s>.
"""

from __future__ import annotations

import jax
import numpy as np

from data import seq2seq_batches, seq2seq_tasks
from data.tasks import budget_indices
from lm import generation


def check_lengths(cfg) -> None:
    """Refuses a GPT whose position table cannot hold prompt + target (one line)."""
    need = cfg.data.max_seq_length + cfg.data.max_target_length
    if need > cfg.model.max_length:
        raise ValueError(
            f"data.max_seq_length={cfg.data.max_seq_length} (the prompt) + data."
            f"max_target_length={cfg.data.max_target_length} = {need} exceeds the GPT's "
            f"{cfg.model.max_length} positions; lower them (e.g. --config.data.max_seq_length="
            f"{cfg.model.max_length // 2} --config.data.max_target_length="
            f"{cfg.model.max_length - cfg.model.max_length // 2})")


def prompt_ids(source_ids: np.ndarray, sep_id: int) -> list[int]:
    """``source [SEP]`` from encoded source ids ending with </s>."""
    return [*np.asarray(source_ids)[:-1].tolist(), sep_id]


def rows(pairs, length: int, sep_id: int) -> dict[str, np.ndarray]:
    """``features.FEATURES["clm"]`` rows of (source ids, target ids) pairs (each ending with
    </s>); rows past the pairs are padding (weight 0)."""
    b = len(pairs)
    out = {k: np.zeros((b, length), np.int32) for k in ("token_ids", "segment_ids", "positions",
                                                         "clm_targets")}
    out["clm_weights"] = np.zeros((b, length), np.float32)
    for i, (source, target) in enumerate(pairs):
        prompt = prompt_ids(source, sep_id)
        ids = np.asarray([*prompt, *target], np.int32)
        n = len(ids)
        out["token_ids"][i, :n] = ids
        out["segment_ids"][i, :n] = 1
        out["positions"][i, :n] = np.arange(n)
        out["clm_targets"][i, :n - 1] = ids[1:]
        out["clm_weights"][i, len(prompt) - 1:n - 1] = 1.0  # the next token is a target token
    return out


def train_batches(pairs, length: int, sep_id: int, *, batch_size: int, seed: int,
                  process_index: int, process_count: int):
    """Endless batches, epoch ``e`` in the permutation ``default_rng((seed, e))`` (as
    ``data.seq2seq_batches``); each process takes its rows of the global batch."""
    global_rows, pending, epoch = batch_size * process_count, [], 0
    while True:
        while len(pending) < global_rows:
            pending += [pairs[i] for i in np.random.default_rng((seed, epoch)).permutation(
                len(pairs))]
            epoch += 1
        mine = pending[process_index * batch_size:(process_index + 1) * batch_size]
        yield rows(mine, length, sep_id)
        pending = pending[global_rows:]


def train_stream(cfg, task, tokenizer, kw: dict):
    """The training batches of a GPT on ``task`` (the label budget applied)."""
    special = tokenizer.special_ids
    if special.sep is None or special.eos is None:
        raise ValueError(f"the tokenizer {tokenizer.name} has no [SEP] or </s>: prompt → "
                         "continuation needs both; use a GPT pretrained with pretrax")
    examples = seq2seq_tasks.load_seq2seq_examples(task, "train")
    keep = budget_indices(len(examples["source"]), task.max_train_examples, cfg.seed)
    pairs = seq2seq_batches.encode_pairs(
        tokenizer, [examples["source"][i] for i in keep], [examples["target"][i] for i in keep],
        max_source_length=cfg.data.max_seq_length, max_target_length=cfg.data.max_target_length)
    length = cfg.data.max_seq_length + cfg.data.max_target_length
    return train_batches(pairs, length, special.sep, **kw)


def continuations(model, params, source_ids, *, tokenizer, max_new_tokens: int,
                  batch_size: int) -> list[str]:
    """Greedy continuations of ``source [SEP]`` up to </s>, as text."""
    special, out = tokenizer.special_ids, []
    for start in range(0, len(source_ids), batch_size):
        prompts = [prompt_ids(s, special.sep) for s in source_ids[start:start + batch_size]]
        real = len(prompts)
        prompts += [prompts[0]] * (batch_size - real)
        tokens = np.asarray(generation.generate(
            model, params, generation.left_pad(prompts, special.pad), jax.random.key(0),
            greedy=True, max_new_tokens=max_new_tokens, eos_id=special.eos, pad_id=special.pad))
        for row in tokens[:real]:
            ids = row.tolist()
            out.append(tokenizer.decode(ids[:ids.index(special.eos)] if special.eos in ids
                                        else ids))
    return out
