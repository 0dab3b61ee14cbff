"""Tests for data/pcg64_streams.py: every seed and draw equals the row's own NumPy generator's."""

import numpy as np
import pytest

from data.pcg64_streams import RowStreams, seeded_states


def _state(generator):
    s = generator.bit_generator.state
    return s["state"]["state"], s["state"]["inc"], s["has_uint32"], s["uinteger"]


def test_seeded_states_equal_default_rng():
    """Seeds of 1 to 6 integers, small, 0, and up to 2⁶⁴ - 1 (two 32-bit words each), rows of
    different word layouts in one call."""
    rng = np.random.default_rng(0)
    for columns in range(1, 7):
        entropy = rng.integers(0, 2 ** 63, size=(40, columns), dtype=np.uint64) * np.uint64(2)
        entropy[::3] >>= np.uint64(40)  # one-word values
        entropy[1::5, 0] = 0
        entropy[2, -1] = 2 ** 64 - 1
        want = [_state(np.random.default_rng([int(x) for x in row])) for row in entropy]
        assert seeded_states(entropy) == want


@pytest.mark.parametrize("width", [1, 64])
def test_mixed_draws_equal_numpy_and_leave_the_same_state(width):
    """Rows draw different sequences of random() and integers(n) (n = 1 draws nothing; large n
    is often rejected and redrawn); a narrow width makes the streams fetch more on the way."""
    plan = np.random.default_rng(0)
    rows = 24
    entropy = np.stack([np.full(rows, 7), np.arange(rows)], 1)
    streams = RowStreams(seeded_states(entropy), width)
    reference = [np.random.default_rng([7, i]) for i in range(rows)]
    for _ in range(80):
        active = np.flatnonzero(plan.random(rows) < 0.7)
        if plan.random() < 0.5:
            got = streams.uniform(active)
            want = [reference[r].random() for r in active]
        else:
            bound = plan.choice([1, 2, 3, 5, 25, 1000, 2 ** 31 + 11, 2 ** 32], active.size)
            got = streams.integers(active, bound)
            want = [reference[r].integers(b) for r, b in zip(active, bound, strict=True)]
        np.testing.assert_array_equal(got, want)
    for r in range(rows):
        assert _state(streams.generator(r)) == _state(reference[r])
        np.testing.assert_array_equal(streams.generator(r).permutation(50),
                                      reference[r].permutation(50))


def test_rejected_draws_are_redrawn():
    """Lemire's rejection (v · n mod 2³² < 2³² mod n) is rare for small n; force it with a
    pending 32-bit half of 0, which integers(3) rejects."""
    reference = [np.random.default_rng([100, i]) for i in range(2)]
    for g in reference:
        g.bit_generator.state = {**g.bit_generator.state, "has_uint32": 1, "uinteger": 0}
    streams = RowStreams([_state(g) for g in reference], 4)
    np.testing.assert_array_equal(streams.integers(np.arange(2), np.array([3, 3])),
                                  [g.integers(3) for g in reference])
    assert _state(streams.generator(0)) == _state(reference[0])
