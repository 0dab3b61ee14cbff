"""GPT zero/few-shot scoring (launch/comparison/zeroshot.py) and the lm-eval adapter, checked
against a direct computation on the session's tiny GPT run; lm-eval itself is not needed."""

import types

import jax
import numpy as np
import pytest

from launch.comparison import lm_eval_adapter, zeroshot


@pytest.fixture(scope="module")
def scorer(gpt_run):
    return zeroshot.Scorer.from_workdir(gpt_run[0], batch_size=4)


def _direct(scorer, ids):
    """log p of every token of ``ids`` after the first, one row, no batching or truncation."""
    logits = scorer.model.apply({"params": scorer.params}, {"token_ids": np.array([ids[:-1]])},
                                deterministic=True)["logits"][0]
    logp = np.asarray(jax.nn.log_softmax(logits, -1))
    return logp[np.arange(len(ids) - 1), ids[1:]]


def _req(*args):
    return types.SimpleNamespace(args=args)  # what lm-eval's Instance offers


def test_loglikelihood_is_the_sum_over_the_continuation(scorer):
    ctx, cont = [5, 40, 41, 42], [43, 44, 45]
    (ll, greedy), = scorer.loglikelihood([(ctx, cont)])
    direct = _direct(scorer, ctx + cont)
    assert ll == pytest.approx(direct[-3:].sum(), rel=1e-5)
    assert ll < 0 and isinstance(greedy, bool)
    # Batched with other rows (padding, more rows than the batch): the same figure.
    many = scorer.loglikelihood([([7, 8], [9])] * 5 + [(ctx, cont)])
    assert many[-1][0] == pytest.approx(ll, rel=1e-5)
    # Longer than the position table: cut on the left, continuation kept.
    long = scorer.loglikelihood([(list(range(10, 80)), cont)])[0][0]
    assert long == pytest.approx(_direct(scorer, (list(range(10, 80)) + cont)[-33:])[-3:].sum(),
                                 rel=1e-5)


def test_adapter_methods_with_request_like_objects(scorer):
    lm = lm_eval_adapter.PretraxLM(scorer=scorer)
    tok = scorer.tokenizer
    (ll, _), = lm.loglikelihood([_req("The sea was", " calm")])
    ids = tok.encode(["The sea was", " calm"])
    assert ll == pytest.approx(scorer.loglikelihood([(ids[0], ids[1])])[0][0], rel=1e-6)
    text = "The sea was calm and the sky was clear over the town that night."
    rolling, = lm.loglikelihood_rolling([_req(text)])
    ids = tok.encode([text])[0]
    assert rolling == pytest.approx(_direct(scorer, [lm.eot] + ids).sum(), rel=1e-4)
    out, = lm.generate_until([_req("The sea was", {"until": ["\n"], "max_gen_toks": 5})])
    assert isinstance(out, str) and "\n" not in out


def test_zero_and_few_shot_accuracy(scorer):
    zero = zeroshot.classify(scorer, "sentiment_rt", shots=0, examples=12)
    two = zeroshot.classify(scorer, "sentiment_rt", shots=2, examples=12)
    for out, k in ((zero, 0), (two, 2)):
        for name in ("accuracy", "calibrated_accuracy", "majority_accuracy"):
            value = out[f"zeroshot/sentiment_rt/k{k}/{name}"]
            assert 0.0 <= value <= 1.0 and value * 12 == pytest.approx(round(value * 12))
    with pytest.raises(ValueError, match="classification"):
        zeroshot.classify(scorer, "qa_disflqa")


def test_lm_eval_model_needs_the_extra_or_subclasses_lm(gpt_run):
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        with pytest.raises(ValueError, match=r"pip install 'pretrax\[lm-eval\]'"):
            lm_eval_adapter.lm_eval_model(gpt_run[0])
        return
    from lm_eval.api.model import LM
    lm = lm_eval_adapter.lm_eval_model(gpt_run[0])
    assert isinstance(lm, LM)
    from lm_eval.api.instance import Instance
    req = Instance("loglikelihood", {}, ("The sea was", " calm"), 0)
    assert lm.loglikelihood([req])[0][0] < 0
