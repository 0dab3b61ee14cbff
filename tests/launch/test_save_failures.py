"""A save that dies (SIGKILL mid-save) or fails (disk full) costs no earlier checkpoint, leaves
nothing half-written behind once the run resumes, and says what happened."""

import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from launch.pretraining import run as pretraining
from launch.train import checkpoint, stopping
from tests.launch.test_pretrain_e2e import REPO, make_config, read_metrics, tiny_overrides

# Runs the pretraining binary after installing a fault (the test's own code, not the binary's).
_RUN_BINARY = """
sys.argv = ["launch.pretrain", *{argv!r}]
from launch import pretrain
pretrain.run()
"""

# SIGKILL after the step-4 checkpoint is fully written but before Orbax renames its temporary
# directory into place: the latest moment a crash can hit a save.
_KILL_BEFORE_COMMIT = """
import os, signal, sys
from orbax.checkpoint._src.path import atomicity
commit = atomicity.AtomicRenameTemporaryPath.finalize
async def finalize(self):
    if self.get_final().name == "4":
        os.kill(os.getpid(), signal.SIGKILL)
    return await commit(self)
atomicity.AtomicRenameTemporaryPath.finalize = finalize
"""

# From the step-4 save on, no file may grow past 256 KiB: the kernel refuses such writes with
# EFBIG ("File too large", SIGXFSZ ignored), as a full disk refuses them with ENOSPC.
_FILL_DISK_AT_4 = """
import resource, signal, sys
from launch.train import checkpoint
save = checkpoint.save
def limited_save(manager, step, state, position):
    if step == 4:
        checkpoint.finish(manager)  # the step-2 save completes with room to spare
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE,
                           (256 * 1024, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    return save(manager, step, state, position)
checkpoint.save = limited_save
"""


# Fine-tuning's best-dev saves (best/) complete before each checkpoint, so the full disk hits
# the checkpoint at step 4 and nothing else.
_FILL_DISK_AT_4_FINETUNING = _FILL_DISK_AT_4 + """
from launch.finetuning import setup
save_best = setup.save_best
def waited_save_best(manager, step, params):
    save_best(manager, step, params)
    manager.wait_until_finished()
setup.save_best = waited_save_best
"""
_RUN_FINETUNE = _RUN_BINARY.replace("pretrain", "finetune")


def _run_with_fault(fault: str, workdir: str, corpus: str, steps: int,
                    binary: str = _RUN_BINARY, argv=None) -> subprocess.CompletedProcess:
    overrides = {**tiny_overrides(corpus), "train.steps": steps, "train.keep_checkpoints": 1}
    argv = argv or ["--config=launch/configs/bert.py:tiny",
                    *[f"--config.{k}={v}" for k, v in overrides.items()]]
    code = textwrap.dedent(fault) + binary.format(argv=[*argv, f"--workdir={workdir}"])
    env = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"}
    if fault != _KILL_BEFORE_COMMIT:  # a file size limit would cut short a compilation cache
        env["JAX_ENABLE_COMPILATION_CACHE"] = "false"  # entry that other tests' processes read
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)


def _quiet(stderr: str, workdir: str) -> None:
    """Orbax's threads' reports of the failed save (hundreds of lines of tracebacks) went to
    WORKDIR/error.log, not to stderr."""
    assert "Traceback" not in stderr and "Event loop is closed" not in stderr, stderr[-3000:]
    assert "orbax" not in stderr, stderr[-3000:]
    with open(os.path.join(workdir, "error.log")) as f:
        assert "File too large" in f.read()


def _entries(workdir: str) -> list[str]:
    return sorted(os.listdir(os.path.join(workdir, "checkpoints")))


def test_sigkill_mid_save_keeps_the_previous_checkpoint(tmp_path, fixture_corpus):
    workdir = str(tmp_path / "run")
    out = _run_with_fault(_KILL_BEFORE_COMMIT, workdir, fixture_corpus, 4)
    assert out.returncode == -9, out.stderr[-3000:]
    # keep_checkpoints=1, yet step 2 survives: old steps go only after a new one is complete.
    left = _entries(workdir)
    assert left[0] == "2" and len(left) == 2 and left[1].startswith("4.orbax-checkpoint-tmp"), left
    assert checkpoint.complete_steps(os.path.join(workdir, "checkpoints")) == [2]

    cfg = make_config(fixture_corpus, 4)
    cfg.train.keep_checkpoints = 1
    results = pretraining.train_and_evaluate(cfg, workdir)
    assert results["resumed_from"] == 2 and results["step"] == 4
    assert _entries(workdir) == ["4"]  # the half-written step 4 was removed, then saved anew
    assert sorted(read_metrics(workdir)) == list(range(1, 5))


@pytest.mark.filterwarnings("ignore:Sharding info not provided")  # read on the host
def test_disk_full_during_a_save_says_so_and_keeps_the_previous_checkpoint(tmp_path,
                                                                           fixture_corpus):
    workdir = str(tmp_path / "run")
    out = _run_with_fault(_FILL_DISK_AT_4, workdir, fixture_corpus, 4)
    assert out.returncode == stopping.EXIT_SAVE_FAILED == 74, out.stderr[-3000:]
    directory = os.path.join(workdir, "checkpoints")
    # Orbax's own threads may log the error too, in any order and without waiting for a line
    # end: the binary's message must be there once, whole, ending its line.
    expected = (
        f"error: saving the checkpoint at step 4 in {directory} failed: [Errno 27] File too "
        "large; the checkpoint at step 2 is intact. Free disk space (or fix the directory's "
        "permissions), then run the same command again to resume from step 2\n")
    assert out.stderr.count(expected) == 1, out.stderr[-3000:]
    _quiet(out.stderr, workdir)
    assert checkpoint.complete_steps(directory) == [2]
    state = ocp.PyTreeCheckpointer().restore(os.path.join(directory, "2", "state"))
    assert int(state["step"]) == 2
    assert all(np.isfinite(x).all() for x in jax.tree_util.tree_leaves(state["params"]))
    # The next run's manager sweeps away the failed save's leftovers before anything else.
    manager = checkpoint.make_manager(workdir, make_config(fixture_corpus, 4).train)
    manager.close()
    assert _entries(workdir) == ["2"]


@pytest.mark.filterwarnings("ignore:Sharding info not provided")
def test_disk_full_during_a_fine_tuning_save_says_so_in_one_line(tmp_path):
    workdir = str(tmp_path / "ft")
    argv = ["--config=launch/configs/finetune.py:sentiment_rt", "--config.train.steps=6",
            "--config.train.evals=3", "--config.data.max_seq_length=32",
            "--config.train.batch_size=8", "--config.task.max_train_examples=64"]
    out = _run_with_fault(_FILL_DISK_AT_4_FINETUNING, workdir, "", 6, _RUN_FINETUNE, argv)
    assert out.returncode == stopping.EXIT_SAVE_FAILED, out.stderr[-3000:]
    directory = os.path.join(workdir, "checkpoints")
    assert out.stderr.splitlines()[-1] == (
        f"error: saving the checkpoint at step 4 in {directory} failed: [Errno 27] File too "
        "large; the checkpoint at step 2 is intact. Free disk space (or fix the directory's "
        "permissions), then run the same command again to resume from step 2")
    _quiet(out.stderr, workdir)
    assert checkpoint.complete_steps(directory) == [2]
