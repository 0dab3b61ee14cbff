"""Every binary ends on any exception with one line (what failed, where, what to do) and an exit
status, never a traceback: a workdir that is a file or read-only, an exception no library
explained (its traceback kept in WORKDIR/error.log, or shown with --verbose), Ctrl-C."""

import errno
import json
import os
import subprocess
import sys
import textwrap

import pytest

from launch import binary
from launch.generation import run as generating
from launch.train import errors, stopping
from tests.launch.test_pretrain_e2e import REPO, tiny_overrides

ENV = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"}  # one device, like a user

# The workdir is read-only, at the library level: every directory made and every file opened
# for writing under it fails as a read-only mount's would (EROFS). chmod cannot do this here:
# the tests run as root, whom permissions do not stop.
_READ_ONLY = """
import builtins, errno, io, os, sys
READ_ONLY = os.path.abspath({workdir!r})
def _refused(path):
    path = os.path.abspath(os.fsdecode(path))
    if path == READ_ONLY or path.startswith(READ_ONLY + os.sep):
        raise PermissionError(errno.EROFS, os.strerror(errno.EROFS), path)
def _guard(fn, writes):
    def guarded(path, *args, **kwargs):
        mode = args[0] if args else kwargs.get("mode", "r")
        if isinstance(path, (str, bytes, os.PathLike)) and writes(mode):
            _refused(path)
        return fn(path, *args, **kwargs)
    return guarded
os.makedirs = _guard(os.makedirs, lambda mode: True)
os.mkdir = _guard(os.mkdir, lambda mode: True)
builtins.open = io.open = _guard(builtins.open, lambda mode: any(c in str(mode) for c in "wax+"))
"""

# The generation library fails in a way nothing explains (a stand-in for a bug).
_FAIL_IN_LOAD = """
from launch.generation import run
def load_model(workdir, step=-1):
    raise {error}
run.load_model = load_model
"""

_BINARY = """
import sys
sys.argv = [{module!r}, *{argv!r}]
from launch import {name}
{name}.run()
"""


def _run(module: str, argv: list[str], prelude: str = "") -> subprocess.CompletedProcess:
    code = textwrap.dedent(prelude) + _BINARY.format(module=module, argv=argv,
                                                     name=module.split(".")[-1])
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=900)


def _pretrain_argv(workdir: str, corpus: str) -> list[str]:
    overrides = {**tiny_overrides(corpus), "train.steps": 2}
    return ["--config=launch/configs/bert.py:tiny", f"--workdir={workdir}",
            *[f"--config.{k}={v}" for k, v in overrides.items()]]


def _last_line(out: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    return out.stderr.splitlines()[-1]


def test_a_workdir_that_is_a_file_is_named_in_one_line(tmp_path, fixture_corpus):
    workdir = tmp_path / "notes.txt"
    workdir.write_text("not a directory")
    out = _run("launch.pretrain", _pretrain_argv(str(workdir), fixture_corpus))
    assert out.returncode == 1, out.stderr[-3000:]
    line = _last_line(out)
    # The workdir lock is the first thing that touches the workdir.
    assert line.startswith(f"error: Not a directory: '{workdir}' "
                           "(NotADirectoryError at launch/train/"), line
    assert ("part of that path is a file, not a directory: give --workdir a directory" in line
            and line.endswith("run the same command with --verbose for the traceback")), line
    assert workdir.read_text() == "not a directory"


def test_a_read_only_workdir_is_named_in_one_line(tmp_path, fixture_corpus):
    workdir = tmp_path / "mounted"
    workdir.mkdir()
    out = _run("launch.pretrain", _pretrain_argv(str(workdir), fixture_corpus),
               _READ_ONLY.format(workdir=str(workdir)))
    assert out.returncode == 1, out.stderr[-3000:]
    line = _last_line(out)
    assert line.startswith(f"error: Read-only file system: '{workdir}{os.sep}"), line
    assert "(PermissionError at launch/" in line and "give a --workdir it can write to" in line
    # Nothing could be written there, the traceback included: the line says how to see it.
    assert line.endswith("run the same command with --verbose for the traceback"), line
    assert os.listdir(workdir) == []


@pytest.mark.parametrize("verbose", [False, True])
def test_an_unexplained_exception_keeps_its_traceback_in_the_workdir(tmp_path, verbose):
    out = _run("launch.generate", [f"--workdir={tmp_path}", "--prompt=The sea",
                                   *(["--verbose"] if verbose else [])],
               _FAIL_IN_LOAD.format(error='RuntimeError("the device fell over\\nsecond line")'))
    assert out.returncode == 1, out.stderr[-3000:]
    log = tmp_path / errors.ERROR_LOG
    line = out.stderr.splitlines()[-1]
    assert line == (
        "error: the device fell over (RuntimeError at launch/generation/run.py:"
        f"{_line_of('launch/generation/run.py', 'model, params, tokenizer, step = load_model')} "
        "in generate_from_workdir); not something your input can fix as far as pretrax knows: "
        f"please report it, with the traceback; the traceback is in {log}")
    assert ("Traceback (most recent call last)" in out.stderr) == verbose
    text = log.read_text()
    assert text.startswith("=== ") and "launch.generate --workdir=" in text.splitlines()[0]
    assert "Traceback (most recent call last)" in text
    assert "RuntimeError: the device fell over\nsecond line" in text


def test_ctrl_c_ends_in_one_line_with_status_130(tmp_path):
    out = _run("launch.generate", [f"--workdir={tmp_path}", "--prompt=The sea"],
               _FAIL_IN_LOAD.format(error="KeyboardInterrupt"))
    assert out.returncode == errors.EXIT_INTERRUPTED == 130, out.stderr[-3000:]
    assert _last_line(out) == (
        "interrupted (Ctrl-C): stopped without saving; run the same command again to start "
        "over (a training run resumes from its latest checkpoint)")
    assert not (tmp_path / errors.ERROR_LOG).exists()


def _line_of(path: str, text: str) -> int:
    with open(os.path.join(REPO, path)) as f:
        return next(i for i, line in enumerate(f, 1) if text in line)


def _raised(fn, *args):
    try:
        fn(*args)
    except BaseException as e:  # noqa: BLE001 - the exception, with its traceback
        return e
    raise AssertionError("nothing raised")


@pytest.mark.parametrize("error,status,prefix", [
    (stopping.SaveFailed(4, "[Errno 28] No space left on device", 2, "/w/checkpoints"), 74,
     "error: saving the checkpoint at step 4 in /w/checkpoints failed: [Errno 28]"),
    (stopping.Diverged(9, 3, 20, 2, "/w/checkpoints"), 65, "error: training stopped at step 9"),
    (stopping.Preempted(5, "/w/checkpoints"), 75, "preempted at step 5"),
    (KeyboardInterrupt(), 130, "interrupted (Ctrl-C)"),
])
def test_the_special_exit_statuses_stay(tmp_path, error, status, prefix):
    message, got = errors.explain(error, str(tmp_path))
    assert got == status and message.startswith(prefix) and "\n" not in message
    assert os.listdir(tmp_path) == []  # these are no bugs: no traceback is kept


def test_pretrax_refusals_keep_their_words_and_write_nothing(tmp_path):
    refused = _raised(lambda: generating.check_options("sample", temperature=0.0))
    assert errors.explain(refused, str(tmp_path)) == (f"error: {refused}", 1)
    missing = _raised(generating.load_model, str(tmp_path / "nowhere"))
    assert isinstance(missing, FileNotFoundError)
    assert errors.explain(missing, str(tmp_path)) == (f"error: {missing}", 1)
    assert os.listdir(tmp_path) == []


def test_a_library_value_error_is_described_with_where_and_its_traceback(tmp_path):
    broken = _raised(json.loads, "{")  # raised inside json, not by pretrax
    message, status = errors.explain(broken, str(tmp_path))
    assert status == 1 and message.startswith("error: Expecting property name enclosed in "
                                              "double quotes: line 1 column 2 (char 1) "
                                              "(JSONDecodeError); not something your input")
    assert message.endswith(f"the traceback is in {tmp_path / errors.ERROR_LOG}")
    assert "json.decoder.JSONDecodeError" in (tmp_path / errors.ERROR_LOG).read_text()


@pytest.mark.parametrize("code,advice", [
    (errno.EROFS, "this process may not write there: give a --workdir it can write to"),
    (errno.EACCES, "this process may not write there"),
    (errno.ENOSPC, "free disk space (or raise the quota)"),
    (errno.EIO, "check that path and the disk or bucket it is on"),
])
def test_os_errors_name_the_path_and_the_fix(tmp_path, code, advice):
    path = str(tmp_path / "a\nb")  # quoted, so even this name stays on one line

    def write():
        raise OSError(code, os.strerror(code), path)
    message, status = errors.explain(_raised(write), None)
    assert status == 1 and "\n" not in message
    kind = "PermissionError" if code == errno.EACCES else "OSError"  # as Python makes them
    assert message.startswith(f"error: {os.strerror(code)}: {path!r} ({kind}); ")
    assert advice in message and message.endswith("with --verbose for the traceback")


def test_an_os_error_code_quoted_by_tensorstore_gets_its_advice():
    def save():
        raise ValueError("OUT_OF_RANGE: Error writing \"step/0\": Failed writing: No space "
                         "left on device [os_error_code='28'] [tensorstore_spec='{}']")
    message, _ = errors.explain(_raised(save), None)
    assert message.startswith("error: OUT_OF_RANGE: Error writing \"step/0\"")
    assert "(ValueError); free disk space (or raise the quota)" in message


def test_the_error_log_is_written_only_to_a_local_directory(tmp_path):
    a_file = tmp_path / "f"
    a_file.write_text("")
    for workdir in (None, "", str(a_file), str(tmp_path / "missing"), "gs://bucket/run"):
        assert errors.write_error_log(workdir, "x") is None
    assert not (tmp_path / "missing").exists()
    log = errors.write_error_log(str(tmp_path), "first")
    assert errors.write_error_log(str(tmp_path), "second") == log
    lines = open(log).read().splitlines()
    assert lines[0].startswith("=== ") and lines[1:] == ["first", "second"]


def test_explain_errors_ends_the_program_with_the_line_and_status(capsys):
    def interrupted():
        raise KeyboardInterrupt
    with pytest.raises(SystemExit) as ended:
        binary.explain_errors(interrupted)
    assert ended.value.code == 130
    assert capsys.readouterr().err.startswith("interrupted (Ctrl-C)")
    assert binary.explain_errors(lambda x: x + 1, 1) == 2


def test_a_coroutine_left_unawaited_at_exit_goes_to_the_error_log(tmp_path):
    """A failed async save can leave a coroutine that Python reports when it collects it, at exit,
    after the run's one-line message: that report goes to WORKDIR/error.log."""
    code = textwrap.dedent(f"""
        import gc, sys
        from launch.train import errors
        errors.route_background_errors({str(tmp_path)!r})
        async def _save():
            pass
        pending = _save()
        sys.stderr.write("error: the one line\\n")
        del pending
        gc.collect()
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=ENV, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and out.stderr == "error: the one line\n", out.stderr
    with open(tmp_path / errors.ERROR_LOG) as f:
        assert "RuntimeWarning: coroutine '_save' was never awaited" in f.read()
