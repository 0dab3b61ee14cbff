"""What every pretrax binary does first: common flags, quiet logs, TF off accelerators, hosts."""

from __future__ import annotations

import difflib
import functools
import os
import pathlib
import re
import sys

from absl import app, flags, logging
from ml_collections import config_dict, config_flags

from launch.train import errors

flags.DEFINE_bool(  # read through verbose(), which works before flags are parsed too
    "verbose", False, "On an error, print Python's traceback before the one-line message (it is "
    "also appended to WORKDIR/error.log), and leave Orbax's background errors on stderr.")


def define_flags(config_example: str):
    """``--config``, ``--workdir`` and the multi-process flags; returns (config, workdir) holders.

    Call once at module level in a binary.
    """
    config = define_config_flag(config_example)
    workdir = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results "
                                  "(shared by all processes).")
    flags.DEFINE_string("coordinator_address", "", "host:port of process 0, for multi-process "
                        "runs JAX does not detect by itself.")
    flags.DEFINE_integer("num_processes", 0, "Processes in the run (with "
                         "--coordinator_address).")
    flags.DEFINE_integer("process_id", -1, "This process, 0..num_processes-1 (with "
                         "--coordinator_address).")
    define_cpu_devices_flag(0)
    flags.mark_flag_as_required("workdir")
    return config, workdir


def define_config_flag(config_example: str):
    """``--config`` (required): a run config file, or a shipped one named from any directory
    (``config_path``); returns its holder. ``define_flags`` calls it; binaries without a
    workdir call it alone."""
    config = config_flags.DEFINE_config_file(
        "config", None, f"Run config file, e.g. {config_example}; a path that does not exist "
        "here names a shipped config (bert.py:tiny, launch/configs/bert.py:tiny)",
        lock_config=True)
    flags.FLAGS[config.name].parser = _ShippedConfigParser(flags.FLAGS[config.name].parser)
    flags.mark_flag_as_required("config")
    return config


SHIPPED_CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")


def config_path(spec: str) -> str:
    """``spec`` (``PATH[:ARG]``) as is when PATH exists here (or is absolute), else the shipped
    config it names: ``bert.py:tiny`` or ``launch/configs/bert.py:tiny`` from any directory, and
    from a non-editable install, which has no checkout to be in.

    Raises:
      ValueError: PATH is neither here nor a shipped config (the message lists those).
    """
    path, sep, arg = spec.partition(":")
    if not path or os.path.isabs(path) or os.path.exists(path):
        return spec
    name = os.path.normpath(path).removeprefix(os.path.join("launch", "configs", ""))
    shipped = os.path.join(SHIPPED_CONFIGS, name)
    if os.path.dirname(name) == "" and os.path.isfile(shipped):
        return shipped + sep + arg
    raise ValueError(f"{path}: no such file in {os.getcwd()}, nor a shipped config (those are "
                     f"{', '.join(shipped_configs())}, e.g. --config=bert.py:tiny)")


def shipped_configs() -> list[str]:
    """The run configs (files with a ``get_config``) in the package's ``launch/configs/``."""
    return sorted(p.name for p in pathlib.Path(SHIPPED_CONFIGS).glob("*.py")
                  if "def get_config" in p.read_text(encoding="utf-8"))


class _ShippedConfigParser(flags.ArgumentParser):
    """ml_collections' config-file parser, given ``config_path(spec)`` instead of ``spec``."""

    def __init__(self, parser: flags.ArgumentParser):
        self._parser = parser

    def parse(self, argument):
        return self._parser.parse(config_path(argument))

    def flag_type(self) -> str:
        return self._parser.flag_type()


def define_cpu_devices_flag(default: int):
    """``--cpu_devices`` (read by ``start``)."""
    return flags.DEFINE_integer(
        "cpu_devices", default, "On a machine without an accelerator, split its CPU into this "
        "many JAX devices and run data-parallel over them: each shard's elementwise and layout "
        "work then has a core of its own (the BERT benchmark step on 2 cores: 1,729 -> 1,522 ms "
        "with 2). 0 = JAX's default (1, or XLA_FLAGS' --xla_force_host_platform_device_count); "
        "-1 = one per core. The global batch must divide over them.")


def cpu_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def set_cpu_devices(count: int) -> None:
    """Makes JAX's CPU backend ``count`` devices (0: leave the default; -1: ``cpu_cores()``).

    Must run before JAX starts its backends (the first ``jax.devices()`` or computation); only
    the CPU backend is affected, so on a GPU or TPU host it changes nothing.

    Raises:
      ValueError: for a negative count other than -1, or when JAX's backends already started
        with another count.
    """
    if count == 0:
        return
    if count < -1:
        raise ValueError(f"--cpu_devices={count}: give a device count, 0 (JAX's default) or -1 "
                         "(one per core)")
    count = cpu_cores() if count == -1 else count
    import jax
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError as e:
        raise ValueError(f"--cpu_devices={count}: JAX's backends already started ({e}); set it "
                         "before the first JAX computation") from e


def define_resume_flags():
    """``--allow_config_change`` (binaries that resume a workdir); returns its holder."""
    return flags.DEFINE_bool(
        "allow_config_change", False, "Resume --workdir although this config differs from its "
        "config.json (the old one is kept as config.previous.json). Without it such a run is "
        "refused, except for changes that are safe on resume (run length, logging, evaluation "
        "and checkpoint cadence, device layout; launch/train/workdir.py:SAFE_ON_RESUME).")


def define_lock_flag():
    """``--force_unlock`` (binaries that write a workdir, ``launch/train/lock.py``); returns its
    holder."""
    return flags.DEFINE_bool(
        "force_unlock", False, "Remove --workdir's lock (WORKDIR/.lock) left by a run on another "
        "machine, which cannot be checked from here, and run. Only when that run is surely gone: "
        "two runs on one workdir log every step twice and delete each other's checkpoints. (A "
        "lock of a process gone on this machine is reclaimed without it.)")


def _config_spec(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg in (f"--{name}", f"-{name}") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith((f"--{name}=", f"-{name}=")):
            return arg.split("=", 1)[1]
    return None


def _missing_part(cfg, path: str) -> str | None:
    """The first prefix of the dotted ``path`` that ``cfg`` lacks, or None when it has it."""
    node, parts = cfg, path.split(".")
    for i, part in enumerate(parts):
        if isinstance(node, config_dict.ConfigDict) and part in node:
            node = node[part]
        elif isinstance(node, (list, tuple)) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return ".".join(parts[:i + 1])
    return None


def _keys(cfg, prefix: str = "") -> list[str]:
    out = []
    for k, v in cfg.items():
        out += _keys(v, f"{prefix}{k}.") if isinstance(v, config_dict.ConfigDict) else [
            f"{prefix}{k}"]
    return out


def _hint(missing: str, key: str, keys: list[str], name: str) -> str:
    """The closest key beside ``missing``, else the keys there are."""
    parent, _, part = missing.rpartition(".")
    siblings = sorted({k[len(parent) + 1 if parent else 0:].split(".")[0] for k in keys
                       if not parent or k.startswith(parent + ".")})
    if not siblings:
        return f"{parent} is a single value, not a group of keys"
    close = difflib.get_close_matches(part, siblings, 1, 0.6)
    if close:
        return f"did you mean --{name}.{'.'.join(filter(None, [parent, close[0]]))}" \
               f"{key[len(missing):]}?"
    return f"the keys {'under ' + parent if parent else 'it has'} are {', '.join(siblings)}"


def unknown_config_key(argv: list[str], name: str = "config",
                       flag_values: flags.FlagValues = flags.FLAGS) -> str | None:
    """What is wrong with the first ``--config.KEY=…`` whose KEY the config lacks, with the
    closest key it has; None when there is none (or the config file cannot be loaded)."""
    spec = _config_spec(argv, name)
    if spec is None:
        return None
    try:  # the config flag's own parser loads the file (as --config did)
        cfg = flag_values[name].parser.parse(spec)
    except Exception:  # noqa: BLE001 - any failure to load is absl's to report, not ours
        return None
    keys = _keys(cfg) if isinstance(cfg, config_dict.ConfigDict) else []
    for arg in argv:
        match = re.match(rf"^--?(?:no)?{name}\.([^=]+)", arg)
        missing = match and _missing_part(cfg, match.group(1))
        if not missing:
            continue
        return (f"unknown config key {match.group(1)} in {arg}: {spec} has no {missing}; "
                f"{_hint(missing, match.group(1), keys, name)}")
    return None


def parse_flags(argv: list[str]) -> list[str]:
    """absl's flag parsing, plus a one-line error for a ``--config.KEY`` the config lacks
    (ml_collections raises a bare KeyError/AttributeError with a traceback)."""
    try:
        return app.parse_flags_with_usage(argv)
    except (AttributeError, KeyError, TypeError, IndexError):
        problem = unknown_config_key(argv)
        if problem is None:
            raise
        sys.exit(f"error: {problem}")


def run(main, argv: list[str] | None = None) -> None:
    """``app.run(main)`` with the flag errors of ``parse_flags``, and any exception ``main``
    raises ended in one line (``explain_errors``). ``argv`` defaults to ``sys.argv``."""
    app.run(functools.partial(explain_errors, main), argv=argv, flags_parser=parse_flags)


def start(argv, *, multiprocess: bool = True, tensorflow: bool = True) -> None:
    """Checks argv, quiets logging, hides accelerators from TF (``tensorflow``: the binary reads
    data through tf.data), joins the other processes (``multiprocess``: the binary defined the
    flags of ``define_flags``)."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # Orbax is chatty at INFO; progress is printed
    # Before anything else touches TensorFlow: keep it quiet and off accelerators (JAX's).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if tensorflow:
        import tensorflow as tf
        tf.config.set_visible_devices([], "GPU")
    if "cpu_devices" in flags.FLAGS:
        try:
            set_cpu_devices(flags.FLAGS.cpu_devices)
        except ValueError as e:
            raise app.UsageError(str(e)) from e
    errors.route_background_errors(_flag("workdir"), verbose=verbose())
    if not multiprocess:
        return
    from launch.train import distributed
    f = flags.FLAGS
    distributed.initialize(f.coordinator_address, f.num_processes, f.process_id)


def verbose() -> bool:
    """``--verbose``, or absl's ``--verbosity=1`` (or more): show tracebacks."""
    return bool(_flag("verbose")) or _flag("verbosity") >= logging.DEBUG


def _flag(name: str):
    """A flag's value (its default before parsing), or None where no binary defined it."""
    return flags.FLAGS[name].value if name in flags.FLAGS else None


def explain_errors(fn, *args, **kwargs):
    """Runs ``fn``; ANY exception ends the program with one line on stderr (``errors.explain``) and
    its exit status, instead of a traceback (``--verbose`` prints the traceback first).
    ``app.UsageError`` passes (absl prints the usage), and so does ``SystemExit``."""
    try:
        return fn(*args, **kwargs)
    except app.UsageError:
        raise
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - one line for every exception
        message, status = errors.explain(e, _flag("workdir"), verbose=verbose())
        _end(e, message, status)


def _end(error: BaseException, message: str, status: int):
    if verbose():
        sys.stderr.write(errors.traceback_text(error))
    # One write with its newline: print() writes the text and the newline separately, and a
    # background thread (Orbax's, after a failed save) could land between them.
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    sys.exit(status)


