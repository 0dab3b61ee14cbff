"""Many NumPy generators at once: ``default_rng(seed)``, then rounds of ``random()`` and
``integers(n)``, for a whole batch of rows.

``data/plm.py`` seeds one ``np.random.default_rng`` per row and draws from it in a data-dependent
loop; seeding and calling each row's generator from Python is what made that loop slow. Here the
rows' generators are reproduced together, as NumPy's C and Cython code computes them, so each row
gets exactly the values its own generator would have given:

* seeding (:func:`seeded_states`): ``SeedSequence``'s hash of the seed's 32-bit words into a
  pool of 4, ``generate_state(4, uint64)`` and PCG's ``srandom``, for all rows in uint32 NumPy;
* each row's 64-bit outputs are fetched in bulk (``random_raw``); a round of ``random()`` then
  ``integers(n)`` uses ``(x >> 11) · 2⁻⁵³`` of one output ``x``, and a 32-bit draw ``v`` (the low
  half of an output; PCG64 keeps the high half for the next 32-bit draw) of which ``integers``
  returns Lemire's ``(v · n) >> 32`` (:func:`lemire`). NumPy draws again when
  ``(v · n) mod 2³² < 2³² mod n`` (probability below n / 2³²) and draws nothing for ``n = 1``:
  :func:`lemire` flags those, and the caller redoes such a row with its own generator.

Afterwards :meth:`RowStreams.generators` gives generators in the state the rows' rounds left them in
(PCG64 is an LCG: ``k`` steps are ``s·aᵏ + inc·(aᵏ⁻¹ + … + 1) mod 2¹²⁸``), so a row's later draws
(a permutation, a ``choice``) are NumPy's own. ``tests/data/test_pcg64_streams.py`` checks all
of it against real generators.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np

_MULT = 0x2360ED051FC65DA44385DF649FCCF645  # PCG64's 128-bit LCG multiplier
# SeedSequence's hash constants (numpy/random/bit_generator.pyx) and pool size.
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R, _POOL = 0xCA01F9DD, 0x4973F715, 4
_MASK128 = (1 << 128) - 1
_LOW32 = np.uint64(0xFFFFFFFF)
_TWO_TO_32 = 1 << 32


def _seed_sequence_pools(words: np.ndarray) -> np.ndarray:
    """``SeedSequence(entropy).pool`` for rows of entropy words: uint32 [B, W] → [B, 4]."""
    const = _INIT_A

    def hashmix(value):
        nonlocal const
        value = value ^ np.uint32(const)
        const = (const * _MULT_A) & 0xFFFFFFFF
        value = value * np.uint32(const)
        return value ^ (value >> np.uint32(16))

    def mix(x, y):
        out = np.uint32(_MIX_L) * x - np.uint32(_MIX_R) * y
        return out ^ (out >> np.uint32(16))

    zero = np.zeros(len(words), np.uint32)
    pool = [hashmix(words[:, i] if i < words.shape[1] else zero) for i in range(_POOL)]
    for src in range(_POOL):
        for dst in range(_POOL):
            if src != dst:
                pool[dst] = mix(pool[dst], hashmix(pool[src]))
    for src in range(_POOL, words.shape[1]):
        for dst in range(_POOL):
            pool[dst] = mix(pool[dst], hashmix(words[:, src]))
    return np.stack(pool, 1)


def _pcg64_seeds(pool: np.ndarray) -> list[tuple[int, int]]:
    """``PCG64(seed_sequence)``'s state from each row's pool (``generate_state(4, uint64)``,
    then PCG's ``srandom``): ``(state, inc)`` per row."""
    const, halves = _INIT_B, []
    for i in range(8):
        value = pool[:, i % _POOL] ^ np.uint32(const)
        const = (const * _MULT_B) & 0xFFFFFFFF
        value = value * np.uint32(const)
        halves.append(value ^ (value >> np.uint32(16)))
    words = [(halves[2 * i].astype(np.uint64) | (halves[2 * i + 1].astype(np.uint64) << 32))
             .tolist() for i in range(4)]
    seeds = []
    for w0, w1, w2, w3 in zip(*words, strict=True):
        inc = ((((w2 << 64) | w3) << 1) | 1) & _MASK128
        seeds.append(((((inc + ((w0 << 64) | w1)) * _MULT) + inc) & _MASK128, inc))
    return seeds


def seeded_states(entropy: np.ndarray) -> list[tuple[int, int]]:
    """The PCG64 state of ``np.random.default_rng(list(row))`` for each row of ``entropy``
    (non-negative integers below 2⁶⁴, uint64 [B, E]), computed for all rows at once:
    ``(state, inc)`` (no 32-bit half pending)."""
    entropy = np.asarray(entropy, np.uint64)
    high = entropy >> np.uint64(32)
    # SeedSequence splits each integer into 32-bit words, low first; 0 is one word.
    layouts, which = np.unique(high > 0, axis=0, return_inverse=True)
    seeds = [None] * len(entropy)
    for i, layout in enumerate(layouts):
        rows = np.flatnonzero(which.reshape(-1) == i)
        columns = []
        for e, two in enumerate(layout):
            columns.append(entropy[rows, e] & np.uint64(0xFFFFFFFF))
            if two:
                columns.append(high[rows, e])
        pool = _seed_sequence_pools(np.stack(columns, 1).astype(np.uint32))
        for row, seed in zip(rows.tolist(), _pcg64_seeds(pool), strict=True):
            seeds[row] = seed
    return seeds


@functools.lru_cache(maxsize=8)
def _jumps(steps: int) -> tuple[list[int], list[int]]:
    """``(a, g)``: PCG64's LCG state after k outputs from ``s`` is ``s·a[k] + inc·g[k]``
    (mod 2¹²⁸), k = 0…steps."""
    a, g = [1], [0]
    for _ in range(steps):
        a.append((a[-1] * _MULT) & _MASK128)
        g.append((g[-1] * _MULT + 1) & _MASK128)
    return a, g


def lemire(draw32: np.ndarray, bound: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``Generator.integers(bound)`` (int64 ``bound`` in ``[1, 2³²)``) from its first 32-bit
    draw: ``(value int64, exact bool)``, exact False where NumPy takes no draw (``bound = 1``)
    or rejects this one and draws again (``(v · n) mod 2³² < 2³² mod n``)."""
    bound = np.asarray(bound).astype(np.uint64)
    product = draw32 * bound
    exact = (bound > 1) & ((product & _LOW32) >= np.uint64(_TWO_TO_32) % bound)
    return (product >> np.uint64(32)).astype(np.int64), exact


class RowStreams:
    """Rows' generators, ``np.random.default_rng(entropy[r])``, drawn from in rounds of
    ``random()`` then one 32-bit draw (module docstring).

    Args:
      entropy: uint64 [B, E], each row's seed (non-negative integers below 2⁶⁴).
      rounds: how many rounds :meth:`rounds` gives.
    """

    def __init__(self, entropy: np.ndarray, rounds: int):
        self._seeds = seeded_states(entropy)
        self._generator = np.random.Generator(np.random.PCG64(0))  # its state is set per row
        self._rounds = rounds
        bits, width = self._generator.bit_generator, 3 * ((rounds + 1) // 2)
        self._raw = np.empty((len(self._seeds), width), np.uint64)
        for raw, (state, inc) in zip(self._raw, self._seeds, strict=True):
            bits.state = _pcg64_state(state, inc, 0, 0)  # every two rounds take three outputs
            raw[:] = bits.random_raw(width)
        self._raw = self._raw.reshape(len(self._seeds), -1, 3)

    def rounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Round s of every row, s < ``rounds``: ``(random() float64 [B, R], the 32-bit draw
        uint64 [B, R])``. The draw is what ``integers(n)`` starts from (:func:`lemire`) and what
        ``integers(2³²)`` returns.

        PCG64 gives a 32-bit draw from the low half of a 64-bit output and keeps the high half
        for the next one, so rounds 2p and 2p + 1 use outputs 3p (random), 3p + 1 (both 32-bit
        halves, low first) and 3p + 2 (random).
        """
        raw = self._raw
        uniform = np.stack([raw[:, :, 0], raw[:, :, 2]], 2).reshape(len(raw), -1)
        draw32 = np.stack([raw[:, :, 1] & _LOW32, raw[:, :, 1] >> np.uint64(32)], 2)
        uniform = (uniform >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
        return uniform[:, :self._rounds], draw32.reshape(len(raw), -1)[:, :self._rounds]

    def generators(self, rows: np.ndarray, rounds: np.ndarray
                   ) -> Iterator[tuple[int, np.random.Generator]]:
        """``(row, generator)`` for each of ``rows``: a generator in the state that row's
        generator is in after ``rounds[row]`` rounds. One generator serves every row: each is
        valid until the next is yielded."""
        rounds = np.asarray(rounds)[rows]
        a, g = _jumps(self._raw.shape[1] * 3)
        used = (rounds + (rounds + 1) // 2).tolist()
        # The last high half kept: pending after an odd number of rounds; after an even number
        # it was used, but NumPy's state still shows it.
        half = self._raw[rows, np.maximum(rounds - 1, 0) // 2, 1] >> np.uint64(32)
        half = np.where(rounds > 0, half, 0).tolist()
        bits = self._generator.bit_generator
        for row, steps, odd, kept in zip(rows.tolist(), used, (rounds % 2).tolist(), half,
                                         strict=True):
            state, inc = self._seeds[row]
            bits.state = _pcg64_state((state * a[steps] + inc * g[steps]) & _MASK128, inc, odd,
                                      kept)
            yield row, self._generator


def _pcg64_state(state: int, inc: int, has_uint32: int, uinteger: int) -> dict:
    return {"bit_generator": "PCG64", "state": {"state": state, "inc": inc},
            "has_uint32": has_uint32, "uinteger": uinteger}
