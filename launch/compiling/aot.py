"""Ahead-of-time compilation of a run config's train step, for the devices of a TPU topology or
for the accelerators of this host.

The step is the one ``launch.pretrain`` runs (``step_fns.jit_steps``): the same model, objective,
optimizer, mesh (``mesh.make_mesh``), logical axis rules and shardings. It is lowered with
``jax.ShapeDtypeStruct``s, so no array is ever allocated and no corpus is read: a pod-size config
compiles on a laptop, and XLA's own memory and cost analyses say whether it fits and how fast it
could run (launch/compiling/figures.py).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import time

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

from data import features
from launch.train import mesh as mesh_lib
from launch.train import modeling, optimizer, step_fns, train_state
from lm import models

# The topology's chip → the accelerator type libtpu expects in TPU_ACCELERATOR_TYPE (it only
# silences libtpu's start-up warnings on a host without TPUs; the topology itself is named).
_ACCELERATOR_TYPES = {"v4": "v4-8", "v5e": "v5litepod-8", "v5p": "v5p-8", "v6e": "v6e-8"}
# Chips JAX drives as one device of two TensorCores (the default on TPU VMs of these kinds).
_MEGACORE = ("v4", "v5p")


def tpu_devices(topology: str, num_slices: int = 1) -> list:
    """Abstract devices of ``num_slices`` slices of the TPU ``topology`` (e.g. ``v5e:2x4``,
    ``v4:2x2x2``), made by libtpu on any host.

    Raises:
      ValueError: (one line) without libtpu, or for a topology libtpu does not know.
    """
    if importlib.util.find_spec("libtpu") is None:
        raise ValueError(f"--topology={topology} needs libtpu, which is not installed; install "
                         "it with pip install 'pretrax[tpu]' (any host: it only compiles)")
    if num_slices < 1:
        raise ValueError(f"--num_slices={num_slices}: give 1 or more")
    chip = topology.split(":")[0].lower()
    os.environ.setdefault("TPU_ACCELERATOR_TYPE", _ACCELERATOR_TYPES.get(chip, "v5litepod-8"))
    os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
    from jax.experimental import topologies
    try:
        options = {"chip_config_name": "megacore"} if chip in _MEGACORE else {}
        if num_slices > 1:
            options["num_slices"] = num_slices
        desc = topologies.get_topology_desc(topology_name=topology, platform="tpu", **options)
    except Exception as e:  # noqa: BLE001 - libtpu's errors are long; one line of it is enough
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise ValueError(f"--topology={topology}: libtpu cannot make it ({reason}); give a TPU "
                         "topology as CHIP:SHAPE, e.g. v5e:2x4, v5e:16x16, v4:2x2x2, v5p:4x4x4, "
                         "v6e:4x4") from e
    return list(desc.devices)


@dataclasses.dataclass
class Compiled:
    """One compiled train step and what it was compiled for."""
    executable: object
    mesh: jax.sharding.Mesh
    devices: list
    parameters: int
    state_bytes: int
    seconds: float


def _abstract_batch(cfg, objectives, sharding) -> dict:
    shapes = features.shapes(objectives, B=cfg.train.batch_size, L=cfg.data.max_seq_length,
                             P=cfg.data.get("max_predictions_per_seq", 0))
    return {k: jax.ShapeDtypeStruct(shape, jnp.dtype(dtype), sharding=sharding)
            for k, (shape, dtype) in shapes.items()}


def lower_train_step(cfg, devices):
    """``launch.pretrain``'s train step for ``cfg`` over ``devices``, lowered (not compiled).

    The model is built from the config alone: ``model.vocab_size`` rows and the default special
    ids, as the shipped tokenizer has them.

    Returns:
      (lowered, mesh, abstract_state)
    """
    objectives = tuple(modeling.objective_weights(cfg))
    mesh = mesh_lib.make_mesh(cfg.mesh, devices)
    rules = mesh_lib.rules_from_config(cfg.logical_axis_rules)
    processes = len({d.process_index for d in devices})
    mesh_lib.check_batch_size(cfg.train.batch_size, mesh, rules, process_count=processes)
    model_cfg = modeling.model_config(cfg, cfg.model.vocab_size)
    model = models.make_model(cfg.model.arch, model_cfg, **modeling.model_options(cfg))
    tx = optimizer.make_optimizer(cfg.train)
    batch_sh = mesh_lib.batch_sharding(mesh, rules)
    batch = _abstract_batch(cfg, objectives, batch_sh)
    init_batch = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in batch.items()}
    state, shardings = train_state.abstract_train_state(model, tx, init_batch, mesh, rules)
    train, _ = step_fns.jit_steps(cfg, model, tx, shardings, mesh, rules)
    key = jax.eval_shape(lambda: jax.random.key(0))
    rng = jax.ShapeDtypeStruct(key.shape, key.dtype,
                               sharding=NamedSharding(mesh, PartitionSpec()))
    with jax.set_mesh(mesh), _rules(rules):
        lowered = train.lower(state, batch, rng)
    return lowered, mesh, state


def _rules(rules):
    import flax.linen as nn
    return nn.logical_axis_rules(rules)


def compile_train_step(cfg, devices) -> Compiled:
    """Lowers and compiles ``cfg``'s train step for ``devices`` (``tpu_devices`` or
    ``jax.devices()``)."""
    start = time.perf_counter()
    lowered, mesh, state = lower_train_step(cfg, devices)
    executable = lowered.compile()
    params = jax.tree_util.tree_leaves(state.params)
    state_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(state))
    return Compiled(executable=executable, mesh=mesh, devices=devices,
                    parameters=sum(x.size for x in params), state_bytes=state_bytes,
                    seconds=time.perf_counter() - start)
