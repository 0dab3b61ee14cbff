"""Fine-tune a pretrained encoder (or the same model from scratch) on a task. Example:

  python -m launch.finetune --config=launch/configs/finetune.py:sentiment_rt \
      --config.init_from=workdirs/bert_tiny --workdir=workdirs/sentiment_rt

Without --config.init_from the model trains from scratch. Running it again on the same workdir
resumes. The best dev checkpoint is scored on test; results go to WORKDIR/results.json.
"""

from absl import app

from launch import binary

_CONFIG, _WORKDIR = binary.define_flags("launch/configs/finetune.py:sentiment_rt")


def main(argv):
    binary.start(argv)
    from launch import finetuning
    binary.explain_errors(finetuning.finetune, _CONFIG.value, _WORKDIR.value)


def run():
    """Console-script entry point (`pretrax-finetune`)."""
    app.run(main)


if __name__ == "__main__":
    run()
