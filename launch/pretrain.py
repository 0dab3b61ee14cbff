"""Pretrain a model. Example:

  python -m launch.pretrain --config=launch/configs/bert.py:tiny --workdir=/tmp/bert_tiny

Running it again on the same workdir resumes from the latest checkpoint (a different config is
refused unless --allow_config_change). For several processes
(hosts), run the same command on each with --coordinator_address, --num_processes and
--process_id (Slurm and multi-host TPU slices are detected without them).
"""

from launch import binary

_CONFIG, _WORKDIR = binary.define_flags("launch/configs/bert.py:tiny")
_ALLOW_CONFIG_CHANGE = binary.define_resume_flags()


def main(argv):
    binary.start(argv)
    from launch.pretraining import run as pretraining
    binary.explain_errors(pretraining.train_and_evaluate, _CONFIG.value, _WORKDIR.value,
                          allow_config_change=_ALLOW_CONFIG_CHANGE.value)


def run():
    """Console-script entry point (`pretrax-pretrain`)."""
    binary.run(main)


if __name__ == "__main__":
    run()
