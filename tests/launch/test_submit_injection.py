"""launch.submit against injection: each value that reaches a generated script or manifest is
refused in one line (names: a strict character set) or arrives as exactly one word / one YAML
string (free text), and a pasted dry run writes each file exactly and runs nothing else.

What a submission does is checked by running its dry run in bash with recording stand-ins for
every command (``submit_harness``); a marker file shows any command that got through.
"""

import os
import subprocess
import sys

import pytest
import yaml

from launch.cluster import shell, values
from tests.launch import submit_harness as h

TRAIN = ["launch.pretrain", "--config=launch/configs/bert.py:base", *h.NASTY_ARGS]
NASTY_DIR = h.NASTY_DIR
REPO = "https://u:t%40k=n@example.com/p~x/pretrax.git"
VALID = {
    "tpu-vm": dict(name="pod-1", zone="us-west4-a", project="example.com:proj-1",
                   accelerator_type="v5litepod-16", version="v2-alpha-tpuv5-lite", create=True,
                   spot=True, repo=REPO, ref="feature/x+1", python="/opt/venv/bin/python3.11"),
    "gke": dict(name="job-1", tpu_type="tpu-v5-lite-podslice", tpu_topology="2x2x4",
                chips_per_host=4, wheel="gs://b/pretrax-0.1.0+cpu-py3-none-any.whl",
                jax_extra="tpu,x_1", image="us-docker.pkg.dev/p/r/img@sha256:0a", python="py3",
                out_dir=NASTY_DIR),
    "slurm": dict(name="bert.v2_x", nodes=3, gpus_per_node=4, process_per="node",
                  time="2-00:00:00", partition="a100,h100", account="my_acct.1",
                  out_dir="-lead/" + NASTY_DIR, python="./py+x-1"),
    "local": dict(num_processes=3, devices_per_process=2, port=4321),
}


@pytest.mark.parametrize("target", list(VALID))
def test_free_text_arrives_as_exactly_the_intended_words(target, tmp_path):
    h.check(target, TRAIN, h.flags(**VALID[target]), tmp_path)
    assert not list(tmp_path.rglob("pwned"))


@pytest.mark.parametrize("overrides", [
    dict(gpu_type="nvidia-h100-80gb", tpu_type="", num_nodes=3, gpus_per_node=8,
         repo=REPO, wheel="", ref="v1", out_dir=""),
    dict(wheel="dist/pretrax-0.1.0-py3-none-any.whl", out_dir="-x")])
def test_gke_variants(overrides, tmp_path):
    h.check("gke", TRAIN, h.flags(**{**VALID["gke"], **overrides}), tmp_path)
    assert not list(tmp_path.rglob("pwned"))


PAYLOADS = ["x\n#SBATCH --wrap=id", "x\nid", "x\nEOF\nid", "$(id)", "`id`", "x;id", "a b",
            "x'y", 'x"y', "a&&id", "a|id", "ü", "\x1b[31m"]
# Every string flag that names something, by target, with the rule that refuses the payloads.
NAMES = [("slurm", "name", values.SLURM_NAME), ("slurm", "partition", values.PARTITION),
         ("slurm", "account", values.ACCOUNT), ("slurm", "time", values.TIME),
         ("slurm", "python", values.PYTHON),
         ("tpu-vm", "name", values.GCP_NAME), ("tpu-vm", "zone", values.ZONE),
         ("tpu-vm", "project", values.PROJECT), ("tpu-vm", "accelerator_type",
                                                 values.ACCELERATOR),
         ("tpu-vm", "version", values.VERSION), ("tpu-vm", "ref", values.REF),
         ("tpu-vm", "repo", values.REPO), ("tpu-vm", "python", values.PYTHON),
         ("gke", "name", values.GKE_NAME), ("gke", "image", values.IMAGE),
         ("gke", "tpu_type", values.LABEL), ("gke", "tpu_topology", values.TOPOLOGY),
         ("gke", "wheel", values.WHEEL), ("gke", "jax_extra", values.JAX_EXTRA),
         ("gke", "python", values.PYTHON)]


@pytest.mark.parametrize("target,flag,rule", NAMES)
def test_names_are_refused_in_one_line(target, flag, rule, tmp_path):
    for payload in PAYLOADS:
        value = "v4-8" + payload if flag == "accelerator_type" else "a" + payload
        f = h.flags(**{**VALID[target], flag: value})
        with pytest.raises(ValueError) as e:
            h.dry_run(target, TRAIN, f)
        assert str(e.value) == f"--{flag}={value!r}: use {rule.allowed}"
        assert "\n" not in str(e.value)


@pytest.mark.parametrize("target,overrides,message", [
    # The reported ones: a wheel's file name and the interpreter were written unquoted.
    ("tpu-vm", dict(repo="", wheel="gs://b/x;id;.whl"), "--wheel='gs://b/x;id;.whl'"),
    ("tpu-vm", dict(repo="", wheel="gs://b/$(id).whl"), "--wheel='gs://b/$(id).whl'"),
    ("gke", dict(python="python3 -c 'import os'; id #"), "--python="),
    # git reads a ref or URL starting with '-' as an option: --upload-pack runs a command.
    ("tpu-vm", dict(ref="--upload-pack=touch pwned"), "--ref='--upload-pack=touch pwned'"),
    ("tpu-vm", dict(repo="--upload-pack=touch pwned"), "--repo='--upload-pack=touch pwned'"),
    ("tpu-vm", dict(repo="ext::sh -c touch% pwned"), "--repo='ext::sh -c touch% pwned'"),
    # A name that looks like an option to gcloud.
    ("tpu-vm", dict(name="--impersonate-service-account=x"), "--name='--impersonate-"),
    # GKE's check matched with `$`, which also matches before a final newline.
    ("gke", dict(name="job1\n"), "--name='job1\\n'"),
    # Unicode digits passed \d (and int() reads them).
    ("gke", dict(tpu_topology="٤x٤"), "--tpu_topology='٤x٤'"),
    ("slurm", dict(time="٢٤:00:00"), "--time='٢٤:00:00'"),
    ("slurm", dict(name="../../etc/x"), "--name='../../etc/x'"),
    ("slurm", dict(out_dir="a\nb"), "--out_dir='a\\nb': use text without control characters"),
    ("gke", dict(tpu_topology="0x4"), "--tpu_topology=0x4 has 0 chips"),
    ("local", dict(port=-1), "--port=-1: use 0 to 65535"),
    ("local", dict(port=65536), "--port=65536: use 0 to 65535"),
    ("local", dict(devices_per_process=0), "--devices_per_process=0: use 1 or more"),
])
def test_other_injection_paths_are_refused(target, overrides, message):
    with pytest.raises(ValueError) as e:
        h.dry_run(target, TRAIN, h.flags(**{**VALID[target], **overrides}))
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


@pytest.mark.parametrize("arg", ["--workdir=gs://b/x\nid", "--x=a\rb", "--x=\x1b]52;c;aWQ=\x07",
                                 "--x=\x00", "--x=\t", "--x=\x85"])
@pytest.mark.parametrize("target", list(VALID))
def test_control_characters_in_the_training_command_are_refused(target, arg):
    with pytest.raises(ValueError) as e:
        h.dry_run(target, [*TRAIN, arg], h.flags(**VALID[target]))
    assert str(e.value) == (f"the training command's argument {arg!r}: use text without "
                            "control characters (newline, tab, escape, …)")


@pytest.mark.parametrize("module", ["launch.pretrain\n", "launch.pretrain;id", "-c", "./x"])
def test_the_module_is_checked_in_full(module):
    with pytest.raises(ValueError, match="must start with the binary's module"):
        h.dry_run("slurm", [module, "--workdir=w"], h.flags())


def test_a_heredoc_ends_only_at_its_own_delimiter(tmp_path):
    text = "a\nEOF\ntouch pwned\nEOF_1\n'EOF'\n  EOF\nEOF_2 \n$(touch pwned)\n\n"
    out = shell.dry_run_text(["touch done"], {"d/f.txt": text})
    assert out.splitlines()[0] == "mkdir -p d && cat > d/f.txt <<'EOF_2'"
    subprocess.run(["bash", "-c", out], cwd=tmp_path, check=True)
    assert (tmp_path / "d" / "f.txt").read_text() == text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "done"]


@pytest.mark.parametrize("value", ["a\nb: c", "x\n---\ny: 1", "'", '"', "\\", "# c", "{a: b}",
                                   "- x", "yes", "null", "1", "ü名\u2028\u0085\U0001f600", "",
                                   " lead", "trail ", "a: b", "&anchor", "*alias", "!tag", "%x",
                                   "@", "`", "\x00\x07\x1b", "\r\n"])
def test_yaml_text_keeps_every_string_one_scalar(value):
    data = {"k": value, value: [value, {"n": 1, value: True}], "e": [], "m": {}}
    text = values.yaml_text(data)
    assert list(yaml.safe_load_all(text)) == [data]


def test_the_binary_refuses_in_one_line(tmp_path):
    p = subprocess.run([sys.executable, "-m", "launch.submit", "--target=slurm",
                        "--name=x\n#SBATCH --wrap=touch pwned", f"--out_dir={tmp_path}",
                        "--dry_run", "--", "launch.pretrain", "--workdir=w"], cwd=h.REPO,
                       env={**os.environ, "PYTHONPATH": str(h.REPO)}, capture_output=True,
                       text=True, timeout=120)
    assert (p.returncode, p.stdout) == (1, "")
    assert p.stderr == (f"error: --name='x\\n#SBATCH --wrap=touch pwned': use "
                        f"{values.SLURM_NAME.allowed}\n")
    assert not list(tmp_path.iterdir())
