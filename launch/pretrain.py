"""Pretrain a model. Example:

  python -m launch.pretrain --config=launch/configs/bert.py:tiny --workdir=/tmp/bert_tiny

Running it again on the same workdir resumes from the latest checkpoint. For several processes
(hosts), run the same command on each with --coordinator_address, --num_processes and
--process_id (Slurm and multi-host TPU slices are detected without them).
"""

import os

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Run config file, e.g. "
                                          "launch/configs/bert.py:tiny", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs and results "
                               "(shared by all processes).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", "", "host:port of process 0, for "
                                   "multi-process runs JAX does not detect by itself.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 0, "Processes in the run (with "
                                      "--coordinator_address).")
_PROCESS_ID = flags.DEFINE_integer("process_id", -1, "This process, 0..num_processes-1 (with "
                                   "--coordinator_address).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)  # Orbax is chatty at INFO; progress is printed
    # Before anything else touches TensorFlow: keep it quiet and off accelerators (JAX's).
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    tf.config.set_visible_devices([], "GPU")
    from launch import distributed, pretraining
    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    pretraining.train_and_evaluate(_CONFIG.value, _WORKDIR.value)


def run():
    """Console-script entry point (`pretrax-pretrain`)."""
    app.run(main)


if __name__ == "__main__":
    run()
