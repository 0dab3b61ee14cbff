"""launch/evaluation/geometry.py: the effective rank (ridge.ranks, the probes' measure) and the
mean cosine tell collapsed vectors from spread ones, and a common offset from collapse."""

import numpy as np
import pytest

from launch.evaluation import geometry, ridge


def test_effective_rank_of_isotropic_rank_one_and_k_directions():
    rng = np.random.default_rng(0)
    assert ridge.ranks(rng.normal(size=(4000, 16)))["effective_rank"] == pytest.approx(16, rel=0.02)
    line = rng.normal(size=(500, 1)) * rng.normal(size=(1, 16))
    assert ridge.ranks(line)["effective_rank"] == pytest.approx(1.0, abs=1e-6)
    three = rng.normal(size=(4000, 3)) @ np.linalg.qr(rng.normal(size=(16, 3)))[0].T
    assert ridge.ranks(three)["effective_rank"] == pytest.approx(3, rel=0.02)
    assert ridge.ranks(three)["rank99"] == 3
    assert ridge.ranks(np.ones((10, 4))) == {"effective_rank": 0.0, "rank99": 0}


def test_a_common_offset_raises_the_cosine_not_the_rank():
    rng = np.random.default_rng(1)
    spread = rng.normal(size=(2000, 32))
    shifted = spread + 20.0 * rng.normal(size=(1, 32))
    assert abs(geometry.mean_cosine(spread)) < 0.02
    assert geometry.mean_cosine(shifted) > 0.9
    assert ridge.ranks(shifted)["effective_rank"] == pytest.approx(
        ridge.ranks(spread)["effective_rank"])
    assert np.isnan(geometry.mean_cosine(spread[:1]))
