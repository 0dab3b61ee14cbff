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


class _Runs(dict):
    """Workdirs made on first use, then kept for the session."""

    def __init__(self, make):
        super().__init__()
        self._make = make

    def __missing__(self, family):
        self[family] = self._make(family)
        return self[family]


@pytest.fixture(scope="session")
def family_runs(tmp_path_factory, request):
    """``{family: (workdir, results)}``, each made on first use and kept for the session:
    2-step pretraining runs of every family on the fixture corpus (``bert``, MLM+NSP, and
    ``gpt`` are ``bert_run`` / ``gpt_run``; ``bert_mlm``, ``albert_sop``, ``albert_order``,
    ``xlnet``), and ``finetuned``, a 4-step sentiment_rt fine-tuning of the BERT one. Tests
    only read them (they write under ``eval/`` and ``probe/`` or elsewhere)."""
    from launch.finetuning import run as finetuning
    from launch.pretraining import run as pretraining
    from tests.conftest import FIXTURES
    from tests.launch import test_albert_e2e, test_pretrain_e2e, test_pretrain_xlnet
    from tests.launch.test_finetune_e2e import finetune_config
    corpus = str(FIXTURES / "corpus_slice.txt.gz")

    def config(family):
        if family == "bert_mlm":
            cfg = test_pretrain_e2e.make_config(corpus, 2)
            cfg.objectives.update(nsp=0.0)
            return cfg
        if family == "albert_sop":
            return test_albert_e2e.make_config(corpus, 2)
        if family == "albert_order":
            return test_albert_e2e.make_config(corpus, 2, "tiny_order", mlm=0.0, order=0.5)
        return test_pretrain_xlnet.make_config(corpus, 2)

    def make(family):
        if family in ("bert", "gpt"):
            return request.getfixturevalue(f"{family}_run")
        run_dir = str(tmp_path_factory.mktemp(family))
        if family == "finetuned":
            cfg = finetune_config(request.getfixturevalue("bert_run")[0], steps=4, evals=1)
            return run_dir, finetuning.finetune(cfg, run_dir)
        return run_dir, pretraining.train_and_evaluate(config(family), run_dir)

    return _Runs(make)


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
