"""ALBERT pretraining (factorised embedding, one shared layer) with weighted objectives.

Run (CPU-sized):

  python -m launch.pretrain --config=launch/configs/albert.py:tiny --workdir=workdirs/albert_tiny
  python -m launch.pretrain --config=launch/configs/albert.py:tiny_order \
      --workdir=workdirs/albert_tiny_order

`tiny` trains masked LM + sentence-order prediction (SOP), `tiny_order` masked LM + shuffled-
segment order recovery (ERNIE 2.0's sentence reordering). Any mix is a command-line override of
`objectives` (name → weight; weight 0 = not used), e.g. order alone at half weight:
`--config.objectives.mlm=0 --config.objectives.sop=0 --config.objectives.order=0.5`. A run has
at most one sentence task (nsp, sop or order: each builds its own instances) plus, optionally,
mlm. Each objective logs `{name}_loss` and `{name}_accuracy` (and `eval/…`); `loss` is
Σ weight · loss.

Measured (2026-11-29) on the 2-core machine without an accelerator while another long job held
most of both cores, so every time here is inflated several-fold (~0.12 steps/s, ~250 tokens/s,
against ~11k tokens/s for BERT's tiny on an idle machine); the full 1,200-step runs did not fit
the time available. Both were run with `--config.train.steps=600 --config.train.batch_size=32
--config.train.eval_every=600 --config.train.checkpoint_every=300` and stopped early:

* `tiny` (MLM + SOP), stopped at step 150 (36 min wall): train mlm_loss 8.51 / 6.92 / 6.68 and
  sop_accuracy 0.512 / 0.478 / 0.516 at steps 50 / 100 / 150: SOP still at chance.
* `tiny_order` (MLM + order), stopped at step 300 (56 min wall), then evaluated from its
  checkpoint (`--config.train.steps=300 --config.train.eval_batches=30`, 960 held-out instances):
  eval MLM loss 6.766 (unigram baseline 6.703), order accuracy 0.486: k=1 1.000, k=2 0.451,
  k=3 0.000. That is above 1/9 but below chance within k (1/2, 1/6) and below the 0.556 of a
  model that only counts the segments: order recovery above chance is NOT shown yet. The order
  loss trains unsteadily at this learning rate (grad norm 15-26, SOP's ~1); try a lower one.
* Order alone at a lower learning rate (`tiny_order --config.objectives.mlm=0
  --config.data.max_seq_length=32 --config.train.steps=250 --config.train.batch_size=32
  --config.train.learning_rate=5e-4 --config.train.warmup_steps=50 --config.train.eval_batches=20`,
  22 min): eval order accuracy 0.561 on 640 held-out instances (k=1 1.000, k=2 0.476,
  k=3 0.155): it has learned to count the segments (0.556), not yet their order.

Variants: `tiny` / `tiny_order` (E=64, D=128, one layer shared N=4 times, H=2, F=512, 64-token
instances, 1,200 steps of 64), `base` (ALBERT-base: E=128, D=768, N=12, H=12, F=3072, 512 tokens;
BERT's AdamW recipe, not the paper's 4096-sequence LAMB one). ALBERT uses no dropout.
"""

import ml_collections

from launch.configs import bert


def _albert(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """BERT's run config turned into ALBERT's: architecture, objectives, their data options."""
    del c["objective"]  # replaced by the weighted `objectives`
    c.objectives = ml_collections.ConfigDict({"mlm": 1.0, "nsp": 0.0, "sop": 1.0, "order": 0.0})
    c.model.arch = "albert"
    c.model.dropout_rate = 0.0
    c.model.attention_dropout_rate = 0.0
    c.data.sop_swap_prob = 0.5
    # ERNIE 2.0 draws k uniformly in [min, max]; Σ_{k ≤ max} k! classes (9 for max 3).
    c.data.order_min_segments = 1
    c.data.order_max_segments = 3
    return c


def get_config(variant: str = "tiny") -> ml_collections.ConfigDict:
    """`tiny` (MLM + SOP), `tiny_order` (MLM + order recovery) or `base`."""
    if variant in ("tiny", "tiny_order"):
        c = _albert(bert.get_config("tiny"))
        c.model.preset = "albert_tiny"
        if variant == "tiny_order":
            c.objectives.sop = 0.0
            c.objectives.order = 1.0
    elif variant == "base":
        c = _albert(bert.get_config("base"))
        c.model.preset = "albert_base"
    else:
        raise ValueError(f"unknown variant {variant!r}: use albert.py:tiny, :tiny_order or :base")
    return c
