"""Text generation from a GPT workdir (pretrained here, or a GPT-2 converted by launch.convert):
restore its parameters, decode prompts with the workdir's tokenizer and its special ids."""

from __future__ import annotations

import jax
import ml_collections
import numpy as np

from data import tokenizer as tokenizer_lib
from launch.finetuning import setup as finetune_setup
from launch.train import checkpoint, modeling
from launch.train import mesh as mesh_lib
from launch.train import workdir as workdir_lib
from lm import generation, models

METHODS = ("greedy", "sample", "beam")


def load_model(workdir: str, step: int = -1):
    """``(model, params, tokenizer, step)`` of a causal-LM pretraining workdir's checkpoint.

    Raises:
      ValueError: the workdir is not a causal-LM (GPT) run.
      FileNotFoundError: it has no config.json or no checkpoint (at ``step``).
    """
    cfg = ml_collections.ConfigDict(workdir_lib.read_config(workdir))
    if not modeling.is_causal_lm(cfg):
        raise ValueError(f"{workdir} was trained with objectives={cfg.get('objectives')}; "
                         "generation needs a causal-LM (GPT) pretraining workdir, e.g. one of "
                         "launch/configs/gpt.py")
    tokenizer = tokenizer_lib.load(cfg.data.tokenizer)
    special = tokenizer.special_ids
    if special.eos is None or special.pad is None:
        raise ValueError(f"the tokenizer {tokenizer.name} has no end-of-text or padding token; "
                         "generation needs both (to stop, and to left-pad a batch of prompts): "
                         "use a GPT workdir whose tokenizer has one (GPT-2's <|endoftext|>)")
    model_cfg = modeling.model_config(cfg, tokenizer.vocab_size, special)
    if model_cfg.vocab_size < tokenizer.vocab_size:
        raise ValueError(f"the tokenizer {tokenizer.name} has {tokenizer.vocab_size} ids but the "
                         f"model of {workdir} has {model_cfg.vocab_size}; data.tokenizer in its "
                         "config.json must name the tokenizer saved with the checkpoint")
    model = models.make_model(cfg.model.arch, model_cfg)
    mesh = mesh_lib.make_mesh(cfg.mesh)
    rules = mesh_lib.rules_from_config(cfg.logical_axis_rules)
    dummy = {"token_ids": np.zeros((1, 8), np.int32)}
    abstract, _ = finetune_setup.params_shardings(model, dummy, mesh, rules)
    params, step, _ = checkpoint.restore_params_subtree(workdir, "", abstract, step,
                                                     step_flag="--step")
    return model, params, tokenizer, step


def _until_eos(ids: np.ndarray, eos_id: int) -> list[int]:
    ids = ids.tolist()
    return ids[:ids.index(eos_id)] if eos_id in ids else ids


def continue_prompts(model, params, tokenizer, prompts: list[str], *,
                     method: str = "greedy", max_new_tokens: int = 40, temperature: float = 1.0,
                     top_k: int = 0, top_p: float = 1.0, beam_width: int = 4,
                     length_penalty: float = 0.6, seed: int = 0) -> list[str]:
    """The continuation of every prompt (one batch, left-padded), up to the tokenizer's eos
    (</s>; GPT-2's <|endoftext|>).

    ``tokenizer`` is a ``data.tokenizer.Tokenizer`` or ``data.hf_tokenizers.HfTokenizer``; its
    ``special_ids`` give the padding and end ids. Padding is never attended to, so a pad id that
    is also GPT-2's eos is fine.

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
    special = tokenizer.special_ids
    prompt_BP = generation.left_pad(ids, special.pad)
    kw = dict(max_new_tokens=max_new_tokens, eos_id=special.eos, pad_id=special.pad)
    if method == "beam":
        beams, _ = generation.beam_search(model, params, prompt_BP, length_penalty,
                                          beam_width=beam_width, **kw)
        out = np.asarray(beams[:, 0])
    else:
        out = np.asarray(generation.generate(
            model, params, prompt_BP, jax.random.key(seed), temperature,
            greedy=method == "greedy", top_k=top_k, top_p=top_p, **kw))
    return [tokenizer.decode(_until_eos(row, special.eos)) for row in out]


def generate_from_workdir(workdir: str, prompts: list[str], *, step: int = -1, **kw) -> list[str]:
    """Restores ``workdir``'s checkpoint, prints and returns each prompt's continuation."""
    model, params, tokenizer, step = load_model(workdir, step)
    texts = continue_prompts(model, params, tokenizer, prompts, **kw)
    for prompt, text in zip(prompts, texts, strict=True):
        print(f"[step {step}, {kw.get('method', 'greedy')}] {prompt} → {text}", flush=True)
    return texts
