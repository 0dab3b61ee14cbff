"""launch.generate, run in this process as its console script runs it (``binary.run``), on the
session's tiny GPT workdir: the cases that once returned empty text or a JAX traceback, and a
property-based fuzz of every flag. The property: no traceback escapes; the binary either prints
a continuation per prompt, or ends with one ``error: …`` line (or absl's own flag-parsing
error) and exit status 1."""

import contextlib
import io
import sys
import warnings

import pytest
from absl import flags, logging
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from launch import binary
from launch.train import errors


@pytest.fixture(scope="module")
def generate(gpt_run):
    """The launch.generate module; its flags are removed again afterwards, so other tests'
    binaries may define flags of the same names in this process."""
    verbosity, before = logging.get_verbosity(), set(flags.FLAGS)
    from launch import generate as module
    yield module
    errors.route_background_errors(None)
    flags.FLAGS.unparse_flags()
    for name in set(flags.FLAGS) - before:
        delattr(flags.FLAGS, name)
    sys.modules.pop("launch.generate", None)
    logging.set_verbosity(verbosity)


def run_binary(generate, argv: list[str]) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``launch.generate ARGV``; any exception but SystemExit
    propagates (a traceback escaped)."""
    flags.FLAGS.unparse_flags()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # restore's UserWarnings are not the binary's output
        try:
            binary.run(generate.main, argv=["launch.generate", *argv])
        except SystemExit as e:
            code = e.code
        else:
            raise AssertionError("binary.run returned instead of exiting")
    return (0 if code is None else code), out.getvalue(), err.getvalue()


@pytest.mark.parametrize("argv,message", [
    (["--method=sample", "--temperature=0"], "error: --temperature=0.0: sampling needs"),
    (["--method=sample", "--top_p=0"], "error: --top_p=0.0: give 0 < top_p <= 1"),
    (["--max_new_tokens=0"], "error: --max_new_tokens=0: give at least 1"),
    (["--max_new_tokens=-3"], "error: --max_new_tokens=-3: give at least 1"),
    (["--method=beam", "--beam_width=0"], "error: --beam_width=0: give at least 1 beam"),
    (["--max_new_tokens=40"], "error: the longest prompt has 3 tokens; with max_new_tokens=40 "
                              "that exceeds the model's 32 positions. Use --max_new_tokens=29 "),
])
def test_nonsense_options_end_in_one_line(generate, gpt_run, argv, message):
    code, out, err = run_binary(generate, [f"--workdir={gpt_run[0]}", "--prompt=The sea was",
                                           *argv])
    assert (code, out) == (1, "") and err.startswith(message) and err.count("\n") == 1, err


INTS = ["0", "-0", "1", "2", "-1", "-3", "8192", "8193", "4294967296", "99999999999999999999",
        "-99999999999999999999"]
FLOATS = ["0.0", "0.5", "1e-40", "1e-320", "1e308", "1e400", "-1e308", "nan", "-nan", "inf",
          "-inf", "1.0", "0x10", " 1", "1_000"]
NASTY = ["", " ", "\n", "a\nb", "'", '"', "\\", "名前", "ü", "\u2028", "\x00", "\t", "$(id)",
         "--help", "-", "%s", "\x1b[31m", "\r", "🙂"]
_TEXT = st.text(max_size=8)
_ANY = st.one_of(st.sampled_from(INTS), st.sampled_from(FLOATS), st.sampled_from(NASTY), _TEXT)


# Values each flag accepts (the binary decodes with them), from which a few are corrupted.
VALID = {
    "method": ["greedy", "sample", "beam"],
    "temperature": ["0.7", "1", "2.5"],
    "top_k": ["0", "5", "40"],
    "top_p": ["0.9", "1", "0.3"],
    "beam_width": ["1", "2"],
    "length_penalty": ["0.6", "0", "1"],
    "max_new_tokens": ["1", "2", "3"],
    "seed": ["0", "7"],
    "step": ["-1", "3"],
    "workdir": ["GPT"],  # the session's workdir
    "prompt": ["The sea was", "I"],
}


def _line_breaking(value: str) -> bool:
    return len((value + "x").splitlines()) > 1


@settings(derandomize=True, database=None, deadline=None, max_examples=30,
          phases=[Phase.explicit, Phase.generate, Phase.shrink],
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_flag_fuzzed_ends_in_a_continuation_or_one_line(generate, gpt_run, tmp_path,
                                                              data):
    values = {name: data.draw(st.sampled_from(valid)) for name, valid in VALID.items()}
    values["workdir"] = gpt_run[0]
    for name in data.draw(st.sets(st.sampled_from(sorted(VALID)), min_size=1, max_size=2),
                           label="bad"):
        values[name] = data.draw(_ANY, label=name)
        if name == "workdir":  # never an existing directory (error.log could be written there)
            values[name] = str(tmp_path / "missing") + values[name]
    prompts = [values.pop("prompt")] + data.draw(st.lists(_ANY, max_size=1), label="prompts")
    argv = [*[f"--prompt={p}" for p in prompts],
            *[f"--{name}={value}" for name, value in values.items()]]
    code, out, err = run_binary(generate, argv)
    assert "Traceback" not in err and code != errors.EXIT_INTERRUPTED, err
    if code == 0:
        assert out.startswith("[step ") and out.count("] ") >= len(prompts), out
        event("decoded")
        return
    assert code == 1 and out == "" and err.endswith("\n"), (code, out, err)
    if err.startswith("FATAL Flags parsing error:"):  # absl's, as for any absl binary
        assert "Pass --helpshort or --helpfull to see help on flags." in err, err
        event("absl refused a flag")
        return
    # The user's own values may break the line they are quoted in, nothing else does.
    text = err[:-1]
    for value in sorted({*prompts, *values.values()}, key=len, reverse=True):
        if _line_breaking(value) and value.strip():
            text = text.replace(value, "VALUE")
    assert text.startswith("error: ") and len(text.splitlines()) == 1, err
    event("refused")
