"""Train state, optimizer, the jitted train and eval steps (plain functions, no trainer class)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from data import sentence_order
from launch import checkpoint, stopping
from launch import mesh as mesh_lib
from lm import config as lm_config
from objectives import COMBINATIONS, OBJECTIVES, total_loss, weighted


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training, as one pytree (saved whole by Orbax).

    ``skipped_steps`` counts the updates skipped because the loss or gradient norm was NaN/Inf;
    ``nonfinite_run`` the steps since the current run of such steps began (0 after a good step).
    Once it reaches ``train.max_nonfinite_steps`` the state is halted: it keeps counting but never
    updates again (see ``train_step``), and the loop stops without saving it.
    """
    step: jax.Array
    params: Any
    opt_state: Any
    skipped_steps: jax.Array
    nonfinite_run: jax.Array


def model_config(cfg, vocab_size: int, special_ids=None) -> lm_config.TransformerConfig:
    """The one place where the run config becomes an architecture config.

    ``special_ids`` (the tokenizer's ``data.features.SpecialIds``) set ``pad_id`` and ``sep_id``
    where the tokenizer has them, over a converted checkpoint's ``model.fields``: the model must
    mask exactly the id the input pipeline pads with (GPT-2's ``<|endoftext|>``, whose config
    has no padding id).
    """
    m = cfg.model
    # ``model.fields``: a converted checkpoint's exact shapes (JSON, see launch/converting.py).
    fields = json.loads(m.get("fields") or "{}")
    if special_ids is not None:
        fields.update({f"{name}_id": getattr(special_ids, name) for name in ("pad", "sep")
                       if getattr(special_ids, name) is not None})
    return lm_config.preset(m.preset, **{
        "vocab_size": vocab_size, "max_length": m.max_length or cfg.data.max_seq_length,
        "dropout_rate": m.dropout_rate, "attention_dropout_rate": m.attention_dropout_rate,
        "norm_position": m.norm_position, "activation": m.activation, "dtype": m.dtype,
        "scan_layers": m.scan_layers, "remat": m.remat, **fields})


def objective_weights(cfg) -> dict[str, float]:
    """A pretraining run's objectives → weights: ``cfg.objectives`` without its zero weights, or
    for a config that names one objective (``cfg.objective``) what that objective adds up
    (``bert_pretrain`` = ``{"mlm": 1, "nsp": 1}``)."""
    if "objectives" in cfg:
        return {name: float(w) for name, w in cfg.objectives.items() if w}
    return dict(COMBINATIONS.get(cfg.objective, {cfg.objective: 1.0}))


def run_objective(cfg):
    """The objective function of a pretraining run: ``weighted(cfg.objectives)``, or
    ``OBJECTIVES[cfg.objective]`` for configs without ``objectives`` (BERT's)."""
    if "objectives" in cfg:
        return weighted(cfg.objectives)
    return OBJECTIVES[cfg.objective]


def model_options(cfg) -> dict:
    """The pretraining model's options beyond its architecture: for a config with
    ``objectives`` (ALBERT's), which heads to build (``mlm``, ``sentence_heads``); else none."""
    if "objectives" not in cfg:
        return {}
    names = objective_weights(cfg)
    classes = {"nsp": 2, "sop": 2}
    if "order" in names:
        classes["order"] = sentence_order.num_order_classes(cfg.data.order_max_segments)
    return {"mlm": "mlm" in names,
            "sentence_heads": tuple((n, classes[n]) for n in names if n != "mlm")}


def learning_rate_schedule(cfg_train) -> optax.Schedule:
    """Linear warmup from 0 to the peak, then linear decay to `end_learning_rate`."""
    warmup = optax.linear_schedule(0.0, cfg_train.learning_rate, max(1, cfg_train.warmup_steps))
    decay = optax.linear_schedule(cfg_train.learning_rate, cfg_train.end_learning_rate,
                                  max(1, cfg_train.steps - cfg_train.warmup_steps))
    return optax.join_schedules([warmup, decay], [cfg_train.warmup_steps])


def _decays(path, _) -> bool:
    # Biases and LayerNorm scales are not decayed (BERT); decided by name, not ndim, because
    # scanned layers stack 1-D biases into 2-D arrays.
    name = str(getattr(path[-1], "key", path[-1])).lower()
    return not ("bias" in name or "scale" in name)


def make_optimizer(cfg_train) -> optax.GradientTransformation:
    """AdamW with warmup + linear decay, no decay on norms and biases, global-norm clipping."""
    return optax.chain(
        optax.clip_by_global_norm(cfg_train.grad_clip_norm),
        optax.adamw(learning_rate_schedule(cfg_train), b1=cfg_train.adam_b1,
                    b2=cfg_train.adam_b2, eps=cfg_train.adam_eps,
                    weight_decay=cfg_train.weight_decay,
                    mask=lambda p: jax.tree_util.tree_map_with_path(_decays, p)))


def dummy_batch(feature_shapes: dict) -> dict[str, np.ndarray]:
    """Zeros with the schema's shapes, for init and shape inference."""
    return {k: np.zeros(shape, dtype) for k, (shape, dtype) in feature_shapes.items()}


def create_train_state(model: nn.Module, tx, batch: dict, seed: int, mesh, rules):
    """Initialises the state directly in its sharded layout.

    The init is jitted with `out_shardings`, so no device ever holds an unsharded copy.

    Returns:
      (state, state_shardings)
    """
    def init_boxed(key):
        params_key, dropout_key = jax.random.split(key)
        variables = model.init({"params": params_key, "dropout": dropout_key}, batch,
                               deterministic=True)
        params = variables["params"]
        zero = jnp.zeros((), jnp.int32)
        return TrainState(step=zero, params=params, opt_state=tx.init(params),
                          skipped_steps=zero, nonfinite_run=zero)

    key = jax.random.key(seed)
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        abstract = jax.eval_shape(init_boxed, key)
        shardings = mesh_lib.logical_shardings(abstract, mesh, rules)
        state = jax.jit(lambda k: nn.unbox(init_boxed(k)), out_shardings=shardings)(key)
    return state, shardings


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


def compile_steps(cfg, model, tx, state_shardings, mesh, rules, *,
                  objective: str = "") -> tuple[Callable, Callable]:
    """jit the train and eval steps with explicit shardings; the state is donated.

    ``objective`` names an entry of ``OBJECTIVES`` (default: the run's, ``run_objective``).
    """
    objective = OBJECTIVES[objective] if objective else run_objective(cfg)
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


def halt_if_diverged(state: TrainState, step: int, limit: int, manager) -> None:
    """At a log, eval or checkpoint boundary: stops a halted run (``train_step``) before it
    evaluates or saves anything, once the saves already started are complete.

    Raises:
      stopping.Diverged: naming the step, the first NaN/Inf step and the last good checkpoint.
    """
    run = int(jax.device_get(state.nonfinite_run))  # the only host sync, at a boundary
    if run < limit:
        return
    checkpoint.finish(manager)
    steps = checkpoint.complete_steps(manager.directory)
    raise stopping.Diverged(step, step - run + 1, limit, steps[-1] if steps else None,
                            str(manager.directory))

