"""Decoding an encoder–decoder (T5) model over many sources: batches of padded source ids →
target texts, greedy, sampled or by beam search (``lm.generation``'s seq2seq decoders).

Shared by seq2seq fine-tuning's dev/test scoring, ``launch.generate`` on a T5 workdir and
``launch.evaluate`` on a seq2seq fine-tuning workdir. One process: the batches run on the local
devices (the parameters as they are placed).
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from lm import generation


@dataclasses.dataclass(frozen=True)
class Decoding:
    """How targets are decoded (``launch.generate``'s flags, ``cfg.decode`` in fine-tuning)."""
    method: str = "greedy"  # greedy | sample | beam
    max_new_tokens: int = 64
    beam_width: int = 4
    length_penalty: float = 0.6
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    batch_size: int = 32


def until_eos(ids, eos_id: int) -> list[int]:
    ids = list(np.asarray(ids).tolist())
    return ids[:ids.index(eos_id)] if eos_id in ids else ids


def _batches(sources: list[np.ndarray], batch_size: int, pad_id: int):
    """``[B, S]`` arrays of the sources (each ending with EOS), S the longest in the batch
    rounded up to 16 (fewer compilations); the last batch repeats its first source."""
    for start in range(0, len(sources), batch_size):
        part = list(sources[start:start + batch_size])
        real = len(part)
        part += [part[0]] * (batch_size - real)
        width = -(-max(len(x) for x in part) // 16) * 16
        out = np.full((batch_size, width), pad_id, np.int32)
        for row, ids in enumerate(part):
            out[row, :len(ids)] = ids
        yield out, real


def decode_ids(model, params, sources: list[np.ndarray], decoding: Decoding, *, eos_id: int,
               pad_id: int = 0) -> list[list[int]]:
    """The generated target ids of every source (EOS and what follows dropped)."""
    out, key = [], jax.random.key(decoding.seed)
    kw = dict(max_new_tokens=decoding.max_new_tokens, eos_id=eos_id, pad_id=pad_id,
              start_id=pad_id)
    for i, (source_BS, real) in enumerate(_batches(sources, decoding.batch_size, pad_id)):
        if decoding.method == "beam":
            beams, _ = generation.beam_search_seq2seq(
                model, params, source_BS, decoding.length_penalty,
                beam_width=decoding.beam_width, **kw)
            tokens = np.asarray(beams[:, 0])
        else:
            tokens = np.asarray(generation.generate_seq2seq(
                model, params, source_BS, jax.random.fold_in(key, i), decoding.temperature,
                greedy=decoding.method == "greedy", top_k=decoding.top_k, top_p=decoding.top_p,
                **kw))
        out += [until_eos(row, eos_id) for row in tokens[:real]]
    return out


def decode_texts(model, params, tokenizer, sources: list[np.ndarray],
                 decoding: Decoding) -> list[str]:
    """The generated target text of every source (token ids ending with EOS)."""
    special = tokenizer.special_ids
    return [tokenizer.decode(ids) for ids in decode_ids(model, params, sources, decoding,
                                                        eos_id=special.eos, pad_id=special.pad)]

