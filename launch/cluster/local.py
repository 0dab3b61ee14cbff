"""N processes on this machine, each with fake CPU devices, joined like the hosts of a pod.

For testing the multi-host path: the same training command, plus the coordinator flags that
``launch/train/distributed.py`` reads, in every process. Output is prefixed with the process id; one
failing process stops the others.
"""

from __future__ import annotations

import ctypes
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

from launch.cluster import command, values


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_env(devices: int) -> dict[str, str]:
    """The variables each process adds: CPU only, ``devices`` fake devices.

    Raises:
      ValueError: fewer than one device.
    """
    values.check_range("devices_per_process", devices, 1)
    return {"JAX_PLATFORMS": "cpu",
            "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}


def process_commands(argv: list[str], num_processes: int, port: int,
                     python: str = sys.executable) -> list[list[str]]:
    """One command per process: the training command + its place in the run.

    Raises:
      ValueError: fewer than one process.
    """
    values.check_range("num_processes", num_processes, 1)
    if num_processes == 1:
        return [[python, "-m", *argv]]
    return [[python, "-m", *argv, f"--coordinator_address=127.0.0.1:{port}",
             f"--num_processes={num_processes}", f"--process_id={i}"]
            for i in range(num_processes)]


def dry_run(argv: list[str], num_processes: int, devices: int, port: int) -> str:
    """The shell lines that start the same processes (each in the background, then wait)."""
    env = shlex.join(f"{k}={v}" for k, v in process_env(devices).items())
    cmds = process_commands(argv, num_processes, port, python="python")
    return "\n".join([f"{env} {shlex.join(c)} &" for c in cmds] + ["wait"])


def _die_with_parent() -> None:
    """In each child (Linux): SIGKILL when launch.submit dies, even by SIGKILL, so no process
    of a killed submission keeps training (and writing the workdir) on its own."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: Ctrl-C and SIGTERM still stop the children (see run)


def _relay(proc: subprocess.Popen, prefix: str, out) -> None:
    for line in proc.stdout:
        out.write(f"{prefix}{line}")
        out.flush()


def _stop(procs: list[subprocess.Popen], grace_s: float = 10.0) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run(argv: list[str], num_processes: int, devices: int, port: int = 0, *, out=None,
        cwd: str | None = None) -> int:
    """Runs the processes until all finish or one fails; returns 0 or the first failure's code.

    Each line of a process's output (stdout and stderr) is printed as ``[i] line``.
    """
    out = out or sys.stdout
    cmds = process_commands(command.parse(argv), num_processes, port or free_port())
    env = {**os.environ, **process_env(devices), "PYTHONUNBUFFERED": "1"}
    if threading.current_thread() is threading.main_thread():
        # SIGTERM (e.g. a scheduler's) ends this process through the `finally` below.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    procs = [subprocess.Popen(c, cwd=cwd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, bufsize=1,
                              preexec_fn=_die_with_parent) for c in cmds]
    relays = [threading.Thread(target=_relay, args=(p, f"[{i}] ", out), daemon=True)
              for i, p in enumerate(procs)]
    for t in relays:
        t.start()
    try:
        failed = _wait_all(procs)
    finally:
        _stop(procs)  # a failure or Ctrl-C here: no process outlives the submission
    for t in relays:
        t.join()
    if failed is None:
        return 0
    code = procs[failed].returncode
    out.write(f"error: process {failed} of {len(procs)} failed (exit status {code}) and the "
              f"others were stopped; its output is above, prefixed with [{failed}]\n")
    return code if code > 0 else 1


def _wait_all(procs: list[subprocess.Popen], poll_s: float = 0.2) -> int | None:
    """Waits until every process ended (None) or one failed (its index)."""
    while True:
        codes = [p.poll() for p in procs]
        failed = [i for i, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            return failed[0]
        if all(code == 0 for code in codes):
            return None
        time.sleep(poll_s)
