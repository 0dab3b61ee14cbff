"""Text generation from a GPT workdir (pretrained here, or a GPT-2 converted by launch.convert):
restore its parameters, decode prompts with the workdir's tokenizer and its special ids."""

from __future__ import annotations

import math

import jax
import ml_collections
import numpy as np

from data import tokenizer as tokenizer_lib
from launch.finetuning import setup as finetune_setup
from launch.generation.seq2seq import until_eos
from launch.train import checkpoint, modeling
from launch.train import mesh as mesh_lib
from launch.train import workdir as workdir_lib
from lm import generation, models

METHODS = ("greedy", "sample", "beam")
_F32 = np.finfo(np.float32)  # sampling divides float32 logits by the temperature


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


def check_options(method: str = "greedy", *, max_new_tokens: int = 40, temperature: float = 1.0,
                  top_k: int = 0, top_p: float = 1.0, beam_width: int = 4,
                  length_penalty: float = 0.6, seed: int = 0) -> None:
    """Refuses decoding options that cannot work, before any model is loaded; each message
    names the flag and the values it takes. ``temperature`` matters only to sampling.

    Raises:
      ValueError: an option out of its range.
    """
    problems = [
        (method in METHODS, f"--method={method!r}: use one of {', '.join(METHODS)}"),
        (max_new_tokens >= 1, f"--max_new_tokens={max_new_tokens}: give at least 1 (the "
                              "tokens to add to each prompt)"),
        (method != "sample" or _F32.tiny <= temperature <= _F32.max,
         f"--temperature={temperature}: sampling needs a temperature > 0 (a float32: "
         f"{_F32.tiny:.2g} to {_F32.max:.2g}; 1 = the model's own distribution); for the "
         "likeliest token at every step use --method=greedy"),
        (0 < top_p <= 1, f"--top_p={top_p}: give 0 < top_p <= 1 (the probability mass to sample "
                         "from; 1 = no nucleus filter)"),
        (top_k >= 0, f"--top_k={top_k}: give 0 (no top-k filter) or the number of likeliest "
                     "tokens to sample from (>= 1)"),
        (beam_width >= 1, f"--beam_width={beam_width}: give at least 1 beam"),
        (math.isfinite(length_penalty), f"--length_penalty={length_penalty}: give a finite "
                                        "number (GNMT's alpha: 0 = none, 0.6 is usual)"),
        (0 <= seed < 2 ** 32, f"--seed={seed}: give 0 to {2 ** 32 - 1} (JAX's seeds are 32-bit)"),
    ]
    for ok, problem in problems:
        if not ok:
            raise ValueError(problem)


def _check_fits(tokenizer, prompts: list[str], ids: list[list[int]], max_new_tokens: int,
                max_length: int, vocab_size: int, *, top_k: int, beam_width: int) -> None:
    """Refuses prompts and options the model cannot take: an empty prompt, more new tokens than
    its positions leave, more top-k tokens or beams than its vocabulary has."""
    for i, (prompt, tokens) in enumerate(zip(prompts, ids, strict=True)):
        if not tokens:
            raise ValueError(f"--prompt #{i + 1} ({prompt!r}) has no tokens for "
                             f"{tokenizer.name}; give it some text")
    longest = max(len(x) for x in ids)
    if longest >= max_length:
        raise ValueError(f"the longest prompt has {longest} tokens: the prompt alone fills the "
                         f"model's {max_length} positions, leaving none for new tokens; shorten "
                         f"it to at most {max_length - 1} tokens")
    if longest + max_new_tokens > max_length:
        raise ValueError(f"the longest prompt has {longest} tokens; with max_new_tokens="
                         f"{max_new_tokens} that exceeds the model's {max_length} positions. Use "
                         f"--max_new_tokens={max_length - longest} or a shorter prompt")
    if top_k > vocab_size or beam_width > vocab_size:
        flag, value = ("--top_k", top_k) if top_k > vocab_size else ("--beam_width", beam_width)
        raise ValueError(f"{flag}={value}: the model has {vocab_size} tokens; give at most that")


def _encode(tokenizer, prompts: list[str]) -> list[list[int]]:
    for i, prompt in enumerate(prompts):
        try:
            prompt.encode("utf-8")
        except UnicodeEncodeError as e:  # e.g. undecodable bytes on the command line
            raise ValueError(f"--prompt #{i + 1} ({prompt!r}) is not valid text ({e.reason} at "
                             f"character {e.start}); give UTF-8 text") from e
    return tokenizer.encode(prompts)


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
      ValueError: an option out of its range (``check_options``), an empty prompt, prompt + new
        tokens longer than the model's position table, or more top-k tokens or beams than the
        vocabulary has.
    """
    options = dict(max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k,
                   top_p=top_p, beam_width=beam_width, length_penalty=length_penalty, seed=seed)
    check_options(method, **options)
    ids = _encode(tokenizer, prompts)
    _check_fits(tokenizer, prompts, ids, max_new_tokens, model.config.max_length,
                model.config.vocab_size, top_k=top_k, beam_width=beam_width)
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
    return [tokenizer.decode(until_eos(row, special.eos)) for row in out]


def generate_from_workdir(workdir: str, prompts: list[str], *, step: int = -1, **kw) -> list[str]:
    """Restores ``workdir``'s checkpoint, prints and returns each prompt's continuation.

    The options are checked (``check_options``) before the checkpoint is read. A seq2seq
    workdir (T5, or GPT fine-tuned on a seq2seq task) translates/summarises each prompt
    instead (``launch.generation.seq2seq_workdir``)."""
    check_options(**kw)
    from launch.generation import seq2seq_workdir
    if seq2seq_workdir.is_seq2seq_workdir(workdir):
        return seq2seq_workdir.generate_from_workdir(workdir, prompts, step=step, **kw)
    model, params, tokenizer, step = load_model(workdir, step)
    texts = continue_prompts(model, params, tokenizer, prompts, **kw)
    for prompt, text in zip(prompts, texts, strict=True):
        print(f"[step {step}, {kw.get('method', 'greedy')}] {prompt} → {text}", flush=True)
    return texts
