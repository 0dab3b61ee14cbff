"""GPT pretraining (causal LM over packed documents) on the embedded corpus.

Run (CPU-sized):

  python -m launch.pretrain --config=launch/configs/gpt.py:tiny --workdir=workdirs/gpt_tiny
  python -m launch.generate --workdir=workdirs/gpt_tiny --prompt="The sea was"

Measured for `tiny` on the 2-core, no-accelerator machine, 2026-11-29, idle (load average < 2):
`python -m launch.pretrain --config=launch/configs/gpt.py:tiny --workdir=DIR` took 4.3 min wall
(4.1 min in the loop: 320 steps of 16 × 128 tokens at ~2.9k tokens/s, 1.4 steps/s). Held-out
perplexity 307.4 (eval loss 5.728, next-token accuracy 0.111) against a unigram perplexity of
666.9 on the same targets; already below it at the first evaluation (step 80: 577.5; step 160:
414.6; step 240: 333.0). Under other jobs (load average 5-9) the same run took 10.4 min.

Variants: `tiny` (D=128, N=2, H=4, F=512, rows of 128 tokens; float32), `small`, `medium` and
`large` (GPT-2's 124M, 355M and 774M shapes: D=768/1024/1280, N=12/24/36, H=12/16/20,
F=3072/4096/5120, 1024 positions; 512 rows of 1024 tokens a batch, lr 6e-4/3e-4/2.5e-4 with 2k
warmup steps), `1b3` and `7b` (GPT-3 XL's and 6.7B's shapes: D=2048/4096, N=24/32, H=16/32,
F=4D, 2,048 tokens, 512/1,024 rows a batch, no dropout, full remat, FSDP over every device). All
but `tiny` compute in bfloat16 with float32 parameters and optimizer state, layers scanned; how
each compiles on TPU topologies (memory, roofline MFU): the README's "Choosing a mesh".

Logged evaluation: `eval/clm_loss` (nats per held-out target token), `eval/perplexity` = exp of
it, `eval/unigram_perplexity` (the training unigram distribution's perplexity on the same
targets: the context-free baseline to beat), `eval/clm_accuracy` (next-token argmax).
"""

import ml_collections
from ml_collections import config_dict

from launch.configs import bert, optimizer_mesh


def _base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.objectives = ml_collections.ConfigDict({"clm": 1.0})  # name → weight
    c.init_from = ""  # continue from another run's parameters (only when the workdir is new)
    c.init_step = config_dict.placeholder(int)  # that run's checkpoint step; None = its latest

    # The model, field by field (GPT-2 small here; the variants below set their shapes):
    # pre-LN, LayerNorm eps 1e-5, tanh GELU (Radford et al. 2019).
    c.model = ml_collections.ConfigDict()
    c.model.arch = "gpt"
    c.model.vocab_size = bert.EMBEDDED_VOCAB_SIZE  # see bert.py
    c.model.hidden_size = 768
    c.model.num_layers = 12
    c.model.num_heads = 12
    c.model.mlp_dim = 3072
    c.model.max_length = 1024  # position rows: the longest input (data.max_seq_length ≤ it)
    c.model.type_vocab_size = 2
    c.model.dropout_rate = 0.1
    c.model.attention_dropout_rate = 0.1
    c.model.activation = "gelu_tanh"
    c.model.norm_position = "pre"
    c.model.layer_norm_eps = 1e-5
    c.model.initializer_range = 0.02
    # Accelerator compute (every variant but tiny), as in bert.py: bfloat16, float32 state.
    c.model.dtype = "bfloat16"
    c.model.scan_layers = True
    c.model.remat = "none"
    c.model.attention_impl = "auto"  # fused where it can be (as in bert.py): 1b3 and 7b

    c.data = ml_collections.ConfigDict()
    c.data.corpus = "embedded"
    c.data.tokenizer = "embedded"
    c.data.tfds_data_dir = ""
    c.data.max_seq_length = 1024
    c.data.eval_fraction = 0.02
    c.data.num_shards = 0
    # Streamed corpora (stream:GLOB, prepared:DIR, mixtures): documents per chunk, the unit
    # that is tokenised and shuffled (docs/pretraining.md, "Corpora larger than memory").
    c.data.stream_chunk_documents = 4096

    c.train = ml_collections.ConfigDict()
    c.train.steps = 600_000
    c.train.batch_size = 512
    c.train.microbatches = 1
    c.train.learning_rate = 6e-4
    c.train.warmup_steps = 2000
    optimizer_mesh.add_optimizer(c.train)
    optimizer_mesh.add_profiling(c.train)
    c.train.weight_decay = 0.1
    c.train.adam_b2 = 0.95
    c.train.adam_eps = 1e-8
    c.train.log_every = 100
    c.train.writers = "jsonl,tensorboard"  # metrics.jsonl, TensorBoard; add ",wandb" for W&B
    c.train.eval_every = 5000
    c.train.eval_batches = 50
    c.train.checkpoint_every = 5000
    c.train.keep_checkpoints = 3

    optimizer_mesh.add_mesh(c)
    return c


# Decoders beyond GPT-2, at GPT-3's shapes (Brown et al. 2020, Table 2.1: XL and 6.7B), with
# 2,048-token rows, no dropout (as large decoders are trained today, and what lets attention run
# fused: docs/performance.md), full remat, and the state sharded over every device (FSDP). With
# the shipped 8,192-id vocabulary they have 1.2B and 6.5B parameters.
_LARGE_DECODERS = {
    "1b3": dict(hidden_size=2048, num_layers=24, num_heads=16, mlp_dim=8192, lr=2e-4,
                batch_size=512),
    "7b": dict(hidden_size=4096, num_layers=32, num_heads=32, mlp_dim=16384, lr=1.2e-4,
               batch_size=1024),
}


def _large_decoder(c: ml_collections.ConfigDict, shape: dict) -> None:
    shape = dict(shape)
    c.train.learning_rate = shape.pop("lr")
    c.train.batch_size = shape.pop("batch_size")
    c.model.update(max_length=2048, dropout_rate=0.0, attention_dropout_rate=0.0, remat="full",
                   **shape)
    c.data.max_seq_length = 2048
    c.train.steps = 300_000
    c.train.warmup_steps = 2000
    c.mesh.data = 1
    c.mesh.fsdp = -1


def get_config(variant: str = "tiny") -> ml_collections.ConfigDict:
    """`tiny`, `small`, `medium`, `large` (GPT-2's shapes), `1b3` or `7b` (GPT-3's)."""
    c = _base_config()
    if variant == "tiny":
        c.model.update(hidden_size=128, num_layers=2, num_heads=4, mlp_dim=512, max_length=128)
        c.model.dropout_rate = 0.0  # well under one pass over the corpus: nothing to regularise
        c.model.attention_dropout_rate = 0.0
        c.model.dtype = "float32"  # CPU: no bfloat16 units; unrolled layers run faster there
        c.model.scan_layers = False
        c.model.attention_impl = "xla"
        c.data.max_seq_length = 128
        c.data.eval_fraction = 0.03
        c.train.steps = 320
        c.train.batch_size = 16
        c.train.learning_rate = 3e-3
        c.train.warmup_steps = 30
        c.train.weight_decay = 0.01
        c.train.log_every = 20
        c.train.eval_every = 80
        c.train.eval_batches = 20
        c.train.checkpoint_every = 80
    elif variant == "medium":
        c.model.update(hidden_size=1024, num_layers=24, num_heads=16, mlp_dim=4096)
        c.train.learning_rate = 3e-4
    elif variant == "large":
        c.model.update(hidden_size=1280, num_layers=36, num_heads=20, mlp_dim=5120)
        c.train.learning_rate = 2.5e-4
    elif variant in _LARGE_DECODERS:
        _large_decoder(c, _LARGE_DECODERS[variant])
    elif variant != "small":
        raise ValueError(f"unknown variant {variant!r}: use gpt.py:tiny, :small, :medium, "
                         ":large, :1b3 or :7b")
    return c
