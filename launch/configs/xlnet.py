"""XLNet pretraining (permutation language modelling, two-stream attention) on the embedded corpus.

Run (CPU-sized):

  python -m launch.pretrain --config=launch/configs/xlnet.py:tiny --workdir=workdirs/xlnet_tiny

Measured for `tiny` on the 2-core, no-accelerator machine, 2026-11-29, idle (load average < 2):
the command above took 6.5 min wall (6.2 min in the loop: 1,800 steps of 32 × 64 tokens at
~10k tokens/s, ~5 steps/s) and ended at eval PLM loss 4.899 against the unigram entropy of its
targets 6.656, eval PLM accuracy 0.195 (step 600: 5.566 / 0.147; step 1,200: 5.071 / 0.180).
A 600-step schedule (lr decayed to 0 by step 600, 2.4 min) only reached 6.481 / 0.051: like the
tiny BERT, the model starts using context only after enough steps at a high learning rate.

Variants: `tiny` (D=128, N=2, H=2, F=512; 64-token pairs, K=6 so ~10 predictions a sequence) and
`base` (XLNet-base shapes: D=768, N=12, H=12, F=3072; 512 tokens, K=6 with 85 predictions, spans
of up to 5 words; the optimisation settings are BERT-base's). The data are BERT's sentence pairs
laid out as XLNet's ``A <sep> B <sep> <cls>`` (``data/plm.py``). Everything can be overridden on
the command line, e.g. `--config.train.steps=100` or `--config.data.plm_k=4`.
"""

import ml_collections

from launch.configs import bert


def _base_config() -> ml_collections.ConfigDict:
    c = bert._base_config()  # the model section: BERT-base's shape is XLNet-base's
    c.objectives = ml_collections.ConfigDict({"plm": 1.0})  # name → weight
    c.model.arch = "xlnet"
    c.model.scan_layers = False  # two-stream attention's layers are not scanned (lm/xlnet.py)
    c.model.attention_impl = "xla"  # unused: XLNet's relative attention has its own einsum path
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
        # Position rows for the 64-token pairs below, no more.
        c.model.update(hidden_size=128, num_layers=2, num_heads=2, mlp_dim=512, max_length=64)
        c.model.dropout_rate = 0.0  # about one pass over the corpus: dropout only slows learning
        c.model.attention_dropout_rate = 0.0
        c.model.dtype = "float32"  # CPU-sized
        c.data.max_seq_length = 64
        c.data.max_predictions_per_seq = 12
        c.data.eval_fraction = 0.03
        c.train.steps = 1800
        c.train.batch_size = 32
        c.train.learning_rate = 2e-3
        c.train.warmup_steps = 100
        c.train.log_every = 50
        c.train.eval_every = 600
        c.train.eval_batches = 40
        c.train.checkpoint_every = 600
    elif variant != "base":
        raise ValueError(f"unknown variant {variant!r}: use xlnet.py:tiny or :base")
    return c
