"""One submission for any target: the shell lines and files it takes, then print or run them."""

from __future__ import annotations

import os

from launch.cluster import command, gke, local, shell, slurm, tpu_vm, values

TARGETS = ("local", "tpu-vm", "gke", "slurm")


def _source(f) -> command.Source:
    return command.Source(repo=f.repo, ref=f.ref, wheel=f.wheel, jax_extra=f.jax_extra)


def _out_path(out_dir: str, file_name: str) -> str:
    """Where a generated file goes; never starting with '-' (sbatch, mkdir would read an option).

    Raises:
      ValueError: an --out_dir with a control character.
    """
    path = os.path.join(values.check_text("--out_dir=", out_dir), file_name)
    return "./" + path if path.startswith("-") else path


def plan(target: str, argv: list[str], f) -> tuple[list[str], dict[str, str]]:
    """(shell lines, {path: text} of files to write first) for a remote ``target``.

    ``f`` holds the submission's options (launch/submit.py's flags).

    Raises:
      ValueError: an unknown target, or options / a training command the target cannot run.
    """
    argv = command.parse(argv)
    if target == "tpu-vm":
        s = tpu_vm.Slice(name=f.name, zone=f.zone, project=f.project,
                         accelerator_type=f.accelerator_type, version=f.version, spot=f.spot)
        return tpu_vm.commands(s, _source(f), argv, create=f.create, python=f.python), {}
    if target == "gke":
        hosts = gke.Hosts(tpu_type=f.tpu_type, tpu_topology=f.tpu_topology,
                          chips_per_host=f.chips_per_host, gpu_type=f.gpu_type,
                          gpus_per_node=f.gpus_per_node, num_nodes=f.num_nodes)
        text = gke.manifest(f.name, hosts, _source(f), argv, image=f.image, python=f.python)
        path = _out_path(f.out_dir, f"{f.name}.jobset.yaml")
        return [gke.apply_command(path)], {path: text}
    if target == "slurm":
        job = slurm.Job(name=f.name or "pretrax", nodes=f.nodes, gpus_per_node=f.gpus_per_node,
                        process_per=f.process_per, time=f.time, partition=f.partition,
                        account=f.account, requeue=f.requeue, signal_seconds=f.signal_seconds)
        text = slurm.script(job, argv, python=f.python)
        path = _out_path(f.out_dir, f"{job.name}.sbatch")
        return [slurm.sbatch_command(path)], {path: text}
    raise ValueError(f"--target={target!r}: use one of {', '.join(TARGETS)}")


def submit(target: str, argv: list[str], f, *, dry_run: bool) -> int:
    """Prints (``dry_run``) or runs the submission; returns the exit status."""
    if target == "local":
        values.check_range("port", f.port, 0, 65535)
        port = f.port or local.free_port()
        if dry_run:
            print(local.dry_run(command.parse(argv), f.num_processes, f.devices_per_process,
                                port))
            return 0
        return local.run(argv, f.num_processes, f.devices_per_process, port)
    lines, files = plan(target, argv, f)
    if dry_run:
        print(shell.dry_run_text(lines, files))
        return 0
    return shell.run(lines, files)
