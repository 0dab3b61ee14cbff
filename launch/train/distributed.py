"""Joining a multi-process (multi-host) JAX run: explicit flags, or detected on Slurm / TPU pods."""

from __future__ import annotations

import os

import jax


def _cluster_detected() -> bool:
    """A scheduler that started several processes for this job, as JAX's own detection sees it."""
    slurm = "SLURM_JOB_ID" in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1
    tpu_hosts = os.environ.get("TPU_WORKER_HOSTNAMES", "")
    tpu_pod = "," in tpu_hosts or "MEGASCALE_COORDINATOR_ADDRESS" in os.environ
    return slurm or tpu_pod


def initialize(coordinator_address: str = "", num_processes: int = 0,
               process_id: int = -1) -> None:
    """Calls `jax.distributed.initialize` when this run spans several processes.

    With `coordinator_address` (host:port of process 0) all three values are used as given, for
    local multi-process runs and clusters JAX does not detect. Without it, Slurm jobs with more
    than one task and multi-host Cloud TPU slices (TPU VMs, GKE) are detected and initialised
    automatically; a single process does nothing.

    Raises:
      ValueError: for an incomplete or inconsistent set of values.
    """
    if coordinator_address:
        if num_processes < 1 or not 0 <= process_id < num_processes:
            raise ValueError(
                f"--coordinator_address={coordinator_address} needs --num_processes >= 1 and "
                f"0 <= --process_id < --num_processes (got {num_processes}, {process_id})")
        # CPU processes exchange data through gloo; harmless on GPU and TPU.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address, num_processes, process_id)
    elif num_processes > 1 or process_id >= 0:
        raise ValueError("--num_processes and --process_id need --coordinator_address (the "
                         "host:port of process 0)")
    elif _cluster_detected():
        jax.distributed.initialize()
