"""The jitted train and eval steps (plain functions, no trainer class) and metric reduction."""

from __future__ import annotations

import functools
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from launch.train import mesh as mesh_lib
from launch.train import modeling
from launch.train.train_state import TrainState
from objectives import registry, total_loss


def _forward(model, objective, params, batch, *, deterministic, rng, objective_kw):
    rngs = None if deterministic else {"dropout": rng}
    outputs = model.apply({"params": params}, batch, deterministic=deterministic, rngs=rngs)
    return objective(outputs, batch, **objective_kw)


def _split_microbatches(batch: dict, microbatches: int) -> dict:
    """[B, ...] → [microbatches, B / microbatches, ...] for every key.

    Microbatch i takes rows i, i + k, i + 2k, …: each device's contiguous slice of the batch
    then holds an equal part of every microbatch, so no microbatch waits on a subset of devices.
    """
    def split(x):
        if x.shape[0] % microbatches:
            raise ValueError(f"batch of {x.shape[0]} does not split into {microbatches} "
                             "microbatches; make train.batch_size a multiple of train.microbatches")
        return x.reshape(x.shape[0] // microbatches, microbatches, *x.shape[1:]).swapaxes(0, 1)
    return jax.tree_util.tree_map(split, batch)


def grads_and_metrics(params, batch: dict, rng: jax.Array, *, model, objective, objective_kw,
                      microbatches: int = 1):
    """Gradients of `total_loss` over the whole batch, optionally accumulated over microbatches.

    Exact: every term is divided by its weight over the WHOLE batch (weights come from the batch
    alone, so they are known before any microbatch runs), and the per-microbatch gradients of
    those partial losses sum to the full-batch gradient.

    Returns:
      (loss, grads, metrics) with metrics as summed (sum, weight) pairs.
    """
    def partial_loss(p, mb, key, weights):
        terms, metrics = _forward(model, objective, p, mb, deterministic=False, rng=key,
                                  objective_kw=objective_kw)
        if weights is None:
            return total_loss(terms), metrics
        return sum(s / jnp.maximum(weights[k], 1e-8) for k, (s, _) in terms.items()), metrics

    grad_fn = jax.value_and_grad(partial_loss, has_aux=True)
    if microbatches == 1:
        (loss, metrics), grads = grad_fn(params, batch, rng, None)
        return loss, grads, metrics
    # Term weights of the full batch: run the objective on zero outputs of the right shapes;
    # XLA keeps only the weight sums.
    shapes = jax.eval_shape(lambda p: model.apply({"params": p}, batch), params)
    zeros = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
    weights = {k: w for k, (_, w) in objective(zeros, batch, **objective_kw)[0].items()}

    def accumulate(carry, xs):
        mb, index = xs
        (loss, metrics), grads = grad_fn(params, mb, jax.random.fold_in(rng, index), weights)
        return jax.tree_util.tree_map(jnp.add, carry, (loss, grads, metrics)), None

    mbs = _split_microbatches(batch, microbatches)
    first = jax.tree_util.tree_map(lambda x: x[0], mbs)
    zero = jax.tree_util.tree_map(jnp.zeros_like, jax.eval_shape(
        lambda: grad_fn(params, first, rng, weights)))
    zero = (zero[0][0], zero[1], zero[0][1])
    (loss, grads, metrics), _ = jax.lax.scan(accumulate, zero,
                                             (mbs, jnp.arange(microbatches)))
    return loss, grads, metrics


def train_step(state: TrainState, batch: dict, rng: jax.Array, *, model, tx, objective,
               objective_kw, microbatches: int = 1,
               max_nonfinite_steps: int = 1) -> tuple[TrainState, dict]:
    """One optimizer update. Returns the new state and this step's metric (sum, weight) pairs.

    A step whose loss or gradient norm is NaN/Inf changes neither the parameters nor the
    optimizer state: it is counted in ``skipped_steps`` and its metrics get weight 0. After
    ``max_nonfinite_steps`` such steps in a row the state is halted (``nonfinite_run`` ≥ it) and
    no later step updates it. All on device: the host looks at the counters only when it logs,
    evaluates or saves (``halt_if_diverged``). The dropout key is ``rng`` folded with the step,
    so a resumed run draws the same masks as one that never stopped.
    """
    step_rng = jax.random.fold_in(rng, state.step)
    loss, grads, metrics = grads_and_metrics(
        state.params, batch, step_rng, model=model, objective=objective,
        objective_kw=objective_kw, microbatches=microbatches)
    grad_norm = optax.tree.norm(grads)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    apply = finite & (state.nonfinite_run < max_nonfinite_steps)
    keep = functools.partial(jax.tree_util.tree_map, lambda new, old: jnp.where(apply, new, old))
    metrics = dict(metrics)
    metrics["loss"] = (loss, jnp.ones((), jnp.float32))
    metrics["grad_norm"] = (grad_norm, jnp.ones((), jnp.float32))
    metrics = jax.tree_util.tree_map(lambda x: jnp.where(apply, x, jnp.zeros_like(x)), metrics)
    new_state = TrainState(
        step=state.step + 1, params=keep(params, state.params),
        opt_state=keep(opt_state, state.opt_state),
        skipped_steps=state.skipped_steps + (~apply).astype(jnp.int32),
        nonfinite_run=jnp.where(apply, 0, state.nonfinite_run + 1).astype(jnp.int32))
    return new_state, metrics


def eval_step(params, batch: dict, *, model, objective, objective_kw) -> dict:
    """Metric (sum, weight) pairs of one batch, without dropout."""
    _, metrics = _forward(model, objective, params, batch, deterministic=True, rng=None,
                          objective_kw=objective_kw)
    return metrics


def jit_steps(cfg, model, tx, state_shardings, mesh, rules, *,
              objective: str = "") -> tuple[Callable, Callable]:
    """The train and eval steps jitted with explicit shardings (the state donated), not yet run
    under the mesh: ``compile_steps`` for running them, ``.lower(...)`` for compiling ahead of
    time (launch/compiling/).

    ``objective`` names a fine-tuning kind's record in ``objectives.OBJECTIVES``; by default the
    run's pretraining objectives (``modeling.run_objective``), counting segments by the model's
    ``sep_id`` like its heads.
    """
    objective = (registry.get(objective).loss if objective
                 else modeling.run_objective(cfg, sep_id=model.config.sep_id))
    if cfg.train.max_nonfinite_steps < 1:
        raise ValueError(f"train.max_nonfinite_steps={cfg.train.max_nonfinite_steps}: use 1 or "
                         "more (the NaN/Inf steps in a row after which training stops)")
    kw = dict(label_smoothing=cfg.train.label_smoothing, z_loss=cfg.train.z_loss)
    batch_sh = mesh_lib.batch_sharding(mesh, rules)
    replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
    train = jax.jit(
        functools.partial(train_step, model=model, tx=tx, objective=objective, objective_kw=kw,
                          microbatches=cfg.train.microbatches,
                          max_nonfinite_steps=cfg.train.max_nonfinite_steps),
        in_shardings=(state_shardings, batch_sh, replicated),
        out_shardings=(state_shardings, replicated), donate_argnums=(0,))
    evaluate = jax.jit(
        functools.partial(eval_step, model=model, objective=objective,
                          objective_kw={"label_smoothing": 0.0, "z_loss": 0.0}),
        in_shardings=(state_shardings.params, batch_sh), out_shardings=replicated)
    return train, evaluate


def compile_steps(cfg, model, tx, state_shardings, mesh, rules, *,
                  objective: str = "") -> tuple[Callable, Callable]:
    """``jit_steps``' train and eval steps, each run under the mesh and the logical rules."""
    train, evaluate = jit_steps(cfg, model, tx, state_shardings, mesh, rules,
                                objective=objective)
    return in_mesh(train, mesh, rules), in_mesh(evaluate, mesh, rules)


def in_mesh(fn: Callable, mesh, rules) -> Callable:
    """``fn`` run under the mesh and the logical axis rules (for jitted steps)."""
    @functools.wraps(fn)
    def run(*args):
        with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
            return fn(*args)
    return run


def reduce_metrics(per_step: list[dict]) -> dict[str, float]:
    """Sum (sum, weight) pairs over steps on the host and divide once."""
    host = jax.device_get(per_step)
    out = {}
    for name in host[0]:
        total = sum(float(m[name][0]) for m in host)
        weight = sum(float(m[name][1]) for m in host)
        out[name] = total / weight if weight else float("nan")
    return out
