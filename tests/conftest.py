"""Test setup: 8 fake CPU devices for mesh tests, TensorFlow kept off accelerators, and one
persistent JAX compilation cache for the whole test run."""

import os
import shutil
import tempfile

# Must happen before JAX is imported anywhere (docs/DESIGN.md §5).
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# The tests compile the same tiny programs again and again, in this process and in the binaries
# they start (each a fresh process): a compilation cache on disk, shared by every process of this
# run, compiles each program once. The environment of the run's first process (the xdist
# controller) reaches its workers and their binaries. The cache key covers the program, the XLA
# flags and the JAX version, so a hit runs the executable a compile would have produced. A size
# limit turns on JAX's file lock, so no process reads an entry while another writes it.
_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_CACHE:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="pretrax-tests-jax-cache-")
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"
    os.environ["JAX_COMPILATION_CACHE_MAX_SIZE"] = str(8 << 30)

import pathlib  # noqa: E402

import pytest  # noqa: E402

FIXTURES = pathlib.Path(__file__).parent / "fixtures"


def pytest_sessionfinish(session):
    """Removes this run's compilation cache, in the process that made it (the xdist controller,
    once every worker is done; the only process without xdist)."""
    if _OWN_CACHE:
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)


@pytest.fixture
def fixture_corpus() -> str:
    """Path of the small corpus slice (one sentence per line, blank line between documents)."""
    return str(FIXTURES / "corpus_slice.txt.gz")
