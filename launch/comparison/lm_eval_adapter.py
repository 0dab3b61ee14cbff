"""A pretrax GPT behind lm-evaluation-harness's ``LM`` interface, for its tasks on the user's data.

  pip install 'pretrax[lm-eval]'
  python -c "from launch.comparison import lm_eval_adapter as a; import lm_eval; \
    print(lm_eval.simple_evaluate(model=a.lm_eval_model('workdirs/gpt_tiny'), tasks=['lambada']))"

(lm-eval fetches its task data through ``datasets``: give it local copies, pretrax never
downloads.) ``PretraxLM`` implements the three request types with ``zeroshot.Scorer``:
``loglikelihood`` ((context, continuation) → (Σ log p, greedy?)), ``loglikelihood_rolling``
((text,) → Σ log p of every token, the first after end-of-text) and ``generate_until``
((context, {"until", "max_gen_toks"}) → greedy text cut at the first stop string). It takes any
object with ``args`` (lm-eval's ``Instance``), so it works without lm-eval installed;
``lm_eval_model`` imports lm-eval only when called and returns a subclass of its ``LM``.
"""

from __future__ import annotations

from launch.comparison.zeroshot import Scorer

DEFAULT_GEN_TOKENS = 32


class PretraxLM:
    """lm-eval's ``LM`` methods over a GPT workdir (``Scorer``); ``batch_size`` rows a call."""

    def __init__(self, workdir: str = "", *, scorer: Scorer | None = None, step: int = -1,
                 batch_size: int = 16):
        self.scorer = scorer or Scorer.from_workdir(workdir, step, batch_size)
        tok = self.scorer.tokenizer
        special = tok.special_ids
        self.eot = special.eos if special.eos is not None else special.sep
        if self.eot is None:
            raise ValueError(f"the tokenizer {tok.name} has no end-of-text token; lm-eval's "
                             "rolling log-likelihood starts every text after one")

    def _encode(self, texts: list[str]) -> list[list[int]]:
        return self.scorer.tokenizer.encode(texts) if texts else []

    def loglikelihood(self, requests) -> list[tuple[float, bool]]:
        """(context, continuation) → (log p(continuation | context), greedy?); an empty
        context means the end-of-text token alone."""
        contexts = self._encode([r.args[0] for r in requests])
        continuations = self._encode([r.args[1] for r in requests])
        pairs = [(c or [self.eot], k) for c, k in zip(contexts, continuations, strict=True)]
        return self.scorer.loglikelihood(pairs)

    def loglikelihood_rolling(self, requests) -> list[float]:
        """(text,) → Σ log p of every token of the text (perplexity tasks)."""
        return [self.scorer.loglikelihood_rolling(ids, self.eot)
                for ids in self._encode([r.args[0] for r in requests])]

    def generate_until(self, requests) -> list[str]:
        """(context, {"until": [...], "max_gen_toks": n}) → greedy continuation, cut before the
        first stop string."""
        from launch.generation import run as generating  # noqa: PLC0415
        out = []
        for r in requests:
            context, kwargs = r.args[0], (r.args[1] if len(r.args) > 1 else {}) or {}
            until = kwargs.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            room = self.scorer.max_length - len(self._encode([context])[0])
            new = max(1, min(int(kwargs.get("max_gen_toks", DEFAULT_GEN_TOKENS)), room))
            text = generating.continue_prompts(self.scorer.model, self.scorer.params,
                                               self.scorer.tokenizer, [context],
                                               max_new_tokens=new)[0]
            cut = min((text.find(s) for s in until if s and s in text), default=len(text))
            out.append(text[:cut])
        return out


def lm_eval_model(workdir: str, **kw):
    """A ``lm_eval.api.model.LM`` instance for the GPT workdir (needs the ``lm-eval`` extra).

    Raises:
      ValueError: lm-eval is not installed (says how to install it).
    """
    try:
        from lm_eval.api.model import LM  # noqa: PLC0415
    except ImportError:
        raise ValueError("lm-eval is not installed: pip install 'pretrax[lm-eval]' (or "
                         "lm-eval), then call lm_eval_model again") from None

    class PretraxLMEval(PretraxLM, LM):
        def __init__(self, *args, **kwargs):
            LM.__init__(self)
            PretraxLM.__init__(self, *args, **kwargs)

    return PretraxLMEval(workdir, **kw)
