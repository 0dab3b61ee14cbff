"""Runs what launch.submit generates in bash, with every command it calls replaced by a recorder,
and says what each target should have called for given flags: any value that added, split or
dropped a word, ended a heredoc early or reached a YAML key shows up as a different call list.

The expected calls are written here from the flags alone (not from launch/cluster), so the tests
compare the generated text against an independent statement of what it must do.
"""

import ast
import contextlib
import io
import math
import os
import pathlib
import re
import shlex
import subprocess
import types

import yaml

from launch.cluster import submission

REPO = pathlib.Path(__file__).resolve().parents[2]
# Free text a submission must carry through unchanged: each as one argument, or in a path.
NASTY_ARGS = ["--workdir=gs://b/r u n'$(touch pwned)'\"`touch pwned`\";touch pwned&&|",
              "EOF", "'EOF'", "--x=$(touch pwned)", "--y=`touch pwned`", ";", "&&", "|", "",
              " ", "--z=ü名\u2028\u00a0", "--q='\"'", "#", "~", "*", "$HOME", "\\"]
NASTY_DIR = "o u/t's \"q\" $(touch pwned) `touch pwned` ;&&| EOF ü"
GCLOUD = ["gcloud", "compute", "tpus", "tpu-vm"]
# Names the recorder itself (or the scripts' own shell lines) need: no --python may take them.
RESERVED = {"builtin", "local", "set", "export", "return", "wait", "mkdir", "cat", "_stub",
            "function", "if", "then", "else", "elif", "fi", "case", "esac", "for", "select",
            "while", "until", "do", "done", "in", "time", "coproc"}

# Records "argc, argv..." NUL-separated (plus the variables named in $REC_VARS), then answers
# like the real command where the scripts depend on it: the slice does not exist yet, ~/pretrax
# is not cloned yet, and `python -c` prints the installed package's parent.
_PRELUDE = r"""
_stub() {
  local out=$LOG v
  [[ -n ${REC_SPLIT-} ]] && out=$LOG.$BASHPID
  for v in ${REC_VARS-}; do set -- "$@" "$v=${!v-}"; done
  builtin printf '%s\0' "$#" "$@" >> "$out"
  [[ $1 == test && ${2-} == -d ]] && return 1
  [[ $1 == gcloud && ${5-} == describe ]] && return 1
  [[ ${2-} == -c ]] && builtin printf '/site\n'
  return 0
}
"""


def _flag_calls():
    """(name, default, help) of each flag launch/submit.py defines, read from its source
    (importing it would define its flags in this process, where other tests' binaries define
    some of the same)."""
    for node in ast.walk(ast.parse((REPO / "launch" / "submit.py").read_text())):
        if isinstance(node, ast.Call) and len(node.args) >= 3:
            fn = node.func
            name = fn.id if isinstance(fn, ast.Name) else getattr(fn, "attr", "")
            if name == "F" or name.startswith("DEFINE_"):
                yield (ast.literal_eval(node.args[0]), ast.literal_eval(node.args[1]),
                       ast.literal_eval(node.args[-1]))


def submit_flags() -> dict:
    """Every flag of launch/submit.py and its default."""
    return {name: default for name, default, _ in _flag_calls()}


def flag_targets() -> dict[str, set[str]]:
    """The targets each flag's help names (``"tpu-vm, gke: …"``, ``"…; slurm: …"``)."""
    target = r"(?:local|tpu-vm|gke|slurm)"
    return {name: {t for group in re.findall(rf"(?:^|; )({target}(?:, {target})*):", text)
                   for t in group.split(", ")}
            for name, _, text in _flag_calls()}


def flags(**values) -> types.SimpleNamespace:
    """launch.submit's flags: the defaults, with ``values`` set."""
    defaults = submit_flags()
    unknown = set(values) - set(defaults)
    assert not unknown, unknown
    return types.SimpleNamespace(**{**defaults, **values})


def dry_run(target: str, argv: list[str], f) -> str:
    """What ``launch.submit --dry_run`` prints (in this process).

    Raises:
      ValueError: a refusal.
    """
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert submission.submit(target, argv, f, dry_run=True) == 0
    return out.getvalue()


def run_recorded(text: str, commands, cwd: pathlib.Path, env=None) -> list[list[str]]:
    """Runs ``text`` in bash with each of ``commands`` recording its argv; returns the calls."""
    log = cwd / f".calls{len(list(cwd.glob('.calls*')))}"
    stubs = "".join(f"function {c} {{ _stub {shlex.quote(c)} \"$@\"; }}\n" for c in commands)
    full_env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd / "home"), "LOG": str(log), **(env or {})}
    p = subprocess.run(["bash", "-c", _PRELUDE + stubs + text], cwd=cwd, env=full_env,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, (p.stderr, text)
    calls = []
    for path in sorted(cwd.glob(log.name + "*")):
        words = path.read_text().split("\0")[:-1]
        path.unlink()
        while words:
            n = int(words[0])
            calls.append(words[1:n + 1])
            words = words[n + 1:]
    return calls


def lines(text: str) -> list[str]:
    """The lines of printed text: split at newlines only (str.splitlines also splits at
    U+2028, U+0085 and others, which a shell keeps inside a word)."""
    return text.removesuffix("\n").split("\n")


def inside(cwd: pathlib.Path, path: str) -> bool:
    """Whether a generated file's path lies in ``cwd`` (only then may a test run its dry run)."""
    return os.path.realpath(cwd / path).startswith(os.path.realpath(cwd) + os.sep)


def install_calls(f, home: str, extra: str) -> tuple[list[list[str]], list[list[str]], str]:
    """(what the install line calls, what finding the directory calls, the directory the
    training command runs in)."""
    jax = [f"jax[{f.jax_extra or extra}]"]
    pip = [f.python, "-m", "pip", "install", "--quiet"]
    if f.wheel:
        local = "/tmp/" + f.wheel.rsplit("/", 1)[-1]
        fetch = ["gsutil", "cp"] if f.wheel.startswith("gs://") else ["cp"]
        code = ("import launch, os; "
                "print(os.path.dirname(os.path.dirname(launch.__file__)))")
        return [[*fetch, f.wheel, local], [*pip, local, *jax]], [[f.python, "-c", code]], "/site"
    checkout = f"{home}/pretrax"
    return [["test", "-d", checkout], ["git", "clone", "--quiet", f.repo, checkout],
            ["cd", checkout], ["git", "fetch", "--quiet", "origin", f.ref or "HEAD"],
            ["git", "checkout", "--quiet", "FETCH_HEAD"], [*pip, "-e", ".", *jax]], [], checkout


_REMOTE = ("test", "git", "cd", "gsutil", "cp")


def check_tpu_vm(text: str, target: str, argv, f, cwd: pathlib.Path) -> None:
    """The dry run calls gcloud exactly as intended, and each worker's line runs exactly the
    install and the training command."""
    slice_ = [f.name, f"--zone={f.zone}", *([f"--project={f.project}"] if f.project else [])]
    want = []
    if f.create:
        want += [[*GCLOUD, "describe", *slice_],
                 [*GCLOUD, "create", *slice_, f"--accelerator-type={f.accelerator_type}",
                  f"--version={f.version}", *(["--spot"] if f.spot else [])]]
    ssh = [*GCLOUD, "ssh", *slice_, "--worker=all"]
    calls = run_recorded(text, ["gcloud"], cwd)
    assert calls[:-2] == want and [c[:-1] for c in calls[-2:]] == [ssh, ssh]
    assert all(c[-1].startswith("--command=") for c in calls[-2:])
    for line, call in zip(lines(text)[-2:], calls[-2:], strict=True):  # one simple command each
        assert shlex.split(line) == call
    install, find, where = install_calls(f, str(cwd / "home"), "tpu")
    commands = [*_REMOTE, f.python]
    install_line, train_line = (c[-1].removeprefix("--command=") for c in calls[-2:])
    assert run_recorded(install_line, commands, cwd) == install
    assert run_recorded(train_line, commands, cwd) == [*find, ["cd", where],
                                                       [f.python, "-m", *argv]]


def _written(text: str, target: str, argv, f, file_name: str, cwd: pathlib.Path,
             tool: list[str]) -> str:
    """Runs the dry run: it must write exactly the planned file and then call ``tool`` on it."""
    _, files = submission.plan(target, argv, f)
    ((path, content),) = files.items()
    assert os.path.basename(path) == file_name and inside(cwd, path), path
    assert run_recorded(text, [tool[0]], cwd) == [[*tool, path]]
    assert shlex.split(lines(text)[-1]) == [*tool, path]
    assert (cwd / path).read_text() == content  # no line of it ended the heredoc early
    return content


def check_gke(text: str, target: str, argv, f, cwd: pathlib.Path) -> None:
    """The dry run writes the manifest and applies it; the manifest is exactly the intended
    JobSet, and its container script runs exactly the install and the training command."""
    manifest = yaml.safe_load_all(_written(text, target, argv, f, f"{f.name}.jobset.yaml", cwd,
                                           ["kubectl", "apply", "-f"]))
    (doc,) = list(manifest)
    tpu = bool(f.tpu_type)
    n = math.prod(map(int, f.tpu_topology.split("x"))) // f.chips_per_host if tpu else f.num_nodes
    container = doc["spec"]["replicatedJobs"][0]["template"]["spec"]["template"]["spec"][
        "containers"][0]
    script = container["command"][2]
    env = [{"name": "COORDINATOR_ADDRESS", "value": f"{f.name}-workers-0-0.{f.name}:1234"},
           {"name": "NUM_PROCESSES", "value": str(n)},
           {"name": "PROCESS_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.annotations"
                                                             "['batch.kubernetes.io/job-"
                                                             "completion-index']"}}}]
    selector = ({"cloud.google.com/gke-tpu-accelerator": f.tpu_type,
                 "cloud.google.com/gke-tpu-topology": f.tpu_topology} if tpu else
                {"cloud.google.com/gke-accelerator": f.gpu_type})
    pod = {"restartPolicy": "Never", "nodeSelector": selector, "containers": [{
        "name": "train", "image": f.image or "python:3.11", "command": ["bash", "-c", script],
        "ports": [{"containerPort": 8471 if tpu else 1234}], **({} if tpu else {"env": env}),
        "resources": {"limits": {"google.com/tpu": f.chips_per_host} if tpu else
                      {"nvidia.com/gpu": f.gpus_per_node}}}]}
    job = {"parallelism": n, "completions": n, "completionMode": "Indexed", "backoffLimit": 0,
           "template": {"spec": pod}}
    assert doc == {
        "apiVersion": "jobset.x-k8s.io/v1alpha2", "kind": "JobSet",
        "metadata": {"name": f.name, "annotations": {
            "alpha.jobset.sigs.k8s.io/exclusive-topology": "cloud.google.com/gke-nodepool"}},
        "spec": {"failurePolicy": {"maxRestarts": 3}, "network": {"enableDNSHostnames": True},
                 "replicatedJobs": [{"name": "workers", "replicas": 1,
                                     "template": {"spec": job}}]}}
    pod_env = {"COORDINATOR_ADDRESS": "c0:1234", "NUM_PROCESSES": "7", "PROCESS_ID": "5"}
    join = [] if tpu else ["--coordinator_address=c0:1234", "--num_processes=7",
                           "--process_id=5"]
    calls = run_recorded(script, [*_REMOTE, f.python], cwd, pod_env)
    if not f.repo and not f.wheel:  # a prebuilt image: nothing installed, run where it starts
        assert f.image and calls == [[f.python, "-m", *argv, *join]]
        return
    install, find, where = install_calls(f, str(cwd / "home"), "tpu" if tpu else "cuda12")
    assert calls == [*install, *find, ["cd", where], [f.python, "-m", *argv, *join]]


def check_slurm(text: str, target: str, argv, f, cwd: pathlib.Path) -> None:
    """The dry run writes the script and sbatches it; the script's #SBATCH block is exactly the
    intended one, and it runs exactly the intended srun."""
    name = f.name or "pretrax"
    script = _written(text, target, argv, f, f"{name}.sbatch", cwd, ["sbatch"])
    tasks = f.gpus_per_node if f.process_per == "gpu" else 1
    want = [f"--job-name={name}", f"--nodes={f.nodes}", f"--ntasks-per-node={tasks}",
            f"--gpus-per-node={f.gpus_per_node}", f"--time={f.time}",
            "--output=slurm-%x-%j.out", *([f"--partition={f.partition}"] * bool(f.partition)),
            *([f"--account={f.account}"] * bool(f.account)),
            *(["--requeue", "--open-mode=append"] if f.requeue else []),
            *([f"--signal=USR1@{f.signal_seconds}"] if f.signal_seconds else [])]
    lines = script.split("\n")
    assert lines[0] == "#!/bin/bash"
    assert lines[1:1 + len(want)] == [f"#SBATCH {d}" for d in want]
    # sbatch reads directives up to the first command: no later line may look like one either.
    assert not any(line.startswith("#SBATCH") for line in lines[1 + len(want):])
    ids = ",".join(map(str, range(f.gpus_per_node))) if tasks == 1 < f.gpus_per_node else ""
    calls = run_recorded(script, ["srun"], cwd, {"REC_VARS": "JAX_LOCAL_DEVICE_IDS"})
    assert calls == [["srun", "--kill-on-bad-exit=1", f.python, "-m", *argv,
                      f"JAX_LOCAL_DEVICE_IDS={ids}"]]


def check_local(text: str, target: str, argv, f, cwd: pathlib.Path) -> None:
    """Each line starts one process with exactly the training command and its place in the
    run, under the intended environment."""
    n, port = f.num_processes, f.port
    calls = sorted(run_recorded(text, ["python"], cwd,
                                {"REC_SPLIT": "1", "REC_VARS": "JAX_PLATFORMS XLA_FLAGS"}),
                   key=lambda c: c[-3])
    if not port and n > 1:  # a free port, chosen at submission
        port = int(calls[0][-5].rsplit(":", 1)[1])
    env = ["JAX_PLATFORMS=cpu", f"XLA_FLAGS=--xla_force_host_platform_device_count="
                                f"{f.devices_per_process}"]
    want = [["python", "-m", *argv, *([f"--coordinator_address=127.0.0.1:{port}",
                                       f"--num_processes={n}", f"--process_id={i}"] * (n > 1)),
             *env] for i in range(n)]
    assert calls == sorted(want, key=lambda c: c[-3])
    assert lines(text)[-1] == "wait" and len(lines(text)) == n + 1


CHECKS = {"tpu-vm": check_tpu_vm, "gke": check_gke, "slurm": check_slurm, "local": check_local}


def check(target: str, argv: list[str], f, cwd: pathlib.Path) -> None:
    """Dry-runs the submission and checks everything it would do (see the CHECKS).

    Raises:
      ValueError: the submission was refused.
    """
    text = dry_run(target, argv, f)
    CHECKS[target](text, target, argv, f, cwd)
