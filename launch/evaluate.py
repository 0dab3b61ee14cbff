"""Score a fine-tuned model (its best dev checkpoint) on a task split or on your own file.

  python -m launch.evaluate --workdir=workdirs/sentiment_rt                # its task's test split
  python -m launch.evaluate --workdir=workdirs/sentiment_rt --data=reviews.tsv \
      --text_column=text --label_column=label                              # your labelled file

The file's labels must be the ones the model was trained with (e.g. positive/negative).
A seq2seq workdir (translation, summarisation, generative QA) generates and scores outputs
(BLEU/chrF, ROUGE or EM/F1 as its task's kind says), writing predictions.jsonl:

  python -m launch.evaluate --workdir=workdirs/es_en --data=pairs.tsv   # columns source, target

Classification adds per-class precision/recall/F1, macro-F1, balanced accuracy, the confusion
matrix, the majority-class baseline, calibration (ECE, reliability.png) and predictions.jsonl.
A pretraining workdir is scored intrinsically, each figure beside its context-free baseline:

  python -m launch.evaluate --workdir=workdirs/bert_tiny     # MLM/PLM/sentence objectives,
                                                            # pseudo-perplexity (encoders)
  python -m launch.evaluate --workdir=workdirs/gpt_tiny --text=book.txt    # GPT: perplexity
Results go to WORKDIR/eval/<task, file name or heldout>/results.json (or --output).
"""

import contextlib

from absl import flags

from launch import binary

_WORKDIR = flags.DEFINE_string("workdir", None, "A launch.finetune or launch.pretrain workdir.")
_TASK = flags.DEFINE_string("task", "", "Score this task instead of the one trained on.")
_SPLIT = flags.DEFINE_enum("split", "test", ["dev", "test"], "Which split of the task.")
_DATA = flags.DEFINE_string("data", "", "A TSV/CSV/JSONL file (local or gs://) to score "
                            "instead of a task.")
_TEXT = flags.DEFINE_string("text_column", "text", "Column with the text (--data).")
_TEXT_B = flags.DEFINE_string("text_b_column", "", "Column with the second text of a pair.")
_LABEL = flags.DEFINE_string("label_column", "label", "Column with the label (--data).")
_SOURCE = flags.DEFINE_string("source_column", "source", "Seq2seq: the source column (--data).")
_TARGET = flags.DEFINE_string("target_column", "target", "Seq2seq: the target column (--data).")
_FORMAT = flags.DEFINE_enum("format", "", ["", "tsv", "csv", "jsonl"],
                            "File format; default: from the extension.")
_TEXT_FILE = flags.DEFINE_string("text", "", "GPT workdirs: text to score (a corpus spec: "
                                 "file, glob, 'embedded'); default: the run's held-out split.")
_STEP = flags.DEFINE_integer("step", -1, "Pretraining workdirs: the checkpoint (-1: latest).")
_PPPL = flags.DEFINE_integer("pppl_sequences", 32, "Encoders with MLM: held-out sequences "
                             "scored by pseudo-perplexity (one forward row per token; 0: none).")
_OUTPUT = flags.DEFINE_string("output", "", "Directory for results.json (then the workdir is "
                              "only read, and not locked).")
_FORCE_UNLOCK = binary.define_lock_flag()
flags.mark_flags_as_required(["workdir"])


def main(argv):
    binary.start(argv, multiprocess=False)
    from launch.train import lock
    # Results go into the workdir unless --output: no other run may be writing it meanwhile.
    with (contextlib.nullcontext() if _OUTPUT.value else binary.explain_errors(
            lock.acquire, _WORKDIR.value, force=_FORCE_UNLOCK.value)):
        _evaluate()


def _evaluate():
    from launch.evaluation import route
    binary.explain_errors(
        route.evaluate, _WORKDIR.value, text=_TEXT_FILE.value, output=_OUTPUT.value,
        step=_STEP.value, pppl_sequences=_PPPL.value, task=_TASK.value, split=_SPLIT.value,
        data=_DATA.value, text_column=_TEXT.value, text_b_column=_TEXT_B.value,
        label_column=_LABEL.value, fmt=_FORMAT.value, source_column=_SOURCE.value,
        target_column=_TARGET.value)


def run():
    """Console-script entry point (`pretrax-evaluate`)."""
    binary.run(main)


if __name__ == "__main__":
    run()
