"""Which evaluation a workdir gets (``launch.evaluate``): a GPT run its perplexity, another
pretraining run its intrinsic figures, a fine-tuning run its task or file scored."""

from __future__ import annotations


def evaluate(workdir: str, *, text: str, output: str, step: int, pppl_sequences: int,
             **finetuned_options) -> dict:
    """Scores ``workdir`` as its kind says; ``finetuned_options`` go to
    ``finetuned.evaluate_workdir`` (task, split, data file and its columns, format)."""
    from launch.evaluation import finetuned, intrinsic, perplexity
    if perplexity.is_clm_workdir(workdir):
        return perplexity.evaluate_clm_workdir(workdir, text=text, output=output, step=step)
    if intrinsic.is_pretraining_workdir(workdir):
        return intrinsic.evaluate_pretraining_workdir(workdir, output=output, step=step,
                                                      pppl_sequences=pppl_sequences)
    return finetuned.evaluate_workdir(workdir, output=output, **finetuned_options)
