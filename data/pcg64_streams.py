"""Many NumPy generators at once: ``default_rng(seed)``, ``random()`` and ``integers(n)``.

``data/plm.py`` seeds one ``np.random.default_rng`` per row and draws from it in a data-dependent
loop; seeding and calling each row's generator from Python is what made that loop slow. Here the
rows' generators are reproduced together, as NumPy's C and Cython code computes them, so every
row gets exactly the values its own generator would have given:

* seeding (:func:`seeded_states`): ``SeedSequence``'s hash of the seed's 32-bit words into a
  pool of 4, ``generate_state(4, uint64)`` and PCG's ``srandom`` (all rows in uint32 NumPy);
* each row's 64-bit outputs are fetched in bulk (``random_raw``) and the draws computed from them
  for many rows at a time: ``random()`` is ``(x >> 11) · 2⁻⁵³`` of one output ``x``;
  ``integers(n)`` (int64, ``n ≤ 2³²``) draws nothing for ``n = 1``, else a 32-bit ``v`` (the low
  half of an output whose high half PCG64 keeps for the next 32-bit draw: ``has_uint32`` and
  ``uinteger`` in its state) and returns Lemire's ``(v · n) >> 32``, redrawn while
  ``(v · n) mod 2³² < 2³² mod n``.

Afterwards :meth:`RowStreams.generator` gives a generator in the state a row's draws left it in
(PCG64 is an LCG: ``k`` steps are ``s·aᵏ + inc·(aᵏ⁻¹ + … + 1) mod 2¹²⁸``), so a row's later draws
(a permutation, a ``choice``) are NumPy's own. ``tests/data/test_pcg64_streams.py`` checks all
of it against real generators.
"""

from __future__ import annotations

import numpy as np

_MULT = 0x2360ED051FC65DA44385DF649FCCF645  # PCG64's 128-bit LCG multiplier
# SeedSequence's hash constants (numpy/random/bit_generator.pyx) and pool size.
_INIT_A, _MULT_A, _INIT_B, _MULT_B = 0x43B0D7E5, 0x931E8875, 0x8B51F9DD, 0x58F38DED
_MIX_L, _MIX_R, _POOL = 0xCA01F9DD, 0x4973F715, 4
_MASK128 = (1 << 128) - 1
_LOW32 = np.uint64(0xFFFFFFFF)
_TWO_TO_32 = 1 << 32


def _jump(state: int, inc: int, steps: int) -> int:
    """PCG64's LCG state after ``steps`` outputs from ``state``."""
    mult, add = 1, 0  # the affine map of `steps` steps: s → s·mult + add
    step_mult, step_add = _MULT, inc
    while steps:
        if steps & 1:
            mult, add = (mult * step_mult) & _MASK128, (add * step_mult + step_add) & _MASK128
        step_mult, step_add = ((step_mult * step_mult) & _MASK128,
                               (step_add * step_mult + step_add) & _MASK128)
        steps >>= 1
    return (state * mult + add) & _MASK128


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


def _pcg64_seeds(pool: np.ndarray) -> list[tuple[int, int, int, int]]:
    """``PCG64(seed_sequence)``'s state from each row's pool (``generate_state(4, uint64)``,
    then PCG's ``srandom``): ``(state, inc, has_uint32, uinteger)`` per row."""
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
        seeds.append(((((inc + ((w0 << 64) | w1)) * _MULT) + inc) & _MASK128, inc, 0, 0))
    return seeds


def seeded_states(entropy: np.ndarray) -> list[tuple[int, int, int, int]]:
    """The PCG64 state of ``np.random.default_rng(list(row))`` for each row of ``entropy``
    (non-negative integers below 2⁶⁴, uint64 [B, E]), computed for all rows at once:
    ``(state, inc, has_uint32, uinteger)``."""
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


class RowStreams:
    """Rows' generators, drawn from together (module docstring).

    Args:
      seeds: per row, a PCG64 state ``(state, inc, has_uint32, uinteger)``
        (:func:`seeded_states`, or a ``bit_generator.state``'s fields).
      width: 64-bit outputs fetched per row up front (more are fetched if a row needs them).
    """

    def __init__(self, seeds: list[tuple[int, int, int, int]], width: int):
        self._seeds = seeds
        self._generator = np.random.Generator(np.random.PCG64(0))  # its state is set per row
        self._raw = self._fetch(0, width)
        self._used = np.zeros(len(seeds), np.int64)  # 64-bit outputs consumed per row
        self._has32 = np.array([s[2] for s in seeds], bool)
        self._half = np.array([s[3] for s in seeds], np.uint64)

    def _fetch(self, start: int, width: int) -> np.ndarray:
        """uint64 [B, width]: each row's outputs ``start`` to ``start + width``."""
        bits, out = self._generator.bit_generator, []
        for state, inc, _, _ in self._seeds:
            bits.state = _pcg64_state(_jump(state, inc, start), inc, 0, 0)
            out.append(bits.random_raw(width))
        return np.stack(out)

    def _take(self, rows: np.ndarray) -> np.ndarray:
        """The next 64-bit output of each row in ``rows`` (distinct), uint64."""
        width = self._raw.shape[1]
        if rows.size and self._used[rows].max() >= width:
            self._raw = np.concatenate([self._raw, self._fetch(width, width)], axis=1)
        out = self._raw[rows, self._used[rows]]
        self._used[rows] += 1
        return out

    def _uint32(self, rows: np.ndarray) -> np.ndarray:
        """``next_uint32`` of each row in ``rows`` (distinct), as uint64."""
        out = np.empty(rows.size, np.uint64)
        kept = self._has32[rows]
        out[kept] = self._half[rows[kept]]
        fresh = rows[~kept]
        word = self._take(fresh)
        out[~kept] = word & _LOW32
        self._half[fresh] = word >> np.uint64(32)
        self._has32[rows] = ~kept
        return out

    def uniform(self, rows: np.ndarray) -> np.ndarray:
        """``generators[r].random()`` for each ``r`` in ``rows`` (distinct), float64."""
        return (self._take(rows) >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))

    def integers(self, rows: np.ndarray, bound: np.ndarray) -> np.ndarray:
        """``generators[r].integers(bound)`` for each ``r`` in ``rows`` (distinct), int64;
        ``bound`` int [len(rows)] in ``[1, 2³²]``."""
        bound = np.asarray(bound, np.uint64)
        out = np.zeros(rows.size, np.uint64)
        todo = np.flatnonzero(bound > 1)  # integers(1) draws nothing
        while todo.size:
            n = bound[todo]
            product = self._uint32(rows[todo]) * n
            out[todo] = product >> np.uint64(32)
            rejected = (product & _LOW32) < (np.uint64(_TWO_TO_32) % n)
            todo = todo[rejected]
        return out.astype(np.int64)

    def generator(self, row: int) -> np.random.Generator:
        """A generator in the state row ``row``'s draws so far left its generator in; one
        generator serves every row, so it is valid until the next call."""
        state, inc, _, _ = self._seeds[row]
        self._generator.bit_generator.state = _pcg64_state(
            _jump(state, inc, int(self._used[row])), inc, int(self._has32[row]),
            int(self._half[row]))
        return self._generator


def _pcg64_state(state: int, inc: int, has_uint32: int, uinteger: int) -> dict:
    return {"bit_generator": "PCG64", "state": {"state": state, "inc": inc},
            "has_uint32": has_uint32, "uinteger": uinteger}
