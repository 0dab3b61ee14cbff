"""Property-based fuzz of launch.submit's flags, in this process, for every target.

Each example starts from a valid submission (every flag of launch/submit.py set to a value its
target accepts, including free text full of quotes, ``$(…)``, backticks, ``;``, ``&&``, ``|``,
``EOF``, spaces and Unicode) and corrupts up to two flags, or the training command, with any
text or any nasty string. The property: the submission is either refused with one line that
names a corrupted flag (never when nothing was corrupted; never another exception), or its dry
run, run in bash with recording stand-ins, does exactly what the flags say (``submit_harness``):
nothing added a command, a word, an ``#SBATCH`` line or a YAML key.
"""

import operator
import tempfile

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from tests.launch import submit_harness as h

NASTY = ["", " ", "a b", "\n", "x\nid", "x\n#SBATCH --wrap=id", "'", '"', "$(id)", "`id`",
         ";id", "a&&id", "a|id", "EOF", "x\nEOF\nid", "ü", "名前", "\u2028", "\x00", "\t", "-x",
         "--help", "~", "*", "$HOME", "\\", "#", "---", "{a: b}", "a: b", "- a", "\x1b[31m",
         "\r", "%x", "..", "x.whl", "gs://b/$(id).whl", "--upload-pack=id", "ext::sh -c id"]
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=10)
_STR = st.one_of(st.sampled_from(NASTY), _TEXT, st.builds(operator.add, _TEXT,
                                                          st.sampled_from(NASTY)))
_FREE = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=10)

_SOURCE = st.one_of(
    st.fixed_dictionaries({
        "repo": st.sampled_from(["https://example.com/pretrax.git", "git@github.com:o/p.git",
                                 "ssh://git@h:22/~u/p.git", "file:///srv/p%20x.git"]),
        "ref": st.sampled_from(["", "v1", "main", "feature/x+1", "a1b2c3d"]),
        "wheel": st.just("")}),
    st.fixed_dictionaries({
        "repo": st.just(""), "ref": st.just(""),
        "wheel": st.sampled_from(["gs://b/pretrax-0.1.0-py3-none-any.whl", "dist/x_1.whl",
                                  "/opt/w/pretrax-0.1.0+cpu-py3-none-any.whl", "./a/../b.whl"])}))
_HOSTS = st.one_of(
    st.fixed_dictionaries({
        "tpu_type": st.sampled_from(["tpu-v5-lite-podslice", "tpu-v5p-slice"]),
        "tpu_topology": st.sampled_from(["4x4", "2x2x4", "2x2"]),
        "chips_per_host": st.sampled_from([1, 2, 4]), "gpu_type": st.just("")}),
    st.fixed_dictionaries({
        "tpu_type": st.just(""), "tpu_topology": st.sampled_from(["", "4x4"]),
        "chips_per_host": st.integers(-1, 4), "gpu_type": st.sampled_from(["g", "nvidia-h100"])}))
_ONE = st.fixed_dictionaries({
    "name": st.sampled_from(["pod", "job-1", "a1"]),
    "zone": st.sampled_from(["us-west4-a", "z"]),
    "project": st.sampled_from(["", "my-project", "example.com:proj-1"]),
    "accelerator_type": st.sampled_from(["v5litepod-16", "v4-8"]),
    "version": st.sampled_from(["v2-alpha-tpuv5-lite", "tpu-ubuntu2204-base"]),
    "create": st.booleans(), "spot": st.booleans(),
    "jax_extra": st.sampled_from(["", "tpu", "cuda12"]),
    "python": st.sampled_from(["python3", "/opt/venv/bin/python3.11", "py+x-1"]),
    "gpus_per_node": st.integers(1, 8), "num_nodes": st.integers(1, 3),
    "image": st.sampled_from(["python:3.11", "localhost:5000/a/b@sha256:00"]),
    "nodes": st.integers(1, 3), "process_per": st.sampled_from(["gpu", "node"]),
    "time": st.sampled_from(["24:00:00", "2-00:00:00", "30"]),
    "partition": st.sampled_from(["", "a100", "a100,h100"]),
    "account": st.sampled_from(["", "acct_1.x"]),
    "requeue": st.booleans(), "signal_seconds": st.sampled_from([0, 1, 120, 65535]),
    "out_dir": st.sampled_from(["workdirs/submit", h.NASTY_DIR, "", "-x", "."]),
    "num_processes": st.integers(1, 3), "devices_per_process": st.integers(1, 4),
    "port": st.sampled_from([0, 4321])})
VALID = st.builds(lambda *ds: {k: v for d in ds for k, v in d.items()}, _ONE, _SOURCE, _HOSTS)
_ARGV = st.lists(st.one_of(st.sampled_from(h.NASTY_ARGS), _FREE), max_size=3).map(
    lambda extra: ["launch.pretrain", "--config=launch/configs/bert.py:base",
                   "--workdir=gs://b/run", *extra])

_SMALL = st.one_of(st.integers(-2, 9), st.sampled_from([-(2 ** 31), 2 ** 40]))
_BAD = {"create": st.booleans(), "spot": st.booleans(), "requeue": st.booleans(),
        "port": st.sampled_from([-1, 0, 1, 65535, 65536, 2 ** 40]),
        "num_processes": st.integers(-2, 9), "gpus_per_node": st.integers(-2, 9),
        # never outside the test's directory
        "out_dir": _STR.map(lambda v: v.lstrip("/").replace("..", "_."))}
_BAD_ARGV = st.one_of(
    st.just([]), st.tuples(_STR).map(list),
    st.builds(lambda m, a: [m, *a[1:]], _STR, _ARGV),
    st.builds(lambda a, x: [*a, x], _ARGV, _STR),
    st.builds(lambda a, w: [*a[:2], "--workdir=" + w], _ARGV, _STR),
    st.builds(lambda a, w: [*a[:2], "--workdir=gs://b/" + w], _ARGV, _STR))
FUZZED = sorted(set(h.submit_flags()) - {"target", "dry_run"})
TARGETS = h.flag_targets()


@settings(derandomize=True, database=None, max_examples=5)
@given(VALID)
def test_every_flag_is_fuzzed(values):
    assert set(values) == set(FUZZED)
    assert all(TARGETS[flag] for flag in FUZZED)  # each says which targets read it


def _bad(flag: str, default):
    if flag in _BAD:
        return _BAD[flag]
    return _SMALL if isinstance(default, int) and not isinstance(default, bool) else _STR


@pytest.mark.parametrize("target", list(h.CHECKS))
@settings(derandomize=True, database=None, deadline=None, max_examples=30,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_a_submission_is_refused_in_one_line_or_does_exactly_what_its_flags_say(target, data):
    values, argv = data.draw(VALID), data.draw(_ARGV)
    defaults = h.submit_flags()
    # Mostly flags the target reads (the others must not matter either).
    own = [flag for flag in FUZZED if target in TARGETS[flag]] + ["argv"]
    bad = data.draw(st.one_of(st.sets(st.sampled_from(own), min_size=1, max_size=2),
                              st.sets(st.sampled_from([*FUZZED, "argv"]), max_size=2)))
    for flag in bad:
        if flag == "argv":
            argv = data.draw(_BAD_ARGV)
        else:
            values[flag] = data.draw(_bad(flag, defaults[flag]))
    outcome = _outcome(target, argv, values, sorted(bad))
    assume(outcome != "skipped")
    event(f"{outcome}, {len(bad)} corrupted")


def _outcome(target: str, argv: list[str], values: dict, bad: list[str]) -> str:
    """The property of the fuzz for one submission: "refused" or "ran"."""
    f = h.flags(**values)
    try:
        text = h.dry_run(target, argv, f)
    except ValueError as e:
        message = str(e)
        assert bad, message  # a valid submission is never refused
        assert message and "\n" not in message
        markers = [m for flag in bad for m in
                   (("training command", "--workdir") if flag == "argv" else (f"--{flag}",))]
        assert any(m in message for m in markers), (bad, message)
        return "refused"
    if f.python in h.RESERVED:  # the recorder's own shell words
        return "skipped"
    with tempfile.TemporaryDirectory() as cwd:
        h.CHECKS[target](text, target, argv, f, h.pathlib.Path(cwd))
    return "ran"


@pytest.mark.parametrize("target", list(h.CHECKS))
def test_every_nasty_string_through_every_flag_the_target_reads(target):
    """Each of NASTY in turn as each string flag the target reads (and as a training command's
    argument), the rest valid."""
    base = {**h.submit_flags(), "name": "pod", "zone": "z", "repo": "https://x/p.git",
            "gpu_type": "g", "target": None}
    del base["target"], base["dry_run"]
    argv = ["launch.pretrain", "--workdir=gs://b/run"]
    seen = set()
    for flag in FUZZED:
        if target not in TARGETS[flag] or not isinstance(base[flag], str):
            continue
        for value in NASTY:
            if flag == "out_dir" and (value.startswith("/") or ".." in value):
                continue  # the dry run runs here: never outside the test's directory
            seen.add(_outcome(target, argv, {**base, flag: value}, [flag]))
    for value in NASTY:
        seen.add(_outcome(target, [*argv, value], base, ["argv"]))
    assert seen == {"ran", "refused"}
