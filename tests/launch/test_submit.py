"""launch.submit: what each target would run (checked as text, YAML and bash), and how the local
target stops its processes. Its real two-process pretraining, which completes, resumes and writes
a profile, is in test_multiprocess.py."""

import io
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest
import yaml

from launch.cluster import local, slurm

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TRAIN = ["launch.pretrain", "--config=launch/configs/bert.py:base",
         "--workdir=gs://bucket/bert base"]  # a space: the command must survive quoting
TRAIN_LINE = shlex.join(["python3", "-m", *TRAIN])
REPO_FLAG = "--repo=https://example.com/pretrax.git"


def submit(*flags, train=TRAIN, cwd=REPO, timeout=120):
    """(exit status, stdout, stderr) of ``python -m launch.submit FLAGS -- TRAIN``."""
    env = {**os.environ, "PYTHONPATH": REPO}
    p = subprocess.run([sys.executable, "-m", "launch.submit", *flags, "--", *train], cwd=cwd,
                       env=env, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def bash_ok(text: str) -> None:
    p = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
    assert p.returncode == 0, (p.stderr, text)


def heredoc(text: str) -> tuple[str, str, list[str]]:
    """(path, file text, the lines after it) of a dry run that writes one file."""
    m = re.match(r"mkdir -p \S+ && cat > (\S+) <<'EOF'\n(.*?)\nEOF\n(.*)", text, re.S)
    assert m, text
    return m.group(1), m.group(2), m.group(3).splitlines()


def test_tpu_vm_creates_installs_and_runs_the_same_command_on_all_workers(tmp_path):
    code, out, err = submit("--target=tpu-vm", "--name=pod", "--zone=us-west4-a",
                            "--accelerator_type=v5litepod-16", "--version=v2-alpha-tpuv5-lite",
                            "--create", REPO_FLAG, "--ref=v1", "--dry_run")
    assert code == 0, err
    bash_ok(out)
    create, install, train = out.splitlines()
    assert create.startswith("gcloud compute tpus tpu-vm describe pod --zone=us-west4-a ")
    assert ("|| gcloud compute tpus tpu-vm create pod --zone=us-west4-a "
            "--accelerator-type=v5litepod-16 --version=v2-alpha-tpuv5-lite") in create
    remote = {}
    for name, line in (("install", install), ("train", train)):
        words = shlex.split(line)
        assert words[:7] == ["gcloud", "compute", "tpus", "tpu-vm", "ssh", "pod",
                             "--zone=us-west4-a"] and "--worker=all" in words
        remote[name] = words[-1].removeprefix("--command=")
        bash_ok(remote[name])
    assert "git clone --quiet https://example.com/pretrax.git ~/pretrax" in remote["install"]
    assert "git fetch --quiet origin v1" in remote["install"]
    assert 'pip install --quiet -e . "jax[tpu]"' in remote["install"]
    assert remote["train"] == f"cd ~/pretrax && {TRAIN_LINE}"
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("accelerator,message", [
    ("v4-32", "runs on 4 hosts"),
    ("", "may run on several hosts (give --accelerator_type to say it is one)")])
def test_tpu_vm_refuses_a_local_workdir_on_several_hosts(accelerator, message):
    train = [*TRAIN[:2], "--workdir=/tmp/run"]
    code, out, err = submit("--target=tpu-vm", "--name=pod", "--zone=z", REPO_FLAG, "--dry_run",
                            f"--accelerator_type={accelerator}", train=train)
    assert code == 1 and not out
    assert err.strip() == (f"error: --workdir=/tmp/run is a local path, but --target=tpu-vm "
                           f"{message}, which do not share a disk: use "
                           "--workdir=gs://BUCKET/PATH")
    code, out, err = submit("--target=tpu-vm", "--name=pod", "--zone=z", REPO_FLAG, "--dry_run",
                            "--accelerator_type=v5litepod-8", train=train)
    assert code == 0, err  # one host: its own disk is shared with itself


def test_tpu_vm_from_a_wheel_runs_where_the_package_is():
    code, out, err = submit("--target=tpu-vm", "--name=pod", "--zone=z", "--dry_run",
                            "--wheel=gs://b/pretrax-0.1.0-py3-none-any.whl")
    assert code == 0, err
    install, train = (shlex.split(line)[-1].removeprefix("--command=")
                      for line in out.splitlines())
    assert install.startswith("gsutil cp gs://b/pretrax-0.1.0-py3-none-any.whl /tmp/")
    assert train.endswith(f"&& {TRAIN_LINE}") and "launch.__file__" in train
    bash_ok(install + "\n" + train)


def _manifest(out: str, tmp_path) -> tuple[dict, dict, str]:
    path, text, lines = heredoc(out)
    assert path == str(tmp_path / "job1.jobset.yaml")
    assert lines == [f"kubectl apply -f {path}"]
    assert not os.path.exists(path)  # a dry run writes nothing
    docs = list(yaml.safe_load_all(text))
    assert len(docs) == 1 and docs[0]["apiVersion"] == "jobset.x-k8s.io/v1alpha2"
    assert docs[0]["kind"] == "JobSet" and docs[0]["metadata"]["name"] == "job1"
    (rjob,) = docs[0]["spec"]["replicatedJobs"]
    job = rjob["template"]["spec"]
    assert rjob["replicas"] == 1 and job["completionMode"] == "Indexed"
    (container,) = job["template"]["spec"]["containers"]
    assert container["command"][:2] == ["bash", "-c"]
    script = container["command"][2]
    bash_ok(script)
    return job, container, script


def test_gke_tpu_slice_one_pod_per_host(tmp_path):
    code, out, err = submit("--target=gke", "--name=job1", "--tpu_type=tpu-v5-lite-podslice",
                            "--tpu_topology=4x4", REPO_FLAG, f"--out_dir={tmp_path}",
                            "--dry_run")
    assert code == 0, err
    job, container, script = _manifest(out, tmp_path)
    assert job["parallelism"] == job["completions"] == 4  # 16 chips, 4 per host
    assert job["template"]["spec"]["nodeSelector"] == {
        "cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice",
        "cloud.google.com/gke-tpu-topology": "4x4"}
    assert container["resources"]["limits"] == {"google.com/tpu": 4}
    assert "env" not in container  # GKE sets TPU_WORKER_HOSTNAMES/TPU_WORKER_ID; JAX reads them
    assert script.endswith(f"&& cd ~/pretrax && {TRAIN_LINE}")


def test_gke_gpu_nodes_get_what_jax_distributed_needs(tmp_path):
    code, out, err = submit("--target=gke", "--name=job1", "--gpu_type=nvidia-h100-80gb",
                            "--num_nodes=3", "--gpus_per_node=8", REPO_FLAG,
                            f"--out_dir={tmp_path}", "--dry_run")
    assert code == 0, err
    job, container, script = _manifest(out, tmp_path)
    assert job["parallelism"] == job["completions"] == 3
    assert job["template"]["spec"]["nodeSelector"] == {
        "cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    assert container["resources"]["limits"] == {"nvidia.com/gpu": 8}
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    # Pod 0 of replicated job "workers" behind the JobSet's headless service (named like it).
    assert env["COORDINATOR_ADDRESS"] == "job1-workers-0-0.job1:1234"
    assert env["NUM_PROCESSES"] == "3"
    assert env["PROCESS_ID"] == {"fieldRef": {
        "fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}}
    assert script.endswith(f"&& cd ~/pretrax && {TRAIN_LINE} "
                           "--coordinator_address=$COORDINATOR_ADDRESS "
                           "--num_processes=$NUM_PROCESSES --process_id=$PROCESS_ID")
    assert '"jax[cuda12]"' in script


def test_gke_submission_writes_the_manifest_and_applies_it(tmp_path):
    """Without --dry_run: the file is written, then kubectl (here a stand-in) applies it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "kubectl").write_text('#!/bin/bash\necho "kubectl $*" > "$(dirname $0)/called"\n')
    (bin_dir / "kubectl").chmod(0o755)
    env = {**os.environ, "PYTHONPATH": REPO, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    p = subprocess.run([sys.executable, "-m", "launch.submit", "--target=gke", "--name=job1",
                        "--gpu_type=g", REPO_FLAG, f"--out_dir={tmp_path}", "--", *TRAIN],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    manifest = tmp_path / "job1.jobset.yaml"
    assert yaml.safe_load(manifest.read_text())["kind"] == "JobSet"
    assert (bin_dir / "called").read_text().strip() == f"kubectl apply -f {manifest}"


def test_slurm_script_one_process_per_gpu(tmp_path):
    train = [*TRAIN[:2], "--workdir=/shared/bert"]
    code, out, err = submit("--target=slurm", "--name=bert", "--nodes=4", "--gpus_per_node=8",
                            "--partition=a100", "--time=2-00:00:00", f"--out_dir={tmp_path}",
                            "--dry_run", train=train)
    assert code == 0, err
    path, script, lines = heredoc(out)
    assert lines == [f"sbatch {tmp_path}/bert.sbatch"]
    bash_ok(script)
    directives = [line.split(" ", 1)[1] for line in script.splitlines()
                  if line.startswith("#SBATCH")]
    for d in ("--nodes=4", "--ntasks-per-node=8", "--gpus-per-node=8", "--partition=a100",
              "--time=2-00:00:00"):
        assert d in directives
    (srun,) = [line for line in script.splitlines() if line.startswith("srun")]
    assert srun == "srun --kill-on-bad-exit=1 " + shlex.join(["python3", "-m", *train])
    assert "JAX_LOCAL_DEVICE_IDS" not in script  # JAX gives task i the GPU SLURM_LOCALID=i


def test_slurm_script_one_process_per_node_sees_every_gpu(tmp_path):
    code, out, err = submit("--target=slurm", "--nodes=2", "--gpus_per_node=4",
                            "--process_per=node", f"--out_dir={tmp_path}", "--dry_run")
    assert code == 0, err
    _, script, _ = heredoc(out)
    assert "#SBATCH --ntasks-per-node=1" in script
    assert "export JAX_LOCAL_DEVICE_IDS=0,1,2,3" in script


def _slurm_run(tmp_path, script: str, srun_status: int) -> tuple[int, list[str]]:
    """Runs ``script`` with an ``srun`` that exits with ``srun_status`` and an ``scontrol`` that
    records its arguments; returns (the script's exit status, scontrol's calls)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "srun").write_text(f"#!/bin/bash\nexit {srun_status}\n")
    (bin_dir / "scontrol").write_text('#!/bin/bash\necho "$*" >> "$(dirname $0)/calls"\n')
    for tool in ("srun", "scontrol"):
        (bin_dir / tool).chmod(0o755)
    p = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                       env={"PATH": f"{bin_dir}:/usr/bin:/bin", "SLURM_JOB_ID": "4711"})
    calls = bin_dir / "calls"
    text = calls.read_text() if calls.exists() else ""
    calls.unlink(missing_ok=True)
    return p.returncode, text.splitlines()


def test_slurm_warns_before_the_time_limit_and_requeues_a_run_that_saved(tmp_path):
    job = slurm.Job(name="bert", time="4:00:00")
    script = slurm.script(job, [*TRAIN[:2], "--workdir=/shared/bert"])
    bash_ok(script)
    directives = [line.split(" ", 1)[1] for line in script.splitlines()
                  if line.startswith("#SBATCH")]
    # SIGUSR1 to every training process 120 s before 4:00:00: each saves, then exits with 75.
    assert directives[-3:] == ["--requeue", "--open-mode=append", "--signal=USR1@120"]
    assert _slurm_run(tmp_path, script, 75) == (75, ["requeue 4711"])
    assert _slurm_run(tmp_path, script, 0) == (0, [])  # finished: nothing to requeue
    assert _slurm_run(tmp_path, script, 1) == (1, [])  # failed: a requeue would fail again


def test_slurm_without_requeue_or_signal_only_runs_srun(tmp_path):
    job = slurm.Job(requeue=False, signal_seconds=0)
    script = slurm.script(job, [*TRAIN[:2], "--workdir=/shared/bert"])
    assert not [line for line in script.splitlines()
                if line.startswith("#SBATCH --") and line.split()[1].startswith(
                    ("--requeue", "--open-mode", "--signal"))]
    assert script.splitlines()[-1].startswith("srun --kill-on-bad-exit=1 ")
    assert _slurm_run(tmp_path, script, 75) == (75, [])
    job = slurm.Job(requeue=False, signal_seconds=300)  # a warning, without the requeue
    assert "#SBATCH --signal=USR1@300" in slurm.script(job, [*TRAIN[:2], "--workdir=/s/b"])


def test_gke_prebuilt_image_runs_the_command_as_is(tmp_path):
    image = "us-docker.pkg.dev/p/r/pretrax@sha256:0a"
    code, out, err = submit("--target=gke", "--name=job1", "--gpu_type=g", f"--image={image}",
                            f"--out_dir={tmp_path}", "--dry_run")
    assert code == 0, err
    _, container, script = _manifest(out, tmp_path)
    assert container["image"] == image
    assert script == (f"{TRAIN_LINE} --coordinator_address=$COORDINATOR_ADDRESS "
                      "--num_processes=$NUM_PROCESSES --process_id=$PROCESS_ID")
    code, out, err = submit("--target=gke", "--name=job1", "--gpu_type=g", REPO_FLAG,
                            f"--out_dir={tmp_path}", "--dry_run")
    assert code == 0, err
    assert _manifest(out, tmp_path)[1]["image"] == "python:3.11"  # installing at every start


def test_local_dry_run_is_the_same_command_per_process():
    code, out, err = submit("--target=local", "--num_processes=3", "--devices_per_process=2",
                            "--port=4321", "--dry_run")
    assert code == 0, err
    bash_ok(out)
    lines = out.splitlines()
    assert lines[-1] == "wait" and len(lines) == 4
    for i, line in enumerate(lines[:3]):
        assert line == ("JAX_PLATFORMS=cpu XLA_FLAGS=--xla_force_host_platform_device_count=2 "
                        f"{shlex.join(['python', '-m', *TRAIN])} "
                        f"--coordinator_address=127.0.0.1:4321 --num_processes=3 "
                        f"--process_id={i} &")


@pytest.mark.parametrize("flags,train,message", [
    (["--target=local"], [], "error: no training command: end the submission with -- "
     "launch.pretrain --config=launch/configs/bert.py:tiny --workdir=gs://BUCKET/bert_tiny"),
    (["--target=local"], ["--workdir=x"], "error: the training command must start with the "
     "binary's module, e.g. launch.pretrain (got '--workdir=x'): end the submission with -- "
     "launch.pretrain --config=launch/configs/bert.py:tiny --workdir=gs://BUCKET/bert_tiny"),
    (["--target=local"], ["launch.pretrain"], "error: the training command 'launch.pretrain' "
     "has no --workdir: every worker must write to the same one, e.g. "
     "--workdir=gs://BUCKET/run"),
    (["--target=local"], ["launch.pretrain", "--workdir=w", "--process_id=1"],
     "error: the training command sets --process_id=1, which differs between workers; leave "
     "it out: launch.submit has every worker join the run"),
    (["--target=local", "--num_processes=0"], None,
     "error: --num_processes=0: use 1 or more"),
    (["--target=tpu-vm", "--zone=z", REPO_FLAG], None, "error: --target=tpu-vm needs --name "
     "(the TPU VM) and --zone, e.g. --name=my-slice --zone=us-west4-a"),
    (["--target=tpu-vm", "--name=p", "--zone=z", REPO_FLAG, "--create"], None,
     "error: --create needs --accelerator_type (e.g. v5litepod-16) and --version (the TPU VM "
     "runtime, e.g. v2-alpha-tpuv5-lite)"),
    (["--target=tpu-vm", "--name=p", "--zone=z"], None, "error: say where workers get pretrax: "
     "--repo=GIT_URL [--ref=BRANCH_OR_COMMIT] or "
     "--wheel=gs://BUCKET/pretrax-0.1.0-py3-none-any.whl (one of them)"),
    (["--target=gke", "--name=Job_1", "--gpu_type=g", REPO_FLAG], None,
     "error: --name='Job_1': use 1-40 lowercase letters, digits and '-', starting with a "
     "letter (it names the JobSet, its pods and service)"),
    (["--target=gke", "--name=j", REPO_FLAG], None, "error: --target=gke needs --tpu_type=… "
     "--tpu_topology=… (a TPU slice) or --gpu_type=… --num_nodes=… (GPU nodes), not both"),
    (["--target=gke", "--name=j", "--tpu_type=t", "--tpu_topology=4by4", REPO_FLAG], None,
     "error: --tpu_topology='4by4': use the slice's chip grid, e.g. --tpu_topology=4x4 (v5e, "
     "v6e) or 2x2x4 (v4, v5p)"),
    (["--target=gke", "--name=j", "--tpu_type=t", "--tpu_topology=2x3", REPO_FLAG], None,
     "error: --tpu_topology=2x3 has 6 chips, which do not divide into hosts of "
     "--chips_per_host=4"),
    (["--target=gke", "--name=j", "--gpu_type=g", REPO_FLAG],
     ["launch.pretrain", "--workdir=/data/run"], "error: --workdir=/data/run is a local path, "
     "but a pod's disk is lost when the pod ends (and pods do not share it): use "
     "--workdir=gs://BUCKET/PATH"),
    (["--target=gke", "--name=j", "--gpu_type=g", REPO_FLAG, "--jax_extra=cuda12; rm"], None,
     "error: --jax_extra='cuda12; rm': use a pip extra of jax, e.g. tpu or cuda12"),
    (["--target=slurm", "--time=1 day"], None, "error: --time='1 day': use Slurm's format, "
     "e.g. 24:00:00 or 2-00:00:00"),
    (["--target=slurm", "--nodes=0"], None,
     "error: --nodes=0 and --gpus_per_node=8: use 1 or more"),
    (["--target=slurm", "--signal_seconds=-1"], None,
     "error: --signal_seconds=-1: use 0 to 65535"),
    (["--target=gke", "--name=j", "--gpu_type=g"], None, "error: say where pods get pretrax: "
     "--image=IMAGE built from pretrax's Dockerfile (used as is), or --repo=GIT_URL / "
     "--wheel=WHEEL to install it at every start"),
    (["--target=gke", "--name=j", "--gpu_type=g", "--image=r/pretrax:1", "--jax_extra=tpu"], None,
     "error: --jax_extra='tpu': a prebuilt --image is used as is, nothing is installed; build it "
     "with that extra (docker build --build-arg JAX_EXTRA=…), or install at every start with "
     "--repo or --wheel"),
])
def test_bad_submissions_say_what_to_fix(flags, train, message):
    code, out, err = submit(*flags, "--dry_run", train=TRAIN if train is None else train)
    assert (code, out, err.strip()) == (1, "", message)


def test_a_failing_process_fails_the_submission_and_stops_the_others(tmp_path):
    (tmp_path / "worker.py").write_text(
        "import sys, time\n"
        "pid = int([a for a in sys.argv if a.startswith('--process_id=')][0].split('=')[1])\n"
        "print('started', flush=True)\n"
        "if pid == 1:\n    sys.exit(3)\n"
        "time.sleep(120)\n")
    out = io.StringIO()
    start = time.perf_counter()
    code = local.run(["worker", "--workdir=w"], 2, 1, out=out, cwd=str(tmp_path))
    assert code == 3 and time.perf_counter() - start < 60  # process 0 did not sleep it out
    text = out.getvalue()
    assert "[0] started\n" in text and "[1] started\n" in text
    assert text.endswith("error: process 1 of 2 failed (exit status 3) and the others were "
                         "stopped; its output is above, prefixed with [1]\n")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_no_process_outlives_a_killed_submission(tmp_path, sig):
    (tmp_path / "worker.py").write_text(
        "import os, sys, time\n"
        "open(f'pid{os.getpid()}', 'w').close()\n"
        "time.sleep(120)\n")
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}"}
    p = subprocess.Popen([sys.executable, "-m", "launch.submit", "--target=local", "--",
                          "worker", "--workdir=w"], cwd=tmp_path, env=env)
    deadline = time.time() + 60
    while len(list(tmp_path.glob("pid*"))) < 2 and time.time() < deadline:
        time.sleep(0.1)
    pids = [int(f.name[3:]) for f in tmp_path.glob("pid*")]
    assert len(pids) == 2
    p.send_signal(sig)
    assert p.wait(timeout=30) == (143 if sig == signal.SIGTERM else -signal.SIGKILL)
    deadline = time.time() + 30
    while any(_alive(pid) for pid in pids) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:  # a zombie has ended; its parent has not waited
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
