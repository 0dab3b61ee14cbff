"""XLNet pretraining (permutation language modelling, two-stream attention) on the embedded corpus.

Run (CPU-sized):

  python -m launch.pretrain --config=launch/configs/xlnet.py:tiny --workdir=workdirs/xlnet_tiny

Measured for `tiny` on the shared 2-core machine (no accelerator) on 2026-11-29, `nice -n 19`
next to other jobs (load average 7-13, so this process got ~5% of the CPU): after 600 steps of
32 x 64 tokens, eval PLM loss 6.481 against the unigram baseline of its targets 6.656 (below it
from step 400: 6.561; step 200: 6.708), eval PLM accuracy 0.051; 60.6 min wall, of which only a
few minutes were CPU time (3.4 min by step 400). Unshared, expect it well within 10 minutes.

Variants: `tiny` (D=128, N=2, H=2, F=512; 64-token pairs, K=6 so ~10 predictions a sequence) and
`base` (XLNet-base shapes: D=768, N=12, H=12, F=3072; 512 tokens, K=6 with 85 predictions, spans
of up to 5 words; the optimisation settings are BERT-base's). The data are BERT's sentence pairs
laid out as XLNet's ``A <sep> B <sep> <cls>`` (``data/plm.py``). Everything can be overridden on
the command line, e.g. `--config.train.steps=100` or `--config.data.plm_k=4`.
"""

import ml_collections

from launch.configs import bert


def _base_config() -> ml_collections.ConfigDict:
    c = bert._base_config()
    c.objective = "plm"
    c.model.arch = "xlnet"
    c.model.preset = "xlnet_base"
    c.data.max_predictions_per_seq = 85  # P ≥ L / K
    # Partial prediction: predict the last 1/K of the factorisation order (XLNet-base: K = 6).
    c.data.plm_k = 6.0
    c.data.plm_max_span = 5  # targets are spans of 1..5 words, length n with probability ∝ 1/n
    c.data.perm_size = 0  # permute within blocks of this many tokens; 0 = the whole sequence
    c.data.whole_word_masking = True  # spans start and end at word boundaries
    return c


def get_config(variant: str = "tiny") -> ml_collections.ConfigDict:
    """`tiny` or `base`."""
    c = _base_config()
    if variant == "tiny":
        c.model.preset = "tiny"
        c.model.dropout_rate = 0.0  # about one pass over the corpus: dropout only slows learning
        c.model.attention_dropout_rate = 0.0
        c.data.max_seq_length = 64
        c.data.max_predictions_per_seq = 12
        c.data.eval_fraction = 0.03
        c.train.steps = 600
        c.train.batch_size = 32
        c.train.learning_rate = 2e-3
        c.train.warmup_steps = 60
        c.train.log_every = 50
        c.train.eval_every = 200
        c.train.eval_batches = 40
        c.train.checkpoint_every = 200
    elif variant != "base":
        raise ValueError(f"unknown variant {variant!r}: use xlnet.py:tiny or :base")
    return c
