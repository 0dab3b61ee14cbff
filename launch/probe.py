"""Linear probes on the frozen features of every layer of a workdir's encoder, with the
features' effective rank: what a pretrained encoder holds before any fine-tuning.

  python -m launch.probe --workdir=workdirs/bert_tiny --task=topic_wordnet
  python -m launch.probe --workdir=workdirs/bert_tiny --task=topic_wordnet --init=random  # twin

Any pretraining (BERT, ALBERT, GPT, XLNet) or fine-tuning workdir; any classification or
regression task. Per layer: mean-pooled features, a closed-form ridge probe (λ picked on dev),
its test accuracy (Pearson for regression) beside the majority class, and two feature ranks.
Results go to WORKDIR/probe/<task>[_random]/results.json (or --output).
"""

from absl import flags

from launch import binary

_WORKDIR = flags.DEFINE_string("workdir", None, "A launch.pretrain or launch.finetune workdir.")
_TASK = flags.DEFINE_string("task", "topic_wordnet", "A classification or regression task.")
_INIT = flags.DEFINE_enum("init", "checkpoint", ["checkpoint", "random"],
                          "checkpoint: the workdir's parameters; random: the same architecture "
                          "freshly initialised (the random-init twin).")
_STEP = flags.DEFINE_integer("step", -1, "Pretraining workdirs: the checkpoint (-1: latest).")
_SEED = flags.DEFINE_integer("seed", 0, "Random init and the training subset.")
_TRAIN = flags.DEFINE_integer("max_train_examples", 4000, "Training examples (0: all).")
_EVAL = flags.DEFINE_integer("max_eval_examples", 0, "Dev/test examples (0: all).")
_LENGTH = flags.DEFINE_integer("max_seq_length", 0, "Row length (0: the run's).")
_OUTPUT = flags.DEFINE_string("output", "", "Directory for results.json.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    binary.start(argv, multiprocess=False)
    from launch.evaluation import probing
    enc = binary.explain_errors(probing.load_encoder, _WORKDIR.value, init=_INIT.value,
                                step=_STEP.value, seed=_SEED.value,
                                max_seq_length=_LENGTH.value)
    binary.explain_errors(probing.run, enc, _WORKDIR.value, _TASK.value, output=_OUTPUT.value,
                          init=_INIT.value, max_train_examples=_TRAIN.value,
                          max_eval_examples=_EVAL.value, seed=_SEED.value)


def run():
    """Console-script entry point (`pretrax-probe`)."""
    binary.run(main)


if __name__ == "__main__":
    run()
