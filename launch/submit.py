"""Run one training command on many hosts: local processes, a TPU VM slice, GKE or Slurm.

  python -m launch.submit --target=local --num_processes=2 -- launch.pretrain \
      --config=launch/configs/bert.py:tiny --workdir=workdirs/two_procs
  python -m launch.submit --target=tpu-vm --name=my-slice --zone=us-west4-a \
      --accelerator_type=v5litepod-16 --version=v2-alpha-tpuv5-lite --create \
      --repo=https://github.com/OWNER/pretrax --dry_run -- launch.pretrain \
      --config=launch/configs/bert.py:base --workdir=gs://BUCKET/bert_base

Everything after ``--`` runs unchanged on every host. ``--dry_run`` prints what would be run
(commands, and the manifest or script as a heredoc) and runs nothing; it is safe to paste. Names
(--name, --zone, --partition, --image, …) must match a strict character set, and any other value
reaches a command, script or manifest quoted as one word or one string
(``launch/cluster/values.py``). Submitting again resumes from the workdir's latest checkpoint.
"""

import sys

from absl import flags

from launch import binary
from launch.cluster import submission

F = flags.DEFINE_string
_TARGET = flags.DEFINE_enum("target", None, list(submission.TARGETS), "Where to run.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print what would run; run nothing.")
flags.DEFINE_integer("num_processes", 2, "local: processes.")
flags.DEFINE_integer("devices_per_process", 4, "local: fake CPU devices in each process.")
flags.DEFINE_integer("port", 0, "local: the coordinator's port (0 = a free one).")
F("name", "", "tpu-vm: the TPU VM; gke: the JobSet; slurm: the job name.")
F("zone", "", "tpu-vm: its zone, e.g. us-west4-a.")
F("project", "", "tpu-vm: the GCP project (default: gcloud's).")
F("accelerator_type", "", "tpu-vm: e.g. v5litepod-16, v4-32 (for --create and the host count).")
F("version", "", "tpu-vm: the TPU VM runtime for --create, e.g. v2-alpha-tpuv5-lite.")
flags.DEFINE_bool("create", False, "tpu-vm: create the slice first (unless it exists).")
flags.DEFINE_bool("spot", False, "tpu-vm: a Spot slice (with --create).")
F("repo", "", "tpu-vm, gke: git URL of pretrax to install on every host.")
F("ref", "", "tpu-vm, gke: branch, tag or commit of --repo (default: its HEAD).")
F("wheel", "", "tpu-vm, gke: a pretrax wheel (path or gs:// URL) instead of --repo.")
F("jax_extra", "", "tpu-vm, gke: pip extra of jax to install (default: tpu, or cuda12 on GPUs).")
F("python", "python3", "tpu-vm, gke, slurm: the Python interpreter on the hosts.")
F("tpu_type", "", "gke: TPU node label, e.g. tpu-v5-lite-podslice, tpu-v5p-slice.")
F("tpu_topology", "", "gke: the slice's chip grid, e.g. 4x4 or 2x2x4.")
flags.DEFINE_integer("chips_per_host", 4, "gke: TPU chips a host (node).")
F("gpu_type", "", "gke: GPU node label, e.g. nvidia-h100-80gb.")
flags.DEFINE_integer("gpus_per_node", 8, "gke, slurm: GPUs a node.")
flags.DEFINE_integer("num_nodes", 1, "gke: GPU nodes (one pod and one process each).")
F("image", "", "gke: an image with pretrax installed (docker build the repository's "
  "Dockerfile), used as is: no --repo/--wheel, nothing installed at a pod's start. With "
  "--repo (it needs git) or --wheel: the image to install into (default python:3.11).")
flags.DEFINE_integer("nodes", 1, "slurm: nodes.")
flags.DEFINE_enum("process_per", "gpu", ["gpu", "node"], "slurm: one process per GPU or node.")
F("time", "24:00:00", "slurm: the time limit.")
F("partition", "", "slurm: the partition (default: the cluster's).")
F("account", "", "slurm: the account to charge (default: yours).")
flags.DEFINE_bool("requeue", True, "slurm: requeue the job when Slurm preempts it, and when the "
                  "run saved and stopped at the time-limit warning (it resumes from there).")
flags.DEFINE_integer("signal_seconds", 120, "slurm: send SIGUSR1 this many seconds before the "
                     "time limit: every process saves a checkpoint and stops (0: none).")
F("out_dir", "workdirs/submit", "gke, slurm: where the manifest or script is written.")
flags.mark_flag_as_required("target")


def main(argv):
    code = binary.explain_errors(submission.submit, _TARGET.value, argv[1:], flags.FLAGS,
                                 dry_run=_DRY_RUN.value)
    sys.exit(code)


def run():
    """Console-script entry point (`pretrax-submit`)."""
    binary.run(main)


if __name__ == "__main__":
    run()
