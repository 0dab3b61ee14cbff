"""Text generation from a GPT pretraining workdir: restore its parameters, decode prompts."""

from __future__ import annotations

import jax
import ml_collections
import numpy as np

from data import features
from data.tokenizer import Tokenizer
from launch import checkpoint, finetune_setup, train_lib
from launch import mesh as mesh_lib
from launch import workdir as workdir_lib
from lm import generation, models

METHODS = ("greedy", "sample", "beam")


def load_model(workdir: str, step: int = -1):
    """``(model, params, tokenizer, step)`` of a causal-LM pretraining workdir's checkpoint.

    Raises:
      ValueError: the workdir is not a causal-LM (GPT) run.
      FileNotFoundError: it has no config.json or no checkpoint (at ``step``).
    """
    cfg = ml_collections.ConfigDict(workdir_lib.read_config(workdir))
    if cfg.get("objective") != "clm":
        raise ValueError(f"{workdir} was trained with objective={cfg.get('objective')!r}; "
                         "generation needs a causal-LM (GPT) pretraining workdir, e.g. one of "
                         "launch/configs/gpt.py")
    tokenizer = Tokenizer.load(cfg.data.tokenizer)
    model = models.make_model(cfg.model.arch, train_lib.model_config(cfg, tokenizer.vocab_size))
    mesh = mesh_lib.make_mesh(cfg.mesh)
    rules = mesh_lib.rules_from_config(cfg.logical_axis_rules)
    dummy = {"token_ids": np.zeros((1, 8), np.int32)}
    abstract, _ = finetune_setup.params_shardings(model, dummy, mesh, rules)
    params, step, _ = checkpoint.restore_params_subtree(workdir, "", abstract, step)
    return model, params, tokenizer, step


def _until_eos(ids: np.ndarray) -> list[int]:
    ids = ids.tolist()
    return ids[:ids.index(features.EOS_ID)] if features.EOS_ID in ids else ids


def continue_prompts(model, params, tokenizer: Tokenizer, prompts: list[str], *,
                     method: str = "greedy", max_new_tokens: int = 40, temperature: float = 1.0,
                     top_k: int = 0, top_p: float = 1.0, beam_width: int = 4,
                     length_penalty: float = 0.6, seed: int = 0) -> list[str]:
    """The continuation of every prompt (one batch, left-padded), up to </s>.

    Raises:
      ValueError: an unknown method, an empty prompt, or prompt + new tokens longer than the
        model's position table.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r}; use one of {METHODS}")
    ids = tokenizer.encode(prompts)
    longest, limit = max(len(x) for x in ids), model.config.max_length
    if longest + max_new_tokens > limit:
        raise ValueError(f"the longest prompt has {longest} tokens; with max_new_tokens="
                         f"{max_new_tokens} that exceeds the model's {limit} positions. Use "
                         f"--max_new_tokens={max(1, limit - longest)} or a shorter prompt")
    prompt_BP = generation.left_pad(ids, features.PAD_ID)
    kw = dict(max_new_tokens=max_new_tokens, eos_id=features.EOS_ID, pad_id=features.PAD_ID)
    if method == "beam":
        beams, _ = generation.beam_search(model, params, prompt_BP, length_penalty,
                                          beam_width=beam_width, **kw)
        out = np.asarray(beams[:, 0])
    else:
        out = np.asarray(generation.generate(
            model, params, prompt_BP, jax.random.key(seed), temperature,
            greedy=method == "greedy", top_k=top_k, top_p=top_p, **kw))
    return [tokenizer.decode(_until_eos(row)) for row in out]


def generate_from_workdir(workdir: str, prompts: list[str], *, step: int = -1, **kw) -> list[str]:
    """Restores ``workdir``'s checkpoint, prints and returns each prompt's continuation."""
    model, params, tokenizer, step = load_model(workdir, step)
    texts = continue_prompts(model, params, tokenizer, prompts, **kw)
    for prompt, text in zip(prompts, texts, strict=True):
        print(f"[step {step}, {kw.get('method', 'greedy')}] {prompt} → {text}", flush=True)
    return texts
