"""The whole pipeline on the embedded data, CPU-sized: pretrain the tiny BERT, fine-tune it and a
from-scratch twin on sentiment_rt and paraphrase_bible, and print the comparison.

  python -m launch.quickstart --workdir=workdirs/quickstart

It is `launch.compare` with launch/configs/compare.py:quick; WORKDIR/report.md has the tables and
plots. Re-running the command continues (or re-reports) what is already done.
"""

from absl import flags

from launch import binary

_WORKDIR = flags.DEFINE_string("workdir", "workdirs/quickstart", "Where everything is written.")
_FORCE_UNLOCK = binary.define_lock_flag()


def main(argv):
    binary.start(argv, multiprocess=False)
    from launch.comparison import run as comparison
    from launch.configs import compare
    binary.explain_errors(comparison.compare, compare.get_config("quick"), _WORKDIR.value,
                          force_unlock=_FORCE_UNLOCK.value)


def run():
    """Console-script entry point (`pretrax-quickstart`)."""
    binary.run(main)


if __name__ == "__main__":
    run()
