"""Pretrain a model. Example:

  python -m launch.pretrain --config=launch/configs/bert.py:tiny --workdir=/tmp/bert_tiny

Running it again on the same workdir resumes from the latest checkpoint (a different config is
refused unless --allow_config_change); a workdir another run is using is refused (a lock left
on another machine: --force_unlock). For several processes (hosts), run the same command on
each with --coordinator_address, --num_processes and --process_id (Slurm and multi-host TPU
slices are detected without them).
"""

from launch import binary

_CONFIG, _WORKDIR = binary.define_flags("launch/configs/bert.py:tiny")
_ALLOW_CONFIG_CHANGE = binary.define_resume_flags()
_FORCE_UNLOCK = binary.define_lock_flag()


def main(argv):
    binary.start(argv)
    from launch.pretraining import run as pretraining
    binary.explain_errors(pretraining.train_and_evaluate, _CONFIG.value, _WORKDIR.value,
                          allow_config_change=_ALLOW_CONFIG_CHANGE.value,
                          force_unlock=_FORCE_UNLOCK.value)


def run():
    """Console-script entry point (`pretrax-pretrain`)."""
    binary.run(main)


if __name__ == "__main__":
    run()
