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

Measured (2026-11-29) on the 2-core machine without an accelerator, shared with other jobs (load
average 7-13, so times are inflated ~4x; about 0.2-0.4 steps/s against ~1.8 on an idle machine):

* `tiny_order` (MLM + order recovery), the command above: held-out evaluation at step 300 (of
  1,200): order accuracy 0.849, by segment count k=1 1.000, k=2 0.954, k=3 0.588, against chance
  1/k! = 1, 0.5, 0.167; order loss 0.353 (uniform over each k's classes: 0.828); MLM loss 6.703
  (unigram baseline 6.715). Before the segment-edge head (``heads.SegmentOrderHead``), a
  [CLS]-only head stayed exactly at chance: order alone, 600 steps of 32 × 32 tokens, eval k=2
  0.517, k=3 0.147. The edge head on that same run: eval k=2 0.928, k=3 0.513 at step 400.
* `tiny` (MLM + SOP), `--config.train.steps=300 --config.train.eval_every=150` (23.2 min wall):
  eval MLM loss 6.556 against the unigram baseline 6.695, MLM accuracy 0.073; SOP accuracy 0.522
  (chance 0.5). At this learning rate (2e-3, bert.py:tiny's) SOP stays at chance (0.493 after
  600 steps; 0.487 at step 2,000 of 3,000, MLM at the unigram level); at
  `--config.train.learning_rate=5e-4 --config.train.steps=3000 --config.train.warmup_steps=250`
  it reached 0.697 by step 500 and 0.756 at 3,000 (MLM loss 6.156; 2026-12-03).

Variants: `tiny` / `tiny_order` (E=64, D=128, one layer shared N=4 times, H=2, F=512, 64-token
instances, 1,200 steps of 64), `base` (ALBERT-base: E=128, D=768, N=12, H=12, F=3072, 512 tokens;
BERT's AdamW recipe, not the paper's 4096-sequence LAMB one). ALBERT uses no dropout.
"""

import ml_collections

from launch.configs import bert


def _albert(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """BERT's run config turned into ALBERT's: architecture, objectives, their data options."""
    c.objectives = ml_collections.ConfigDict({"mlm": 1.0, "nsp": 0.0, "sop": 1.0, "order": 0.0})
    c.model.arch = "albert"
    c.model.embed_dim = 128  # E: the token embedding's width, projected to D (ALBERT-base)
    c.model.dropout_rate = 0.0
    c.model.attention_dropout_rate = 0.0
    c.data.sop_swap_prob = 0.5
    # ERNIE 2.0 draws k uniformly in [min, max]; Σ_{k ≤ max} k! classes (9 for max 3).
    c.data.order_min_segments = 1
    c.data.order_max_segments = 3
    # Order passages that start and end mid-sentence, so no capital letter or full stop marks
    # the first or last segment (the shortcut that solved k = 2 from sentence-initial text).
    c.data.order_mid_sentence = False
    return c


def get_config(variant: str = "tiny") -> ml_collections.ConfigDict:
    """`tiny` (MLM + SOP), `tiny_order` (MLM + order recovery) or `base`."""
    if variant in ("tiny", "tiny_order"):
        c = _albert(bert.get_config("tiny"))  # its 64-token instances and position rows
        c.model.update(embed_dim=64, hidden_size=128, num_layers=4, num_heads=2, mlp_dim=512)
        if variant == "tiny_order":
            c.objectives.sop = 0.0
            c.objectives.order = 1.0
    elif variant == "base":
        c = _albert(bert.get_config("base"))  # BERT-base's shape, with E = 128
    else:
        raise ValueError(f"unknown variant {variant!r}: use albert.py:tiny, :tiny_order or :base")
    return c
