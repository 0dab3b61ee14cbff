"""The training command every worker runs: checked once, then quoted the same way everywhere."""

from __future__ import annotations

import dataclasses
import re
import shlex

from launch.cluster import values

_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
EXAMPLE = ("-- launch.pretrain --config=launch/configs/bert.py:tiny "
           "--workdir=gs://BUCKET/bert_tiny")


@dataclasses.dataclass(frozen=True)
class Source:
    """Where workers get pretrax: a git repository at a ref, or a wheel (a path or gs:// URL)."""
    repo: str = ""
    ref: str = ""
    wheel: str = ""
    jax_extra: str = ""  # e.g. "tpu" → pip install "jax[tpu]" next to pretrax


def parse(argv: list[str]) -> list[str]:
    """The training command given after ``--``: a module (run with ``python -m``) and its flags.

    Raises:
      ValueError: no command, a command that does not start with a module name, an argument
        with a control character, no --workdir, or one of the flags that place a process in the
        run (each target sets those).
    """
    if not argv:
        raise ValueError(f"no training command: end the submission with {EXAMPLE}")
    if not _MODULE.fullmatch(argv[0]) or argv[0] in ("python", "python3"):
        raise ValueError(f"the training command must start with the binary's module, e.g. "
                         f"launch.pretrain (got {argv[0]!r}): end the submission with {EXAMPLE}")
    for arg in argv[1:]:
        values.check_text("the training command's argument ", arg)
    workdir_of(argv)
    own = [a for a in argv if a.split("=")[0] in
           ("--coordinator_address", "--num_processes", "--process_id")]
    if own:
        raise ValueError(f"the training command sets {own[0]}, which differs between workers; "
                         "leave it out: launch.submit has every worker join the run")
    return list(argv)


def workdir_of(argv: list[str]) -> str:
    """The value of ``--workdir`` in the training command.

    Raises:
      ValueError: the command has no --workdir.
    """
    for i, arg in enumerate(argv):
        if arg.startswith("--workdir="):
            return arg.split("=", 1)[1]
        if arg == "--workdir" and i + 1 < len(argv):
            return argv[i + 1]
    raise ValueError(f"the training command {shlex.join(argv)!r} has no --workdir: every worker "
                     "must write to the same one, e.g. --workdir=gs://BUCKET/run")


def require_shared_workdir(argv: list[str], hosts: int | None, target: str) -> None:
    """Several hosts need one workdir they all see: a gs:// path (or, on Slurm, a shared disk).

    Raises:
      ValueError: a local path for a run that may span several hosts (``hosts`` None = unknown).
    """
    workdir = workdir_of(argv)
    if workdir.startswith("gs://") or hosts == 1:
        return
    where = (f"runs on {hosts} hosts" if hosts else
             "may run on several hosts (give --accelerator_type to say it is one)")
    raise ValueError(f"--workdir={workdir} is a local path, but --target={target} {where}, "
                     "which do not share a disk: use --workdir=gs://BUCKET/PATH")


def python_command(python: str, argv: list[str], extra: tuple[str, ...] = ()) -> str:
    """``python -m MODULE ARGS EXTRA`` as one shell line; ``extra`` may hold $VARIABLES."""
    return " ".join([shlex.join([values.PYTHON.check("python", python), "-m", *argv]), *extra])


# The directory above the installed ``launch`` package, where a wheel's paths resolve.
_PACKAGE_PARENT = ("import launch, os; "
                   "print(os.path.dirname(os.path.dirname(launch.__file__)))")


def install_script(source: Source, python: str = "python3") -> tuple[str, str]:
    """(shell lines that install pretrax, the directory to run the training command in).

    The training command's relative paths (``--config=launch/configs/…``) resolve in that
    directory: a git checkout, or the installed package's parent for a wheel.

    Raises:
      ValueError: neither or both of --repo and --wheel, or a value outside its character set.
    """
    if bool(source.repo) == bool(source.wheel):
        raise ValueError("say where workers get pretrax: --repo=GIT_URL [--ref=BRANCH_OR_COMMIT] "
                         "or --wheel=gs://BUCKET/pretrax-0.1.0-py3-none-any.whl (one of them)")
    pip = shlex.join([values.PYTHON.check("python", python), "-m", "pip", "install", "--quiet"])
    # "jax[…]" is written as is: the extra's character set needs no quoting.
    jax = (f' "jax[{values.JAX_EXTRA.check("jax_extra", source.jax_extra)}]"'
           if source.jax_extra else "")
    if source.wheel:
        wheel = values.WHEEL.check("wheel", source.wheel)
        local = "/tmp/" + wheel.rsplit("/", 1)[-1]
        fetch = ["gsutil", "cp"] if wheel.startswith("gs://") else ["cp"]
        where = f'"$({shlex.join([python, "-c", _PACKAGE_PARENT])})"'
        return f"{shlex.join([*fetch, wheel, local])} && {pip} {shlex.quote(local)}{jax}", where
    repo = values.REPO.check("repo", source.repo)
    ref = values.REF.check("ref", source.ref) if source.ref else "HEAD"
    # ~/pretrax stays outside the quotes: the remote shell expands it.
    clone = (f"(test -d ~/pretrax || {shlex.join(['git', 'clone', '--quiet', repo])} ~/pretrax) "
             f"&& cd ~/pretrax && {shlex.join(['git', 'fetch', '--quiet', 'origin', ref])} && "
             "git checkout --quiet FETCH_HEAD")
    return f"{clone} && {pip} -e .{jax}", "~/pretrax"
