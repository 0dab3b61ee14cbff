"""GKE: a JobSet (jobset.x-k8s.io/v1alpha2) that runs the training command once per host.

TPU slices: one pod per TPU VM host of the slice (selected by the GKE TPU node labels); GKE gives
each pod ``TPU_WORKER_HOSTNAMES``/``TPU_WORKER_ID`` and JAX joins them by itself. GPU nodes: one
pod per node with all its GPUs; the coordinator is pod 0 behind the JobSet's headless service,
and each pod's process id is its Job completion index.

Where pods get pretrax: an image with it installed (``--image``, built from the repository's
``Dockerfile``), used as is, so a (re)started pod trains at once; or, with ``--repo``/``--wheel``,
a plain Python image (``DEFAULT_IMAGE``) that installs pretrax and JAX at every start.
"""

from __future__ import annotations

import dataclasses
import math
import shlex

from launch.cluster import command, values

COORDINATOR_PORT = 1234  # jax.distributed's coordinator on pod 0 (GPU)
TPU_PORT = 8471  # the TPU runtime's port between hosts, as GKE's TPU examples open it
DEFAULT_IMAGE = "python:3.11"  # what --repo/--wheel install into when no --image is given


@dataclasses.dataclass(frozen=True)
class Hosts:
    """Either a TPU slice (tpu_type + tpu_topology) or GPU nodes (gpu_type + num_nodes)."""
    tpu_type: str = ""  # the cloud.google.com/gke-tpu-accelerator label, e.g. tpu-v5-lite-podslice
    tpu_topology: str = ""  # e.g. 4x4 (v5e, v6e) or 2x2x4 (v4, v5p)
    chips_per_host: int = 4
    gpu_type: str = ""  # the cloud.google.com/gke-accelerator label, e.g. nvidia-h100-80gb
    gpus_per_node: int = 8
    num_nodes: int = 1

    @property
    def is_tpu(self) -> bool:
        return bool(self.tpu_type)

    def count(self) -> int:
        """Pods (= hosts = JAX processes).

        Raises:
          ValueError: neither or both of TPU and GPU, a topology that is not NxM[xK], or one
            whose chips do not divide into hosts.
        """
        if bool(self.tpu_type) == bool(self.gpu_type):
            raise ValueError("--target=gke needs --tpu_type=… --tpu_topology=… (a TPU slice) or "
                             "--gpu_type=… --num_nodes=… (GPU nodes), not both")
        if not self.is_tpu:
            values.LABEL.check("gpu_type", self.gpu_type)
            if self.num_nodes < 1 or self.gpus_per_node < 1:
                raise ValueError(f"--num_nodes={self.num_nodes} and --gpus_per_node="
                                 f"{self.gpus_per_node}: use 1 or more")
            return self.num_nodes
        values.LABEL.check("tpu_type", self.tpu_type)
        values.TOPOLOGY.check("tpu_topology", self.tpu_topology)
        chips = math.prod(int(d) for d in self.tpu_topology.split("x"))
        if not chips or self.chips_per_host < 1 or chips % self.chips_per_host:
            raise ValueError(f"--tpu_topology={self.tpu_topology} has {chips} chips, which do "
                             f"not divide into hosts of --chips_per_host={self.chips_per_host}")
        return chips // self.chips_per_host


def _env(name: str, hosts: Hosts) -> dict:
    if hosts.is_tpu:
        return {}
    index = "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    return {"env": [
        {"name": "COORDINATOR_ADDRESS", "value": f"{name}-workers-0-0.{name}:{COORDINATOR_PORT}"},
        {"name": "NUM_PROCESSES", "value": str(hosts.count())},
        {"name": "PROCESS_ID", "valueFrom": {"fieldRef": {"fieldPath": index}}}]}


def _placement(hosts: Hosts) -> tuple[dict, dict]:
    """(nodeSelector, resource limits) of one pod."""
    if hosts.is_tpu:
        return ({"cloud.google.com/gke-tpu-accelerator": hosts.tpu_type,
                 "cloud.google.com/gke-tpu-topology": hosts.tpu_topology},
                {"google.com/tpu": hosts.chips_per_host})
    return ({"cloud.google.com/gke-accelerator": hosts.gpu_type},
            {"nvidia.com/gpu": hosts.gpus_per_node})


def prebuilt(source: command.Source) -> bool:
    """Whether pods use their image as is (no --repo or --wheel to install)."""
    return not source.repo and not source.wheel


def container_script(hosts: Hosts, source: command.Source, argv: list[str],
                     python: str = "python3") -> str:
    """What every pod runs: install pretrax (unless the image has it), then the training command
    (+ the GPU join flags).

    Raises:
      ValueError: --jax_extra with a prebuilt image (nothing is installed), or a bad source.
    """
    join = () if hosts.is_tpu else ("--coordinator_address=$COORDINATOR_ADDRESS",
                                    "--num_processes=$NUM_PROCESSES", "--process_id=$PROCESS_ID")
    train = command.python_command(python, argv, join)
    if prebuilt(source):
        if source.jax_extra:
            raise ValueError(f"--jax_extra={source.jax_extra!r}: a prebuilt --image is used as "
                             "is, nothing is installed; build it with that extra (docker build "
                             "--build-arg JAX_EXTRA=…), or install at every start with --repo "
                             "or --wheel")
        return train  # in the image's working directory (the Dockerfile's: its checkout)
    extra = dataclasses.replace(source, jax_extra=source.jax_extra or
                                ("tpu" if hosts.is_tpu else "cuda12"))
    install, where = command.install_script(extra, python)
    return f"{install} && cd {where} && {train}"


def _image(image: str, source: command.Source) -> str:
    """The pods' image: ``image``, else (installing at start) ``DEFAULT_IMAGE``.

    Raises:
      ValueError: no --image, --repo or --wheel, or an image outside its character set.
    """
    if not image and prebuilt(source):
        raise ValueError("say where pods get pretrax: --image=IMAGE built from pretrax's "
                         "Dockerfile (used as is), or --repo=GIT_URL / --wheel=WHEEL to install "
                         "it at every start")
    return values.IMAGE.check("image", image or DEFAULT_IMAGE)


def manifest(name: str, hosts: Hosts, source: command.Source, argv: list[str], *,
             image: str = "", python: str = "python3", max_restarts: int = 3) -> str:
    """The JobSet as YAML: one replicated Job of ``hosts.count()`` indexed pods.

    ``image``: one with pretrax installed, used as is when ``source`` names no --repo/--wheel;
    else the image to install into (default ``DEFAULT_IMAGE``).

    Raises:
      ValueError: a name, image or label Kubernetes would refuse, bad hosts, no source, or a
        local workdir.
    """
    values.GKE_NAME.check("name", name)
    n = hosts.count()
    workdir = command.workdir_of(argv)
    if not workdir.startswith("gs://"):
        raise ValueError(f"--workdir={workdir} is a local path, but a pod's disk is lost when "
                         "the pod ends (and pods do not share it): use --workdir=gs://BUCKET/PATH")
    selector, limits = _placement(hosts)
    container = {"name": "train", "image": _image(image, source),
                 "command": ["bash", "-c", container_script(hosts, source, argv, python)],
                 "ports": [{"containerPort": TPU_PORT if hosts.is_tpu else COORDINATOR_PORT}],
                 **_env(name, hosts), "resources": {"limits": limits}}
    pod = {"restartPolicy": "Never", "nodeSelector": selector, "containers": [container]}
    job = {"parallelism": n, "completions": n, "completionMode": "Indexed", "backoffLimit": 0,
           "template": {"spec": pod}}
    return values.yaml_text({
        "apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
        "metadata": {"name": name, "annotations": {
            "alpha.jobset.sigs.k8s.io/exclusive-topology": "cloud.google.com/gke-nodepool"}},
        "spec": {"failurePolicy": {"maxRestarts": max_restarts},
                 "network": {"enableDNSHostnames": True},
                 "replicatedJobs": [{"name": "workers", "replicas": 1,
                                     "template": {"spec": job}}]}})


def apply_command(path: str) -> str:
    return shlex.join(["kubectl", "apply", "-f", path])
