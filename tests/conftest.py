"""Test setup: 8 fake CPU devices for mesh tests, and TensorFlow kept off accelerators."""

import os

# Must happen before JAX is imported anywhere (DESIGN.md §5).
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import pathlib  # noqa: E402

import pytest  # noqa: E402

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


@pytest.fixture
def fixture_corpus() -> str:
    """Path of the small corpus slice (one sentence per line, blank line between documents)."""
    return str(FIXTURES / "corpus_slice.txt.gz")
