"""launch.generate's options: nonsense is refused before anything is decoded, in one line that
names the flag and the values it takes; a prompt too long for the model gets a suggestion that
fits (or is told it is too long by itself)."""

import os
import re
import subprocess
import sys

import pytest

from launch.generation import run as generating
from tests.launch.test_gpt_e2e import REPO

ENV = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"}


@pytest.mark.parametrize("options,flag", [
    (dict(method="sample", temperature=0.0), "--temperature=0.0: sampling needs a temperature > 0"),
    (dict(method="sample", temperature=-1.0), "--temperature=-1.0"),
    (dict(method="sample", temperature=float("nan")), "--temperature=nan"),
    (dict(method="sample", temperature=1e-39), "--temperature=1e-39"),  # 0 in float32's normals
    (dict(method="sample", temperature=float("inf")), "--temperature=inf"),
    (dict(top_p=0.0), "--top_p=0.0: give 0 < top_p <= 1"),
    (dict(top_p=-0.5), "--top_p=-0.5"),
    (dict(top_p=1.5), "--top_p=1.5"),
    (dict(top_p=float("nan")), "--top_p=nan"),
    (dict(top_k=-1), "--top_k=-1: give 0 (no top-k filter) or"),
    (dict(method="beam", beam_width=0), "--beam_width=0: give at least 1"),
    (dict(beam_width=-2), "--beam_width=-2"),
    (dict(max_new_tokens=0), "--max_new_tokens=0: give at least 1"),
    (dict(max_new_tokens=-3), "--max_new_tokens=-3"),
    (dict(method="beam", length_penalty=float("nan")), "--length_penalty=nan: give a finite"),
    (dict(length_penalty=float("-inf")), "--length_penalty=-inf"),
    (dict(seed=-1), "--seed=-1: give 0 to 4294967295"),
    (dict(seed=2 ** 32), "--seed=4294967296"),
    (dict(method="topk"), "--method='topk': use one of greedy, sample, beam"),
])
def test_an_option_out_of_range_is_named_with_its_range(options, flag):
    with pytest.raises(ValueError) as refused:
        generating.check_options(**options)
    message = str(refused.value)
    assert message.startswith(flag) and "\n" not in message


def test_the_defaults_pass_and_only_sampling_needs_a_temperature():
    generating.check_options()
    for method in ("greedy", "beam"):
        generating.check_options(method, temperature=0.0)
        generating.check_options(method, temperature=float("nan"))
    generating.check_options("sample", temperature=1e-30, top_p=1e-9, top_k=1, seed=2 ** 32 - 1)


def test_options_are_refused_before_the_checkpoint_is_read(tmp_path):
    # An empty directory: reading it would fail differently (no config.json).
    with pytest.raises(ValueError, match="^--top_p=0"):
        generating.generate_from_workdir(str(tmp_path), ["x"], top_p=0.0)


def test_a_too_long_prompt_gets_a_max_new_tokens_that_fits(gpt_run):
    run_dir, _ = gpt_run
    with pytest.raises(ValueError, match="positions") as refused:
        generating.generate_from_workdir(run_dir, ["The sea was", "I"], max_new_tokens=40)
    fits = int(re.search(r"Use --max_new_tokens=(\d+) ", str(refused.value)).group(1))
    texts = generating.generate_from_workdir(run_dir, ["The sea was", "I"],
                                             max_new_tokens=fits)
    assert len(texts) == 2
    with pytest.raises(ValueError, match="positions"):
        generating.generate_from_workdir(run_dir, ["The sea was"], max_new_tokens=fits + 1)


def test_a_prompt_that_fills_the_model_alone_is_said_to_be_too_long(gpt_run):
    with pytest.raises(ValueError) as refused:
        generating.generate_from_workdir(gpt_run[0], ["The sea was " * 20], max_new_tokens=1)
    message = str(refused.value)
    assert "the prompt alone fills the model's 32 positions" in message
    assert "shorten it to at most 31 tokens" in message and "--max_new_tokens=" not in message


@pytest.mark.parametrize("prompts,problem", [
    ([" "], "--prompt #1 (' ') has no tokens"),
    (["The sea", "\n"], "--prompt #2 ('\\n') has no tokens"),
    (["ok", "bad \udcff bytes"], "--prompt #2 ('bad \\udcff bytes') is not valid text"),
])
def test_prompts_without_tokens_or_text_are_named(gpt_run, prompts, problem):
    with pytest.raises(ValueError) as refused:
        generating.generate_from_workdir(gpt_run[0], prompts, max_new_tokens=2)
    assert str(refused.value).startswith(problem)


@pytest.mark.parametrize("options,problem", [
    (dict(method="sample", top_k=10 ** 6), "--top_k=1000000: the model has 8192 tokens"),
    (dict(method="beam", beam_width=10 ** 6), "--beam_width=1000000: the model has 8192"),
])
def test_more_top_k_tokens_or_beams_than_the_vocabulary_are_refused(gpt_run, options, problem):
    with pytest.raises(ValueError) as refused:
        generating.generate_from_workdir(gpt_run[0], ["The sea"], max_new_tokens=2, **options)
    assert str(refused.value).startswith(problem)


def test_sampling_at_temperature_zero_is_refused_by_the_binary(gpt_run):
    # Once returned empty text with exit status 0 (every logit became +-inf).
    out = subprocess.run([sys.executable, "-m", "launch.generate", f"--workdir={gpt_run[0]}",
                          "--prompt=The sea was", "--method=sample", "--temperature=0",
                          "--max_new_tokens=3"], cwd=REPO, env=ENV, capture_output=True,
                         text=True, timeout=900)
    assert out.returncode == 1, out.stderr[-3000:]
    assert out.stderr.splitlines()[-1].startswith(
        "error: --temperature=0.0: sampling needs a temperature > 0")
    assert "Traceback" not in out.stderr and out.stdout == ""
