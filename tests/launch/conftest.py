"""Workdirs shared by the launch tests of one session."""

import pytest


@pytest.fixture(scope="session")
def gpt_run(tmp_path_factory):
    """``(workdir, results)`` of a 3-step gpt.py:tiny pretraining run (32 positions), made once
    per test session; tests read it, and write only under ``eval/`` and ``error.log``."""
    from launch.pretraining import run as pretraining
    from tests.launch.test_gpt_e2e import make_config
    run_dir = str(tmp_path_factory.mktemp("gpt"))
    return run_dir, pretraining.train_and_evaluate(make_config(3), run_dir)


@pytest.fixture(scope="session")
def bert_run(tmp_path_factory):
    """``(workdir, results)`` of a 2-step bert.py:tiny pretraining run (64 positions) on the
    fixture corpus, made once per test session; tests only read it."""
    from launch.pretraining import run as pretraining
    from tests.conftest import FIXTURES
    from tests.launch.test_pretrain_e2e import make_config
    run_dir = str(tmp_path_factory.mktemp("bert"))
    return run_dir, pretraining.train_and_evaluate(
        make_config(str(FIXTURES / "corpus_slice.txt.gz"), 2), run_dir)


@pytest.fixture(scope="session")
def t5_corpus(tmp_path_factory):
    """A slice of the monolingual es+en corpora: 16 chapters of each."""
    from tests.launch.test_t5_e2e import small_corpus
    return small_corpus(str(tmp_path_factory.mktemp("t5corpus") / "es_en.txt"))


@pytest.fixture(scope="session")
def t5_run(tmp_path_factory, t5_corpus):
    """``(workdir, results)`` of a 4-step t5.py:tiny span-corruption run (checkpoints at 2 and
    4), made once per test session; tests only read it."""
    from launch.pretraining import run as pretraining
    from tests.launch.test_t5_e2e import make_config
    run_dir = str(tmp_path_factory.mktemp("t5"))
    return run_dir, pretraining.train_and_evaluate(make_config(t5_corpus, 4), run_dir)
