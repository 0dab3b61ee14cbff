"""Train-step throughput of the T5 family (lm/t5.py) in target tokens/s, on this machine.

One jitted step (forward, the seq2seq loss of objectives/seq2seq.py, backward, AdamW with
clipping, state donated) on a random batch already on the device; after two warm-up steps,
``--rounds`` rounds of ``--steps`` steps, each timed with ``block_until_ready``; the median round
gives the figure. The process's CPU time per step gives a second one, less dependent on other
jobs: the rate if every core ran this step alone and fully busy (an upper bound when a machine is
shared). The pretraining binary does not run T5 yet (its input pipeline is separate), so
this stands in for ``launch.benchmark`` until it does. Shapes: ``t5.py:tiny`` by default; the
flags change them. Example (the figures in docs/families.md):

  nice -n 10 python scripts/t5_step_rate.py --batch=64 --source=64 --target=64
  nice -n 10 python scripts/t5_step_rate.py --d_model=256 --layers=3 --heads=4 --mlp=1024
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import flax.linen as nn  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from launch.configs import t5 as t5_configs  # noqa: E402
from launch.train import modeling  # noqa: E402
from lm.models import make_model  # noqa: E402
from objectives import seq2seq, total_loss  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in (("batch", 64), ("source", 64), ("target", 64), ("d_model", 0),
                          ("layers", 0), ("heads", 0), ("mlp", 0), ("vocab", 8192),
                          ("steps", 5), ("rounds", 5)):
        p.add_argument(f"--{name}", type=int, default=default)
    a = p.parse_args()
    cfg = t5_configs.get_config("tiny")
    if a.d_model:
        cfg.model.update(hidden_size=a.d_model, head_dim=a.d_model // a.heads)
    for field, value in (("num_layers", a.layers), ("num_decoder_layers", a.layers),
                         ("num_heads", a.heads), ("mlp_dim", a.mlp)):
        if value:
            cfg.model[field] = value
    cfg.model.vocab_size = a.vocab
    config = modeling.model_config(cfg, a.vocab)
    model = make_model("t5", config)
    rng = np.random.default_rng(0)
    batch = {"encoder_input_ids": rng.integers(7, a.vocab, (a.batch, a.source), dtype=np.int32),
             "decoder_input_ids": rng.integers(7, a.vocab, (a.batch, a.target), dtype=np.int32),
             "decoder_target_ids": rng.integers(7, a.vocab, (a.batch, a.target), dtype=np.int32),
             "decoder_weights": np.ones((a.batch, a.target), np.float32)}
    params = nn.unbox(jax.jit(model.init)(jax.random.key(0), batch)["params"])
    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(1e-3, weight_decay=0.01))
    state = (params, tx.init(params))

    def step(state, batch):
        def loss_fn(p):
            return total_loss(seq2seq(model.apply({"params": p}, batch), batch)[0])
        loss, grads = jax.value_and_grad(loss_fn)(state[0])
        updates, opt = tx.update(grads, state[1], state[0])
        return (optax.apply_updates(state[0], updates), opt), loss

    step = jax.jit(step, donate_argnums=0)
    for _ in range(2):
        state, loss = step(state, batch)
    jax.block_until_ready(loss)
    times, cpu = [], []
    for _ in range(a.rounds):
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(a.steps):
            state, loss = step(state, batch)
        jax.block_until_ready(loss)
        times.append((time.perf_counter() - start) / a.steps)
        cpu.append((time.process_time() - start_cpu) / a.steps)
    ms, cpu_s = statistics.median(times) * 1e3, statistics.median(cpu)
    count = sum(x.size for x in jax.tree.leaves(params))
    print(f"D={config.hidden_size} layers={config.num_layers}+{config.decoder_layers} "
          f"H={config.num_heads} F={config.mlp_dim} V={a.vocab} params={count:,} "
          f"batch={a.batch} source={a.source} target={a.target}: {ms:.1f} ms/step, "
          f"{a.batch * a.target / ms * 1e3:,.0f} target tokens/s "
          f"(rounds {', '.join(f'{t * 1e3:.0f}' for t in times)} ms; loss {float(loss):.3f}; "
          f"load average {os.getloadavg()[0]:.1f}); CPU time {cpu_s:.1f} s/step: "
          f"{a.batch * a.target / cpu_s * os.cpu_count():,.0f} target tokens/s on "
          f"{os.cpu_count()} cores busy with this alone")


if __name__ == "__main__":
    main()
