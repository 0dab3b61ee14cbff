"""What every pretrax binary does first: common flags, quiet logs, TF off accelerators, hosts."""

from __future__ import annotations

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags


def define_flags(config_example: str):
    """``--config``, ``--workdir`` and the multi-process flags; returns (config, workdir) holders.

    Call once at module level in a binary.
    """
    config = config_flags.DEFINE_config_file("config", None, "Run config file, e.g. "
                                             f"{config_example}", lock_config=True)
    workdir = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results "
                                  "(shared by all processes).")
    flags.DEFINE_string("coordinator_address", "", "host:port of process 0, for multi-process "
                        "runs JAX does not detect by itself.")
    flags.DEFINE_integer("num_processes", 0, "Processes in the run (with "
                         "--coordinator_address).")
    flags.DEFINE_integer("process_id", -1, "This process, 0..num_processes-1 (with "
                         "--coordinator_address).")
    flags.mark_flags_as_required(["config", "workdir"])
    return config, workdir


def start(argv, *, multiprocess: bool = True) -> None:
    """Checks argv, quiets logging, hides accelerators from TF, joins the other processes
    (``multiprocess``: the binary defined the flags of ``define_flags``)."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # Orbax is chatty at INFO; progress is printed
    # Before anything else touches TensorFlow: keep it quiet and off accelerators (JAX's).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    tf.config.set_visible_devices([], "GPU")
    if not multiprocess:
        return
    from launch import distributed
    f = flags.FLAGS
    distributed.initialize(f.coordinator_address, f.num_processes, f.process_id)


def explain_errors(fn, *args, **kwargs):
    """Runs ``fn``; a ValueError or FileNotFoundError (bad input, a config or checkpoint that does
    not fit) ends the program with its message alone and exit status 1, not a traceback; a run
    that stopped early (``launch.stopping``: preempted, diverged, a failed save) with its own."""
    from launch import stopping
    try:
        return fn(*args, **kwargs)
    except stopping.Stopped as e:
        prefix = "" if isinstance(e, stopping.Preempted) else "error: "
        print(f"{prefix}{e}", file=sys.stderr, flush=True)
        sys.exit(e.exit_status)
    except (ValueError, FileNotFoundError) as e:
        if flags.FLAGS["verbosity"].value >= logging.DEBUG:
            raise  # --verbosity=1 (or more) keeps the traceback for debugging
        sys.exit(f"error: {e}")
