"""Fine-tune a pretrained encoder (or the same model from scratch) on a task. Example:

  python -m launch.finetune --config=launch/configs/finetune.py:sentiment_rt \
      --config.init_from=workdirs/bert_tiny --workdir=workdirs/sentiment_rt

Without --config.init_from the model trains from scratch. Running it again on the same workdir
resumes (a different config is refused unless --allow_config_change). The best dev checkpoint
is scored on test; results go to WORKDIR/results.json.
"""

from launch import binary

_CONFIG, _WORKDIR = binary.define_flags("launch/configs/finetune.py:sentiment_rt")
_ALLOW_CONFIG_CHANGE = binary.define_resume_flags()
_FORCE_UNLOCK = binary.define_lock_flag()


def main(argv):
    binary.start(argv)
    from launch.finetuning import run as finetuning
    binary.explain_errors(finetuning.finetune, _CONFIG.value, _WORKDIR.value,
                          allow_config_change=_ALLOW_CONFIG_CHANGE.value,
                          force_unlock=_FORCE_UNLOCK.value)


def run():
    """Console-script entry point (`pretrax-finetune`)."""
    binary.run(main)


if __name__ == "__main__":
    run()
