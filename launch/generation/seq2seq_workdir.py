"""``launch.generate`` on a seq2seq workdir: a T5 run (pretraining, or seq2seq fine-tuning) or a
GPT fine-tuned on a seq2seq task; each prompt is decoded as a source
(``launch.generation.seq2seq``)."""

from __future__ import annotations

import os

import numpy as np

from launch.generation.seq2seq import Decoding, decode_texts


def _checkpoint_params(step: int):
    """``params_from`` for ``seq2seq_workdir.load``: a checkpoint of the run (-1 = latest)."""
    from launch.train import checkpoint

    def params_from(run_dir, abstract):
        params, got, _ = checkpoint.restore_params_subtree(run_dir, "", abstract, step,
                                                           step_flag="--step")
        return params, got
    return params_from


def is_seq2seq_workdir(workdir: str) -> bool:
    """A T5 run (pretraining or fine-tuning) or a GPT fine-tuned on a seq2seq task; False for
    a directory without a config (the GPT path's loader says what is wrong with it)."""
    from launch.evaluation import seq2seq_workdir
    from launch.train import storage
    from launch.train import workdir as workdir_lib
    if not storage.exists(os.path.join(workdir, "config.json")):
        return False
    cfg = workdir_lib.read_config(workdir)
    return cfg.get("model", {}).get("arch") == "t5" or seq2seq_workdir.is_seq2seq_workdir(
        workdir)


def generate_from_workdir(workdir: str, prompts: list[str], *, step: int = -1,
                          method: str = "greedy", max_new_tokens: int = 40, **kw) -> list[str]:
    """Each prompt's target (translation, summary, answer) from a seq2seq workdir: a
    fine-tuning run's best dev parameters (``step`` -1) or a checkpoint; a T5 pretraining run's
    latest checkpoint (or ``step``). GPT fine-tuned as prompt → continuation decodes greedily."""
    from launch.evaluation import seq2seq_workdir
    from launch.finetuning import prompted
    fine_tuned = seq2seq_workdir.is_seq2seq_workdir(workdir)
    load_kw = {} if fine_tuned and step == -1 else {"params_from": _checkpoint_params(step)}
    cfg, model, params, tokenizer, got = seq2seq_workdir.load(workdir, **load_kw)
    limit = cfg.data.max_seq_length
    special = tokenizer.special_ids
    sources = [np.asarray([*ids[:limit - 1], special.eos], np.int32)
               for ids in tokenizer.encode(list(prompts))]
    if cfg.model.arch == "t5":
        options = Decoding(method=method, max_new_tokens=max_new_tokens,
                           batch_size=len(prompts), **kw)
        texts = decode_texts(model, params, tokenizer, sources, options)
    else:
        texts = prompted.continuations(model, params, sources, tokenizer=tokenizer,
                                       max_new_tokens=max_new_tokens, batch_size=len(prompts))
        method = "greedy"
    for prompt, text in zip(prompts, texts, strict=True):
        print(f"[step {got}, {method}] {prompt} → {text}", flush=True)
    return texts
