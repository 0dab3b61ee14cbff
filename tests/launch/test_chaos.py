"""Chaos: a tiny pretraining run killed at random steps (SIGKILL and SIGTERM) and resumed each
time ends with the per-step losses, the evaluation, the results and the final state of a run that
never stopped, bit for bit; metrics.jsonl continues without gaps or repeats.
"""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from launch.train import checkpoint, stopping
from tests.data.stream_corpus import write_prepared_corpus, write_split_corpus
from tests.launch.test_pretrain_e2e import REPO, tiny_overrides

STEPS = 40


def _overrides(corpus: str) -> dict:
    # Dropout on, so the resumed runs must also draw the same dropout masks; two checkpoints
    # kept, so Orbax deletes old steps while runs are being killed. Streamed corpora: chunks of
    # 16 documents, so the runs are killed and resumed inside chunks, files and epochs.
    streamed = {"data.stream_chunk_documents": 16} if ":" in corpus else {}
    return {**tiny_overrides(corpus), "train.steps": STEPS, "train.checkpoint_every": 3,
            "train.keep_checkpoints": 2, "model.dropout_rate": 0.1, **streamed}


def _command(workdir: str, corpus: str) -> list[str]:
    return [sys.executable, "-m", "launch.pretrain", "--config=launch/configs/bert.py:tiny",
            f"--workdir={workdir}",
            *[f"--config.{k}={v}" for k, v in _overrides(corpus).items()]]


def _logged(workdir: str) -> list[dict]:
    """metrics.jsonl's complete lines (a line being written may be cut short)."""
    try:
        with open(os.path.join(workdir, "metrics.jsonl")) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.split("\n")[:-1] if line.strip()]


def _losses(workdir: str) -> dict[int, float]:
    records = [r for r in _logged(workdir) if "loss" in r]
    steps = [r["step"] for r in records]
    assert steps == sorted(set(steps)), f"steps logged twice or out of order: {steps}"
    return {r["step"]: r["loss"] for r in records}


def _results(workdir: str) -> dict:
    with open(os.path.join(workdir, "results.json")) as f:
        return json.load(f)


def _final_state(workdir: str):
    path = os.path.join(workdir, "checkpoints", str(STEPS), "state")
    return jax.device_get(ocp.PyTreeCheckpointer().restore(path))


def _start(workdir: str, corpus: str, env: dict, log):
    return subprocess.Popen(_command(workdir, corpus), cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=log)


def _run_until(workdir: str, corpus: str, env: dict, target: int, kind: int, log_path: str):
    """Runs the binary and sends it ``kind`` once it has logged step ``target``; returns its
    exit status and its stderr."""
    with open(log_path, "w") as log:
        proc = _start(workdir, corpus, env, log)
        deadline = time.time() + 600
        while proc.poll() is None:
            logged = _logged(workdir)
            if logged and logged[-1]["step"] >= target:
                proc.send_signal(kind)
                break
            if time.time() > deadline:
                proc.kill()
                raise AssertionError(f"step {target} not logged within 600 s")
            time.sleep(0.01)
        returncode = proc.wait(timeout=600)
    with open(log_path) as f:
        return returncode, f.read()


def _kill_and_resume(workdir: str, corpus: str, env: dict, log_path: str) -> list[tuple]:
    """Runs the binary again and again, killing it at random steps (3 SIGKILL, 2 SIGTERM in a
    seeded random order; a streamed or prepared corpus, whose data state is what differs, one of
    each); returns (signal, last step logged, latest checkpoint) per kill."""
    rng = random.Random(20261129)
    sigkills, sigterms = (1, 1) if ":" in corpus else (3, 2)
    kinds = [signal.SIGKILL] * sigkills + [signal.SIGTERM] * sigterms
    rng.shuffle(kinds)
    ckpt_dir, reached, kills = os.path.join(workdir, "checkpoints"), 0, []
    lock = os.path.join(workdir, ".lock")
    for kind in kinds:
        # Past every step already logged, so the stale lines of a killed run never count.
        target = reached + rng.randint(1, 4)
        returncode, err = _run_until(workdir, corpus, env, target, kind, log_path)
        assert returncode in (-signal.SIGKILL, stopping.EXIT_PREEMPTED), err[-3000:]
        # SIGKILL leaves the workdir's lock, which the next run reclaims (its pid is gone).
        assert ("which is no longer running" in err) == (bool(kills) and kills[-1][0] == "SIGKILL")
        assert os.path.exists(lock) == (kind == signal.SIGKILL)
        reached = max(r["step"] for r in _logged(workdir))
        saved = checkpoint.complete_steps(ckpt_dir)
        if kind == signal.SIGTERM:
            assert returncode == stopping.EXIT_PREEMPTED, err[-3000:]
            step = int(re.search(r"preempted at step (\d+): checkpoint saved", err).group(1))
            assert saved[-1] == step == reached
        kills.append((signal.Signals(kind).name, reached, saved[-1] if saved else 0))
    assert reached < STEPS, kills
    return kills


@pytest.fixture(params=["in_memory", pytest.param("stream", marks=pytest.mark.slow),
                        pytest.param("prepared", marks=pytest.mark.slow)])
def chaos_corpus(request, tmp_path, fixture_corpus) -> str:
    """The fixture corpus in memory, streamed from 4 text files, or prepared into 4 shards."""
    if request.param == "stream":
        return write_split_corpus(str(tmp_path / "text"))
    if request.param == "prepared":
        return write_prepared_corpus(str(tmp_path / "prepared"))
    return fixture_corpus


@pytest.mark.filterwarnings("ignore:Sharding info not provided")  # read on the host
def test_killed_and_resumed_run_equals_an_uninterrupted_one(tmp_path, chaos_corpus):
    fixture_corpus = chaos_corpus
    straight, chaos = str(tmp_path / "straight"), str(tmp_path / "chaos")
    env = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"}  # one device, like a user
    # The uninterrupted run, beside the first chaotic one (its own process: the same XLA
    # programs as theirs, so equal means bit-identical).
    reference_log = open(tmp_path / "straight.log", "w")  # noqa: SIM115 (closed below)
    reference = _start(straight, fixture_corpus, env, reference_log)
    try:
        kills = _kill_and_resume(chaos, fixture_corpus, env, str(tmp_path / "chaos.log"))
        last = subprocess.run(_command(chaos, fixture_corpus), cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=600)
        assert last.returncode == 0, last.stderr[-3000:]
        assert ("which is no longer running" in last.stderr) == (kills[-1][0] == "SIGKILL")
        assert reference.wait(timeout=600) == 0, (tmp_path / "straight.log").read_text()[-3000:]
    finally:
        reference.kill()
        reference_log.close()
    a, b = _losses(straight), _losses(chaos)
    assert sorted(b) == list(range(1, STEPS + 1)), kills
    for step in range(1, STEPS + 1):
        assert b[step] == a[step], (step, kills)
    eval_a = [r for r in _logged(straight) if "eval/mlm_loss" in r]
    eval_b = [r for r in _logged(chaos) if "eval/mlm_loss" in r]
    assert eval_b == eval_a
    # The last run resumed from the newest checkpoint the kills left, and says so.
    results_a, results_b = _results(straight), _results(chaos)
    assert results_a["resumed_from"] == 0 and results_a["step"] == STEPS
    assert "eval/mlm_loss" in results_a
    assert results_b["resumed_from"] == kills[-1][2] > 0 and results_b["step"] == STEPS, kills
    assert {k: v for k, v in results_b.items() if k.startswith("eval/")} == {
        k: v for k, v in results_a.items() if k.startswith("eval/")}
    jax.tree_util.tree_map(np.testing.assert_array_equal, _final_state(chaos),
                           _final_state(straight))
    # Nothing half-written is left (nor the lock), and only the newest two steps are kept.
    assert not os.path.exists(os.path.join(chaos, ".lock"))
    assert sorted(os.listdir(os.path.join(chaos, "checkpoints"))) == [str(STEPS - 1), str(STEPS)]
