"""Tests for data/pcg64_streams.py: every seed and draw equals the row's own NumPy generator's."""

import numpy as np

from data import pcg64_streams
from data.pcg64_streams import RowStreams, seeded_states


def _state(generator):
    s = generator.bit_generator.state
    return s["state"]["state"], s["state"]["inc"], s["has_uint32"], s["uinteger"]


def _entropy(rows, columns, seed=0):
    """Seeds of small, 0 and up to 2⁶⁴ - 1 (two 32-bit words) integers, mixed layouts."""
    entropy = np.random.default_rng(seed).integers(0, 2 ** 63, size=(rows, columns),
                                                   dtype=np.uint64) * np.uint64(2)
    entropy[::3] >>= np.uint64(40)  # one-word values
    entropy[1::5, 0] = 0
    entropy[2, -1] = 2 ** 64 - 1
    return entropy


def _default_rng(row):
    return np.random.default_rng([int(x) for x in row])


def _after(streams, row, rounds):
    """``streams``' generator of ``row`` after ``rounds`` rounds."""
    [(got, generator)] = list(streams.generators(np.array([row]), np.full(row + 1, rounds)))
    assert got == row
    return generator


def test_seeded_states_equal_default_rng():
    for columns in range(1, 7):
        entropy = _entropy(40, columns, columns)
        assert seeded_states(entropy) == [_state(_default_rng(row))[:2] for row in entropy]


def test_rounds_and_generator_equal_numpy():
    """Rounds of random() then a 32-bit draw (integers(2³²) returns it unchanged), and the
    generator after each number of rounds, odd (a 32-bit half pending) or even."""
    entropy = _entropy(12, 4)
    for total in (1, 6, 7):
        streams = RowStreams(entropy, total)
        uniform, draw32 = streams.rounds()
        assert uniform.shape == draw32.shape == (12, total)
        for r, row in enumerate(entropy):
            g = _default_rng(row)
            assert _state(_after(streams, r, 0)) == _state(g)
            for s in range(total):
                assert uniform[r, s] == g.random()
                assert draw32[r, s] == g.integers(2 ** 32)
                assert _state(_after(streams, r, s + 1)) == _state(g)
            np.testing.assert_array_equal(_after(streams, r, total).permutation(20),
                                          g.permutation(20))


def test_lemire_equals_integers_and_flags_what_numpy_redraws():
    """Bounds near 2³¹ reject half the draws, so both outcomes occur; exact means NumPy took
    exactly that one draw."""
    g = np.random.default_rng(3)
    outcomes = set()
    for n in np.random.default_rng(4).choice([2, 3, 5, 25, 1000, 2 ** 31 + 11, 2 ** 32 - 1], 200):
        start = g.bit_generator.state
        v = g.integers(2 ** 32)
        one_draw = _state(g)
        g.bit_generator.state = start
        want = g.integers(n)
        value, exact = pcg64_streams.lemire(np.array([v], np.uint64), np.array([n]))
        assert bool(exact[0]) == (_state(g) == one_draw)
        if exact[0]:
            assert value[0] == want
        outcomes.add(bool(exact[0]))
    assert outcomes == {True, False}
    # Forced: v = 0 gives v · 3 mod 2³² = 0 < 2³² mod 3 = 1, redrawn; integers(1) draws nothing.
    assert not pcg64_streams.lemire(np.array([0], np.uint64), np.array([3]))[1][0]
    assert not pcg64_streams.lemire(np.array([5], np.uint64), np.array([1]))[1][0]
