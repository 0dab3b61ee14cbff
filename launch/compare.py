"""Measure what pretraining buys: fine-tune from a pretraining run and from scratch, compare.

  python -m launch.compare --config=launch/configs/compare.py:full --workdir=workdirs/compare

Pretrains (or reuses --config.pretrain_from), fine-tunes every task × label budget × seed from
the checkpoint and from scratch (and after task-adaptive pretraining where asked), and writes
WORKDIR/report.md, results.json and plots. Re-running continues an interrupted comparison.
"""

from launch import binary

_CONFIG, _WORKDIR = binary.define_flags("launch/configs/compare.py:quick")
_FORCE_UNLOCK = binary.define_lock_flag()


def main(argv):
    binary.start(argv)
    from launch.comparison import many
    binary.explain_errors(many.compare, _CONFIG.value, _WORKDIR.value,
                          force_unlock=_FORCE_UNLOCK.value)


def run():
    """Console-script entry point (`pretrax-compare`)."""
    binary.run(main)


if __name__ == "__main__":
    run()
