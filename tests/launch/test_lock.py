"""One run per workdir: WORKDIR/.lock refuses a second run in one line before it writes anything,
is released on every exit, reclaimed from a dead process on this host, removed from another host's
run only with --force_unlock, and works on a bucket (TensorFlow's ram:// standing in for GCS)."""

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time

import pytest

from launch.comparison import run as comparison
from launch.configs import compare as compare_configs
from launch.configs import finetune as finetune_configs
from launch.finetuning import run as finetuning
from launch.pretraining import run as pretraining
from launch.train import lock, storage
from tests.launch.test_pretrain_e2e import REPO, _cli, make_config, read_metrics

HOST = socket.gethostname()


def _write_lock(workdir, **fields) -> dict:
    """Another run's lock in ``workdir`` (created), as its holder would have written it."""
    holder = {"host": HOST, "pid": os.getpid(), "process_start": None,
              "since": "2026-11-29T08:15:00+00:00",
              "command": "python -m launch.pretrain --workdir=elsewhere", "token": "theirs",
              **fields}
    storage.makedirs(str(workdir))
    with storage.open_file(os.path.join(str(workdir), lock.LOCK_FILE), "w") as f:
        json.dump(holder, f)
    return holder


def _holder(workdir) -> dict:
    with storage.open_file(os.path.join(str(workdir), lock.LOCK_FILE)) as f:
        return json.load(f)


def _dead_pid() -> int:
    done = subprocess.Popen(["true"])
    done.wait()
    return done.pid


def test_a_second_run_is_refused_naming_the_first_and_the_lock_goes_with_it(tmp_path):
    workdir = tmp_path / "new" / "run"
    with lock.acquire(str(workdir)):
        mine = _holder(workdir)
        assert mine["host"] == HOST and mine["pid"] == os.getpid() and mine["since"]
        assert mine["command"] == shlex.join(sys.argv)
        for force in (False, True):  # a live process here is refused even with --force_unlock
            with pytest.raises(lock.WorkdirLocked, match=(
                    rf"^{workdir} is in use by another run: .* \(pid {os.getpid()} on {HOST}, "
                    rf"since {re.escape(mine['since'])}\); nothing was written\. Wait for it to "
                    rf"finish, stop it \(kill {os.getpid()}\), or use another --workdir$")):
                lock.acquire(str(workdir), force=force)
        assert _holder(workdir) == mine
    # Nothing else was written: the directories the lock made go with it.
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("error", [ValueError("refused"), KeyboardInterrupt(), SystemExit(75)])
def test_the_lock_is_released_on_every_exit(tmp_path, error):
    with pytest.raises(type(error)), lock.acquire(str(tmp_path)):
        (tmp_path / "metrics.jsonl").write_text("{}\n")
        raise error
    assert sorted(os.listdir(tmp_path)) == ["metrics.jsonl"]


def test_a_dead_process_lock_is_reclaimed_with_a_note(tmp_path, capsys):
    dead = _write_lock(tmp_path, pid=_dead_pid())
    # This pid, but another process start: the pid was reused (a restarted container).
    reused = {**dead, "pid": os.getpid(), "process_start": "1"}
    for holder in (dead, reused):
        _write_lock(tmp_path, **holder)
        with lock.acquire(str(tmp_path)):
            assert _holder(tmp_path)["token"] != "theirs"
        err = capsys.readouterr().err
        assert err == (f"note: reclaiming {tmp_path}/.lock from {holder['command']} (pid "
                       f"{holder['pid']} on {HOST}, since {holder['since']}), which is no longer "
                       "running\n")
        assert not (tmp_path / ".lock").exists()


def test_a_live_process_lock_is_kept_without_its_start_time(tmp_path):
    live = subprocess.Popen(["sleep", "60"])
    try:  # a holder that recorded no start time (no /proc where it ran) counts as alive
        theirs = _write_lock(tmp_path, pid=live.pid, process_start=None)
        with pytest.raises(lock.WorkdirLocked, match=rf"stop it \(kill {live.pid}\)"):
            lock.acquire(str(tmp_path), force=True)
        assert _holder(tmp_path) == theirs
    finally:
        live.kill()
        live.wait()


def test_another_hosts_lock_is_refused_until_force_unlock(tmp_path, capsys):
    theirs = _write_lock(tmp_path, host="tpu-vm-7", pid=4242)
    with pytest.raises(lock.WorkdirLocked, match=(
            r"is in use by another run: python -m launch.pretrain --workdir=elsewhere \(pid 4242 "
            r"on tpu-vm-7, since 2026-11-29T08:15:00\+00:00\); nothing was written\. .* if that "
            rf"run is gone \(e\.g\. its machine stopped\), rerun with --force_unlock to remove "
            rf"{tmp_path}/\.lock$")):
        lock.acquire(str(tmp_path))
    assert _holder(tmp_path) == theirs
    with lock.acquire(str(tmp_path), force=True):
        assert _holder(tmp_path)["pid"] == os.getpid()
    assert capsys.readouterr().err == (
        f"warning: --force_unlock: removing {tmp_path}/.lock, held by python -m launch.pretrain "
        "--workdir=elsewhere (pid 4242 on tpu-vm-7, since 2026-11-29T08:15:00+00:00)\n")
    (tmp_path / ".lock").write_text("not json")
    with pytest.raises(lock.WorkdirLocked, match=r"another run: an unknown run \(the lock file "
                                                 r"is not pretrax's JSON\)"):
        lock.acquire(str(tmp_path))


def test_a_lock_taken_over_meanwhile_is_left_to_its_new_holder(tmp_path, capsys):
    with lock.acquire(str(tmp_path)):
        theirs = _write_lock(tmp_path, host="tpu-vm-7")  # another run's --force_unlock
    assert _holder(tmp_path) == theirs
    assert capsys.readouterr().err.startswith(f"warning: {tmp_path}/.lock was taken over by ")


def test_on_a_bucket_the_run_whose_token_stays_wins(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # a local "ram:" directory would appear here
    monkeypatch.setattr(lock, "_settle", lambda: None)
    workdir = "ram://bucket/locked"
    with lock.acquire(workdir):
        assert _holder(workdir)["pid"] == os.getpid()
        with pytest.raises(lock.WorkdirLocked, match=r"^ram://bucket/locked is in use by"):
            lock.acquire(workdir)
    assert not storage.exists(f"{workdir}/.lock")
    _write_lock(workdir, pid=_dead_pid())  # reclaimed there as here
    with lock.acquire(workdir):
        assert _holder(workdir)["pid"] == os.getpid()
    assert "which is no longer running" in capsys.readouterr().err
    # Another run checked at the same moment and wrote its lock over ours while we settled.
    monkeypatch.setattr(lock, "_settle", lambda: _write_lock(workdir, host="tpu-vm-7", pid=99))
    with pytest.raises(lock.WorkdirLocked, match=r"^ram://bucket/locked was taken at the same "
                                                 r"moment by another run: .*\(pid 99 on tpu-vm-7"):
        lock.acquire(workdir)
    assert _holder(workdir)["host"] == "tpu-vm-7"
    assert not any(p.name.startswith("ram") for p in tmp_path.iterdir())


def _listing(workdir) -> dict:
    return {os.path.join(d, f): (os.stat(os.path.join(d, f)).st_size,
                                 os.stat(os.path.join(d, f)).st_mtime_ns)
            for d, _, files in os.walk(workdir) for f in files}


def test_the_jobs_take_the_lock_before_writing(tmp_path, fixture_corpus):
    finetune_cfg = finetune_configs.get_config("sentiment_rt")
    jobs = [lambda w: pretraining.train_and_evaluate(make_config(fixture_corpus, 2), w),
            lambda w: finetuning.finetune(finetune_cfg, w),
            lambda w: comparison.compare(compare_configs.get_config("quick"), w)]
    for job in jobs:
        with lock.acquire(str(tmp_path)):
            with pytest.raises(lock.WorkdirLocked, match="is in use by another run"):
                job(str(tmp_path))
            assert sorted(os.listdir(tmp_path)) == [".lock"]


def _wait_for_lock(workdir, pid: int, proc) -> None:
    deadline = time.time() + 300
    while time.time() < deadline:
        assert proc.poll() is None, "the first run ended before it took the lock"
        try:
            if _holder(workdir)["pid"] == pid:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.05)
    raise AssertionError("the first run did not take the lock within 300 s")


def test_two_pretraining_processes_on_one_workdir(tmp_path, fixture_corpus):
    workdir = str(tmp_path / "run")
    env = {**os.environ, "XLA_FLAGS": "", "JAX_PLATFORMS": "cpu"}
    command = _cli(workdir, fixture_corpus, 3)
    # A lock left by a run on another machine: refused, in one line, until --force_unlock.
    _write_lock(workdir, host="tpu-vm-7", pid=4242)
    refused = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                             timeout=300)
    assert refused.returncode == 1, refused.stderr[-3000:]
    assert "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith(
        f"error: {workdir} is in use by another run: python -m launch.pretrain "
        "--workdir=elsewhere (pid 4242 on tpu-vm-7")
    assert os.listdir(workdir) == [".lock"]

    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen([*command, "--force_unlock"], cwd=REPO, env=env,
                                 stdout=subprocess.DEVNULL, stderr=log)
    try:
        _wait_for_lock(workdir, first.pid, first)
        first.send_signal(signal.SIGSTOP)  # holds the lock, alive, while the second starts
        before = _listing(workdir)
        second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True,
                                timeout=300)
        first.send_signal(signal.SIGCONT)
        assert second.returncode == 1, second.stderr[-3000:]
        assert "Traceback" not in second.stderr
        assert second.stderr.strip().splitlines()[-1].startswith(
            f"error: {workdir} is in use by another run: ")
        assert f"(pid {first.pid} on {HOST}, since " in second.stderr
        assert _listing(workdir) == before  # nothing written, nothing deleted
        assert first.wait(timeout=600) == 0, (tmp_path / "first.log").read_text()[-3000:]
    finally:
        first.kill()
    assert (f"warning: --force_unlock: removing {workdir}/.lock, held by python -m "
            "launch.pretrain --workdir=elsewhere (pid 4242 on tpu-vm-7, since "
            in (tmp_path / "first.log").read_text())
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        steps = [json.loads(line)["step"] for line in f if "loss" in json.loads(line)]
    assert steps == [1, 2, 3] and sorted(read_metrics(workdir)) == [1, 2, 3]
    assert not os.path.exists(os.path.join(workdir, ".lock"))
