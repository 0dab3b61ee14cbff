"""Slurm: an sbatch script whose ``srun`` starts one process per GPU (or per node).

JAX reads the job's layout from Slurm's variables (``launch/train/distributed.py`` detects a
job with more than one task): the coordinator is the first node, the process id is SLURM_PROCID,
and with several tasks a node each process takes the GPU numbered by its SLURM_LOCALID, so every
task must see all of its node's GPUs (``--gpus-per-node``, not ``--gpus-per-task``).

Time limits and preemption: ``--signal=USR1@N`` has Slurm send SIGUSR1 to every training process
N seconds before the time limit; each saves a checkpoint after its step and exits with 75
(``launch/train/stopping.py``), and the script then requeues the job (``--requeue``), which
resumes from that checkpoint. A job Slurm preempts is requeued by Slurm itself.
"""

from __future__ import annotations

import dataclasses
import shlex

from launch.cluster import command, values


@dataclasses.dataclass(frozen=True)
class Job:
    name: str = "pretrax"
    nodes: int = 1
    gpus_per_node: int = 8
    process_per: str = "gpu"  # "gpu": one process per GPU; "node": one per node with all GPUs
    time: str = "24:00:00"
    partition: str = ""
    account: str = ""
    output: str = "slurm-%x-%j.out"
    requeue: bool = True  # requeued when preempted, or after saving at the time-limit warning
    signal_seconds: int = 120  # SIGUSR1 this long before the time limit; 0: none


def tasks_per_node(job: Job) -> int:
    """Processes a node: its GPU count, or 1.

    Raises:
      ValueError: a bad node or GPU count, process_per, time limit or signal time.
    """
    if job.nodes < 1 or job.gpus_per_node < 1:
        raise ValueError(f"--nodes={job.nodes} and --gpus_per_node={job.gpus_per_node}: use 1 "
                         "or more")
    if job.process_per not in ("gpu", "node"):
        raise ValueError(f"--process_per={job.process_per!r}: use gpu (one process per GPU) or "
                         "node (one per node, seeing all its GPUs)")
    values.TIME.check("time", job.time)
    values.check_range("signal_seconds", job.signal_seconds, 0, 65535)  # Slurm's limit
    return job.gpus_per_node if job.process_per == "gpu" else 1


def script(job: Job, argv: list[str], *, python: str = "python3") -> str:
    """The sbatch script: resources, then ``srun`` of the training command.

    Slurm runs it in the directory ``sbatch`` was called from: the pretrax checkout, where the
    command's relative paths (``--config=launch/configs/…``) resolve.

    The workdir may be any path the nodes share (Slurm clusters have a shared disk) or gs://.

    Raises:
      ValueError: bad job values, or a training command without a module or --workdir.
    """
    # Each is written into an #SBATCH line as is: a newline would end the block or add lines.
    values.SLURM_NAME.check("name", job.name)
    for flag, value, rule in (("partition", job.partition, values.PARTITION),
                              ("account", job.account, values.ACCOUNT)):
        if value:
            rule.check(flag, value)
    values.OUTPUT.check("output", job.output)
    tasks = tasks_per_node(job)
    directives = [f"--job-name={job.name}", f"--nodes={job.nodes}",
                  f"--ntasks-per-node={tasks}", f"--gpus-per-node={job.gpus_per_node}",
                  f"--time={job.time}", f"--output={job.output}"]
    directives += [f"--partition={job.partition}"] * bool(job.partition)
    directives += [f"--account={job.account}"] * bool(job.account)
    # Every attempt of a requeued job appends to the same log.
    directives += ["--requeue", "--open-mode=append"] * job.requeue
    directives += [f"--signal=USR1@{job.signal_seconds}"] * bool(job.signal_seconds)
    train = command.python_command(python, command.parse(argv))
    lines = ["#!/bin/bash", *(f"#SBATCH {d}" for d in directives), "",
             "# sbatch this from the pretrax checkout (the job runs where it was submitted).",
             "# One process per task; JAX finds the coordinator and its rank from SLURM_* "
             "variables.",
             "# Submitting it again resumes from the workdir's latest checkpoint.",
             "set -euo pipefail",
             *_one_process_per_node(job),
             *_run_and_requeue(job, f"srun --kill-on-bad-exit=1 {train}"), ""]
    return "\n".join(lines)


def _run_and_requeue(job: Job, srun: str) -> list[str]:
    """``srun``, then, with --requeue, the job requeued when the run saved and stopped early."""
    if not job.requeue:
        return [srun]
    return ["# Exit status 75: the run saved a checkpoint and stopped (SIGUSR1, Slurm's warning",
            "# before the time limit, or SIGTERM): requeue the job; it resumes from there.",
            "set +e", srun, "status=$?", "set -e",
            'if [[ $status == 75 ]]; then scontrol requeue "$SLURM_JOB_ID"; fi',
            'exit "$status"']


def _one_process_per_node(job: Job) -> list[str]:
    if job.process_per == "gpu" or job.gpus_per_node == 1:
        return []
    ids = ",".join(str(i) for i in range(job.gpus_per_node))
    return ["# JAX would give a lone task per node only the GPU of its SLURM_LOCALID (0): all of "
            "them", f"export JAX_LOCAL_DEVICE_IDS={ids}"]


def sbatch_command(path: str) -> str:
    return shlex.join(["sbatch", path])
