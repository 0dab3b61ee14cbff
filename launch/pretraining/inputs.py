"""What pretraining needs from its objectives' input side: the dataset, the unigram baseline's
counts, derived eval metrics and the closing line.

The composition root of objectives and data: each objective's record (``objectives.registry``)
names its input family; ``INPUT_FAMILIES`` maps that name to the ``data/`` pipeline. Add an
objective there (and its schema in ``data/features.py``), and its family here if it is new.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence

import jax

from data import clm, mixture, pipeline, plm, seq2seq_pretraining, stream_pipeline
from launch.train import data_options
from objectives import registry


def _figures(final: dict, names: Sequence[str]) -> str:
    """``eval MLM loss … (unigram baseline …), MLM accuracy …, NSP accuracy …`` for ``names``:
    loss and baseline for a token-level objective, accuracy for each."""
    parts = []
    for name in names:
        label = name.upper()
        if registry.OBJECTIVES[name].baseline is not None:
            parts.append(f"eval {label} loss {final[f'eval/{name}_loss']:.3f} (unigram baseline "
                         f"{final['eval/unigram_entropy']:.3f}), {label} accuracy "
                         f"{final[f'eval/{name}_accuracy']:.3f}")
        else:
            parts.append(f"{label} accuracy {final[f'eval/{name}_accuracy']:.3f}")
    return ", ".join(parts)


def _clm_eval_extras(out: dict) -> dict:
    """Perplexities: ``eval/perplexity`` = exp(eval/clm_loss), ``eval/unigram_perplexity`` =
    exp(eval/unigram_entropy), both per held-out target token."""
    return {"eval/perplexity": math.exp(out["eval/clm_loss"]),
            "eval/unigram_perplexity": math.exp(out["eval/unigram_entropy"])}


def _clm_figures(final: dict, names: Sequence[str]) -> str:
    del names  # clm alone
    return (f"eval loss {final['eval/clm_loss']:.3f}, perplexity {final['eval/perplexity']:.1f} "
            f"(unigram baseline {final['eval/unigram_perplexity']:.1f}), next-token accuracy "
            f"{final['eval/clm_accuracy']:.3f}")


@dataclasses.dataclass(frozen=True)
class InputFamily:
    """One ``data/`` pipeline and what goes with its batches.

    Attributes:
      make_dataset: the run's objective names → ``(data_cfg, split, **kw) -> iterator of host
        batches``.
      unigram_counts: (corpus, run config) → int64 [V] counts of the training targets' tokens.
      log_probs: summed counts → float32 [V] smoothed unigram log-probabilities.
      eval_extras: eval metrics → further metrics derived from them.
      figures: (final metrics, objective names) → the closing line's figures.
      dims: the run's data section → the batch dims beyond B, L, P (``S``, ``T`` of an
        encoder–decoder's rows).
    """
    make_dataset: Callable[[tuple[str, ...]], Callable]
    unigram_counts: Callable
    log_probs: Callable
    eval_extras: Callable[[dict], dict] = lambda out: {}
    figures: Callable[[dict, Sequence[str]], str] = _figures
    dims: Callable[[object], dict] = lambda data_cfg: {}


def _configured(make_dataset: Callable, options: Callable, kind: str,
                objectives: tuple[str, ...] = ()) -> Callable:
    """``make_dataset(corpus_options, options, split, **kw)`` of a ``data/`` pipeline, called
    with the run config's ``data`` section instead (``data_options`` builds the records). A
    streamed corpus (``stream:``, ``prepared:``, a mixture) goes to ``data.stream_pipeline``
    with the family ``kind``; the in-memory pipelines never see ``stream_state``."""
    def from_config(data_cfg, split: str, stream_state=None, **kw):
        corpus = data_options.corpus_options(data_cfg)
        if mixture.is_streamed(corpus.corpus):
            return stream_pipeline.make_dataset(kind, corpus, options(data_cfg), split,
                                                stream_state=stream_state,
                                                objectives=objectives, **kw)
        return make_dataset(corpus, options(data_cfg), split, **kw)
    return from_config


def _in_memory(make_dataset: Callable, options: Callable, kind: str) -> Callable:
    """``_configured`` for a pipeline without a streamed form: a streamed corpus is refused."""
    def from_config(data_cfg, split: str, stream_state=None, **kw):
        del stream_state
        if mixture.is_streamed(data_cfg.corpus):
            raise ValueError(f"data.corpus={data_cfg.corpus}: {kind} pretraining reads text "
                             "files in memory; stream:, prepared: and mixtures are not supported "
                             "for it yet, pass the files (a path, glob or comma-separated list)")
        return make_dataset(data_options.corpus_options(data_cfg), options(data_cfg), split,
                            **kw)
    return from_config


def is_streamed(data_cfg) -> bool:
    """Whether the run's corpus is streamed (``stream:``, ``prepared:``, a mixture)."""
    return mixture.is_streamed(data_cfg.corpus)


def load_corpus(data_cfg, **kw):
    """The run's corpus: ``data.corpus.load_corpus`` in memory, or a streamed corpus's
    tokenizer, eval documents and baseline counts (``data.stream_pipeline.load_corpus``)."""
    corpus = data_options.corpus_options(data_cfg)
    if mixture.is_streamed(corpus.corpus):
        return stream_pipeline.load_corpus(corpus, **kw)
    return pipeline.load_corpus(corpus, **kw)


def _corpus_counts(corpus, cfg=None):
    del cfg
    return corpus.unigram_counts


def _of_corpus(counts: Callable) -> Callable:
    """``counts(corpus)`` as ``InputFamily.unigram_counts`` takes it: ``(corpus, cfg)``."""
    return lambda corpus, cfg=None: counts(corpus)


def _seq2seq_counts(corpus, cfg):
    """The targets of the first training batches (sentinels, EOS included): what the decoder
    predicts is not the corpus's unigram distribution."""
    del corpus
    return seq2seq_pretraining.unigram_counts(
        data_options.corpus_options(cfg.data), data_options.denoising_options(cfg.data),
        seed=cfg.seed, process_index=jax.process_index(), process_count=jax.process_count())


def _seq2seq_dims(data_cfg) -> dict:
    return {"S": data_cfg.max_seq_length,
            "T": seq2seq_pretraining.target_length(data_options.denoising_options(data_cfg))}


def _seq2seq_figures(final: dict, names: Sequence[str]) -> str:
    del names  # seq2seq alone
    return (f"eval loss {final['eval/seq2seq_loss']:.3f} (unigram baseline "
            f"{final['eval/unigram_entropy']:.3f}), target-token accuracy "
            f"{final['eval/seq2seq_accuracy']:.3f}")


INPUT_FAMILIES: dict[str, InputFamily] = {
    # MLM and/or one sentence task, all built by data/pipeline.py.
    registry.SENTENCE_INPUTS: InputFamily(
        lambda names: _configured(functools.partial(pipeline.make_dataset, objectives=names),
                                  data_options.instance_options, "sentence", names),
        _corpus_counts, pipeline.unigram_log_probs_from_counts),
    registry.CLM_INPUTS: InputFamily(lambda names: _configured(clm.make_dataset,
                                                               data_options.clm_options, "clm"),
                                     _of_corpus(clm.unigram_counts),
                                     clm.unigram_log_probs_from_counts, _clm_eval_extras,
                                     _clm_figures),
    # XLNet's sentence pairs: the corpus's counts, scored on the predicted tokens.
    registry.PLM_INPUTS: InputFamily(lambda names: _configured(plm.make_dataset,
                                                               data_options.plm_options, "plm"),
                                     _corpus_counts,
                                     pipeline.unigram_log_probs_from_counts),
    # T5's denoising rows (span corruption or sentence permutation), in memory only.
    registry.SEQ2SEQ_INPUTS: InputFamily(
        lambda names: _in_memory(seq2seq_pretraining.make_dataset,
                                 data_options.denoising_options, "seq2seq"),
        _seq2seq_counts, seq2seq_pretraining.unigram_log_probs_from_counts,
        figures=_seq2seq_figures, dims=_seq2seq_dims),
}


@dataclasses.dataclass(frozen=True)
class ObjectiveData:
    """What the loop needs from a run's input side.

    Attributes:
      make_dataset: ``(data_cfg, split, **kw) -> iterator of host batches``.
      baseline: the batch keys the unigram baseline scores; None = no baseline (no token-level
        objective, e.g. SOP alone).
      unigram_counts, log_probs, eval_extras, dims: as ``InputFamily``.
      summary: final metrics → the closing line's figures.
    """
    make_dataset: Callable
    baseline: registry.Baseline | None
    unigram_counts: Callable
    log_probs: Callable
    eval_extras: Callable[[dict], dict]
    summary: Callable[[dict], str]
    dims: Callable[[object], dict] = lambda data_cfg: {}


def _families() -> str:
    """``sentence: mlm, nsp, …; clm: clm; …`` (for error messages)."""
    members = {family: [n for n in registry.PRETRAINING if registry.OBJECTIVES[n].inputs == family]
               for family in INPUT_FAMILIES}
    return "; ".join(f"{family}: {', '.join(names)}" for family, names in members.items())


def objective_data(objectives: Sequence[str]) -> ObjectiveData:
    """The input side of a run's active objectives (``modeling.objective_weights``): they must
    share one input family (the sentence family takes MLM and/or one sentence task,
    ``data.sentence_order.sentence_task``). A ValueError names what combines."""
    names = tuple(objectives)
    families = {registry.get(n).inputs for n in names}
    if len(families) != 1 or not families <= set(INPUT_FAMILIES):
        raise ValueError(f"objectives {list(names)} have no common pretraining input: combine "
                         f"objectives of one family ({_families()})")
    family = INPUT_FAMILIES[families.pop()]
    baseline = next((registry.OBJECTIVES[n].baseline for n in names
                     if registry.OBJECTIVES[n].baseline is not None), None)
    return ObjectiveData(family.make_dataset(names), baseline, family.unigram_counts,
                         family.log_probs, family.eval_extras,
                         functools.partial(family.figures, names=names), family.dims)
