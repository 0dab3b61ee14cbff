"""Continue prompts with a GPT pretraining run's latest checkpoint. Examples:

  python -m launch.generate --workdir=workdirs/gpt_tiny --prompt="The sea was" \
      --prompt="And God said"                                     # greedy, one batch
  python -m launch.generate --workdir=workdirs/gpt_tiny --prompt="The sea was" \
      --method=sample --temperature=0.8 --top_k=40 --top_p=0.95
  python -m launch.generate --workdir=workdirs/gpt_tiny --prompt="The sea was" \
      --method=beam --beam_width=4 --length_penalty=0.6

A T5 workdir (pretraining, or seq2seq fine-tuning: its best dev checkpoint) decodes each prompt
as a source instead (translation, summary, answer), with the same flags:

  python -m launch.generate --workdir=workdirs/es_en --prompt="En el principio" --method=beam

Decoding uses a KV cache and one compiled loop; it stops at </s> or after --max_new_tokens.
Options out of range are refused in one line naming the flag, before the checkpoint is read.
"""

from absl import flags

from launch import binary

_WORKDIR = flags.DEFINE_string("workdir", None, "A GPT or T5 launch.pretrain workdir, or a "
                                "seq2seq launch.finetune one.")
_PROMPT = flags.DEFINE_multi_string("prompt", None, "Text to continue (repeat for a batch).")
_METHOD = flags.DEFINE_enum("method", "greedy", ["greedy", "sample", "beam"], "Decoding.")
_TEMPERATURE = flags.DEFINE_float("temperature", 1.0, "Sampling temperature, > 0 "
                                  "(--method=sample).")
_TOP_K = flags.DEFINE_integer("top_k", 0, "Sample from the k likeliest tokens (0 = all; at most "
                             "the vocabulary).")
_TOP_P = flags.DEFINE_float("top_p", 1.0, "Nucleus: the likeliest tokens holding this mass, "
                            "0 < p <= 1 (the likeliest token always stays).")
_BEAM_WIDTH = flags.DEFINE_integer("beam_width", 4, "Beams, >= 1 (--method=beam).")
_LENGTH_PENALTY = flags.DEFINE_float("length_penalty", 0.6, "GNMT alpha (--method=beam).")
_MAX_NEW = flags.DEFINE_integer("max_new_tokens", 40, "Tokens to add at most, >= 1; the longest "
                                "prompt plus these must fit the model's positions.")
_SEED = flags.DEFINE_integer("seed", 0, "Sampling seed, 0 to 2**32 - 1.")
_STEP = flags.DEFINE_integer("step", -1, "Checkpoint step; -1 = the latest.")
flags.mark_flags_as_required(["workdir", "prompt"])


def main(argv):
    binary.start(argv, multiprocess=False)
    from launch.generation import run as generating
    binary.explain_errors(
        generating.generate_from_workdir, _WORKDIR.value, _PROMPT.value, step=_STEP.value,
        method=_METHOD.value, max_new_tokens=_MAX_NEW.value, temperature=_TEMPERATURE.value,
        top_k=_TOP_K.value, top_p=_TOP_P.value, beam_width=_BEAM_WIDTH.value,
        length_penalty=_LENGTH_PENALTY.value, seed=_SEED.value)


def run():
    """Console-script entry point (`pretrax-generate`)."""
    binary.run(main)


if __name__ == "__main__":
    run()
