"""pretrax as a user installs it: shipped configs found from any directory, and a non-editable
install (a wheel's files, no checkout) running a console script with a shipped config."""

import importlib.metadata
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from launch import binary

REPO = pathlib.Path(__file__).resolve().parents[1]
BERT = os.path.join(binary.SHIPPED_CONFIGS, "bert.py")


@pytest.mark.parametrize("spec,want", [
    ("bert.py:tiny", f"{BERT}:tiny"),
    ("launch/configs/bert.py:tiny", f"{BERT}:tiny"),
    ("gpt.py", os.path.join(binary.SHIPPED_CONFIGS, "gpt.py")),
    ("finetune.py:sentiment_rt:x", os.path.join(binary.SHIPPED_CONFIGS,
                                                "finetune.py:sentiment_rt:x")),
])
def test_a_path_not_here_names_a_shipped_config(spec, want, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert binary.config_path(spec) == want


def test_a_file_here_comes_before_a_shipped_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bert.py").write_text("def get_config(v):\n    return {}\n")
    assert binary.config_path("bert.py:tiny") == "bert.py:tiny"
    assert binary.config_path(f"{tmp_path}/x.py:a") == f"{tmp_path}/x.py:a"  # absolute: as is


@pytest.mark.parametrize("spec", ["nope.py:tiny", "../configs/bert.py", "launch/bert.py",
                                  "launch/configs/../binary.py"])
def test_a_path_neither_here_nor_shipped_is_refused_with_the_shipped_list(spec, tmp_path,
                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as e:
        binary.config_path(spec)
    path = spec.split(":")[0]
    assert str(e.value) == (
        f"{path}: no such file in {tmp_path}, nor a shipped config (those are albert.py, "
        "bert.py, compare.py, finetune.py, gpt.py, t5.py, xlnet.py, e.g. --config=bert.py:tiny)")


def _copy_of_the_checkout(dest: pathlib.Path) -> pathlib.Path:
    """The checkout's files as git sees them (tracked, and new ones not ignored): no venv, no
    build output, so the install below builds from sources only and leaves the checkout as is."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=REPO, capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():  # a tracked file deleted in the work tree is skipped
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


def _build_isolation() -> list[str]:
    """Build with this environment's setuptools when it is new enough (nothing to download)."""
    try:
        new_enough = int(importlib.metadata.version("setuptools").split(".")[0]) >= 77
    except importlib.metadata.PackageNotFoundError:
        new_enough = False
    return ["--no-build-isolation"] if new_enough else []


def test_a_non_editable_install_runs_a_shipped_config_from_any_directory(tmp_path):
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs the git checkout (its file list) to copy from")
    src, site, elsewhere = tmp_path / "src", tmp_path / "site", tmp_path / "elsewhere"
    _copy_of_the_checkout(src)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                    *_build_isolation(), "--target", str(site), str(src)],
                   check=True, cwd=tmp_path, timeout=300)
    shutil.rmtree(src)  # nothing may come from the sources any more
    for shipped in ("tasks/seq2seq/summarization_debian_desc.jsonl.gz",
                    "corpora/seq2seq/bible_en_train.txt.gz", "tokenizers/bible_es_en_8k.model"):
        assert (site / "data" / shipped).is_file(), shipped
    elsewhere.mkdir()
    # Only the installed files: no checkout on the path (the dependencies come from this venv).
    env = {**os.environ, "PYTHONPATH": str(site), "JAX_PLATFORMS": "cpu", "XLA_FLAGS": ""}
    where = subprocess.run([sys.executable, "-c", "import launch; print(launch.__file__)"],
                           cwd=elsewhere, env=env, capture_output=True, text=True, check=True)
    assert where.stdout.strip() == str(site / "launch" / "__init__.py")
    out = subprocess.run(
        [str(site / "bin" / "pretrax-pretrain"), "--config=bert.py:tiny", "--workdir=run",
         "--config.train.steps=2", "--config.train.eval_batches=1"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Done: 2 steps" in out.stdout
    assert (elsewhere / "run" / "results.json").exists()
    assert sorted(os.listdir(elsewhere)) == ["run"]


def test_the_dockerfile_installs_extras_pyproject_declares():
    """The image launch.submit --image uses: the checkout installed with a JAX extra."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^ARG JAX_EXTRA=tpu$", text, re.M)
    assert set(re.findall(r"JAX_EXTRA=(\w+)", text)) == {"tpu", "cuda12"} <= set(extras)
    assert re.search(r'^RUN pip install --no-cache-dir "\.\[\$\{JAX_EXTRA\}\]"$', text, re.M)
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert {".git", ".venv", "workdirs"} <= set(ignored)  # a context of sources only


def test_package_data_globs_ship_every_data_file():
    """Every file under data/tasks, data/corpora and data/tokenizers (the seq2seq subfolders
    included) matches a package-data glob of pyproject.toml, with glob's semantics (setuptools':
    ``*`` never crosses ``/``), so a pip install has them."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["data"]
    root = REPO / "data"
    shipped = {p for g in globs for p in root.glob(g)}
    present = {p for d in ("tasks", "corpora", "tokenizers") for p in (root / d).rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".py"}
    assert present - shipped == set()
    for name in ("tasks/seq2seq/translation_bible_es_en.tsv.gz",
                 "tasks/seq2seq/summarization_debian_desc.jsonl.gz",
                 "corpora/seq2seq/bible_es_train.txt.gz", "tokenizers/bible_es_en_8k.model",
                 "tokenizers/bible_es_en_8k.manifest.json"):
        assert root / name in shipped
