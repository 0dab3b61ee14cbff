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
def family_runs(tmp_path_factory, bert_run, gpt_run):
    """``{family: (workdir, results)}``: 2-step pretraining runs of every family on the fixture
    corpus (BERT MLM+NSP and GPT are ``bert_run`` / ``gpt_run``), and a 4-step sentiment_rt
    fine-tuning of the BERT one; made once per session, then only read (tests write under
    ``eval/`` and ``probe/`` or elsewhere)."""
    from launch.finetuning import run as finetuning
    from launch.pretraining import run as pretraining
    from tests.conftest import FIXTURES
    from tests.launch import test_albert_e2e, test_pretrain_e2e, test_pretrain_xlnet
    from tests.launch.test_finetune_e2e import finetune_config
    corpus = str(FIXTURES / "corpus_slice.txt.gz")
    bert_mlm = test_pretrain_e2e.make_config(corpus, 2)
    bert_mlm.objectives.update(nsp=0.0)
    configs = {"bert_mlm": bert_mlm,
               "albert_sop": test_albert_e2e.make_config(corpus, 2),
               "albert_order": test_albert_e2e.make_config(corpus, 2, "tiny_order", mlm=0.0,
                                                           order=0.5),
               "xlnet": test_pretrain_xlnet.make_config(corpus, 2)}
    runs = {"bert": bert_run, "gpt": gpt_run}
    for name, cfg in configs.items():
        run_dir = str(tmp_path_factory.mktemp(name))
        runs[name] = (run_dir, pretraining.train_and_evaluate(cfg, run_dir))
    run_dir = str(tmp_path_factory.mktemp("finetuned"))
    runs["finetuned"] = (run_dir, finetuning.finetune(
        finetune_config(bert_run[0], steps=4, evals=1), run_dir))
    return runs
