"""Convert between Hugging Face checkpoints and pretrax workdirs. Examples:

  python -m launch.convert --from_hf=bert-dir --workdir=workdirs/bert_hf    # import
  python -m launch.convert --workdir=workdirs/bert_tiny --to_hf=bert-tiny-hf  # export

``--from_hf`` reads a directory saved by transformers' ``save_pretrained`` (``config.json`` +
``model.safetensors``; BERT, ALBERT, GPT-2, XLNet, T5 v1.1, in their common head layouts: it prints
what it loaded and what it initialised) or Google's TF BERT release (``bert_config.json`` +
``bert_model.ckpt.*``) and writes a workdir that ``launch.finetune --config.init_from=WORKDIR``
restores. ``--to_hf`` writes a workdir's checkpoint as ``config.json`` + ``model.safetensors``
for ``AutoModelForPreTraining.from_pretrained``, with its tokenizer (``tokenizer.json`` …, for
``AutoTokenizer`` and transformers' pipelines) and a model card (``README.md``); see
docs/interop.md. Pickled PyTorch files (``pytorch_model.bin``) are refused: nothing here
unpickles.
"""

from absl import app, flags

from launch import binary

_FROM_HF = flags.DEFINE_string("from_hf", None, "A transformers (or TF BERT) checkpoint directory "
                               "to import into --workdir.")
_TO_HF = flags.DEFINE_string("to_hf", None, "A new directory to export --workdir's checkpoint to.")
_WORKDIR = flags.DEFINE_string("workdir", None, "The pretrax workdir (written by --from_hf, read "
                               "by --to_hf).")
_STEP = flags.DEFINE_integer("step", -1, "With --to_hf: the checkpoint step; -1 = the latest.")
_FORCE_UNLOCK = binary.define_lock_flag()
flags.mark_flags_as_required(["workdir"])


def main(argv):
    binary.start(argv, multiprocess=False)
    if (_FROM_HF.value is None) == (_TO_HF.value is None):
        raise app.UsageError("give exactly one of --from_hf=DIR (import) or --to_hf=DIR (export)")
    from launch.conversion import huggingface
    if _FROM_HF.value is not None:
        binary.explain_errors(huggingface.import_hf, _FROM_HF.value, _WORKDIR.value,
                              force_unlock=_FORCE_UNLOCK.value)
    else:
        binary.explain_errors(huggingface.export_hf, _WORKDIR.value, _TO_HF.value,
                              step=_STEP.value)


def run():
    """Console-script entry point (`pretrax-convert`)."""
    binary.run(main)


if __name__ == "__main__":
    run()
