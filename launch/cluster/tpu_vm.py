"""Cloud TPU VM slices: create one (optionally), install pretrax on every worker, run everywhere.

Each worker runs the same command through ``gcloud compute tpus tpu-vm ssh --worker=all``; JAX
finds the other workers by itself on a TPU slice (``launch/train/distributed.py``).
"""

from __future__ import annotations

import dataclasses
import re
import shlex

from launch.cluster import command, values


@dataclasses.dataclass(frozen=True)
class Slice:
    name: str
    zone: str
    project: str = ""
    accelerator_type: str = ""  # e.g. v5litepod-16, v4-32, v5p-64, v6e-16
    version: str = ""  # the TPU VM runtime, e.g. v2-alpha-tpuv5-lite, tpu-ubuntu2204-base
    spot: bool = False


def hosts(accelerator_type: str) -> int | None:
    """Workers (hosts) of a slice type, or None when the type is not one we know.

    v2/v3/v4/v5p name TensorCores (8 per host); v5e (v5litepod) and v6e name chips: up to 8 on
    one host, 4 per host beyond.
    """
    m = re.fullmatch(r"(v2|v3|v4|v5p|v5litepod|v5e|v6e)-(\d+)", accelerator_type)
    if not m:
        return None
    family, n = m.group(1), int(m.group(2))
    if family in ("v5litepod", "v5e", "v6e"):
        return 1 if n <= 8 else n // 4
    return max(1, n // 8)


def check(s: Slice) -> None:
    """Every value is one gcloud argument: a strict character set, so none reads as an option.

    Raises:
      ValueError: a missing --name/--zone, or a value outside its character set.
    """
    if not s.name or not s.zone:
        raise ValueError("--target=tpu-vm needs --name (the TPU VM) and --zone, e.g. "
                         "--name=my-slice --zone=us-west4-a")
    values.GCP_NAME.check("name", s.name)
    values.ZONE.check("zone", s.zone)
    for flag, value, rule in (("project", s.project, values.PROJECT),
                              ("accelerator_type", s.accelerator_type, values.ACCELERATOR),
                              ("version", s.version, values.VERSION)):
        if value:
            rule.check(flag, value)


def _gcloud(verb: str, s: Slice) -> list[str]:
    check(s)
    project = [f"--project={s.project}"] if s.project else []
    return ["gcloud", "compute", "tpus", "tpu-vm", verb, s.name, f"--zone={s.zone}", *project]


def create_command(s: Slice) -> str:
    """Creates the slice unless it exists (so a resubmission after a failure just resumes).

    Raises:
      ValueError: without --accelerator_type or --version, or with a bad value.
    """
    if not s.accelerator_type or not s.version:
        raise ValueError("--create needs --accelerator_type (e.g. v5litepod-16) and --version "
                         "(the TPU VM runtime, e.g. v2-alpha-tpuv5-lite)")
    create = [*_gcloud("create", s), f"--accelerator-type={s.accelerator_type}",
              f"--version={s.version}", *(["--spot"] if s.spot else [])]
    return f"{shlex.join(_gcloud('describe', s))} >/dev/null 2>&1 || {shlex.join(create)}"


def ssh_command(s: Slice, remote: str) -> str:
    """``remote`` (one shell line) on every worker of the slice.

    Raises:
      ValueError: a bad slice value.
    """
    return shlex.join([*_gcloud("ssh", s), "--worker=all", f"--command={remote}"])


def commands(s: Slice, source: command.Source, argv: list[str], *, create: bool,
             python: str = "python3") -> list[str]:
    """Create (optional), install on every worker, then train on every worker.

    Raises:
      ValueError: a bad slice value, a local workdir on a multi-host slice, or no source.
    """
    command.require_shared_workdir(argv, hosts(s.accelerator_type), "tpu-vm")
    install, where = command.install_script(
        dataclasses.replace(source, jax_extra=source.jax_extra or "tpu"), python)
    train = f"cd {where} && {command.python_command(python, argv)}"
    out = [create_command(s)] if create else []
    return out + [ssh_command(s, install), ssh_command(s, train)]
