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
import math
import os
import re
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

from data import features
from launch.compiling import fit
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
    # Compiling only: several processes may load libtpu at once (its lock file guards a real TPU).
    os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
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
    """One compiled train step and what it was compiled for.

    ``cost``: the step's FLOPs and HBM bytes accessed per device (``flops``,
    ``bytes accessed``), and ``cost_method``: how they were counted (``step_cost``).
    ``device_state_bytes``: one device's shard of the train state. ``refused``: (bytes required,
    bytes available) when the TPU compiler refused the step for want of HBM (``executable`` is
    then None): XLA checks the fit itself and stops there.
    """
    executable: object
    mesh: jax.sharding.Mesh
    devices: list
    parameters: int
    seconds: float
    cost: dict
    cost_method: str
    device_state_bytes: int = 0
    refused: tuple[float, float] | None = None


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
    with jax.set_mesh(mesh), nn.logical_axis_rules(rules):
        lowered = train.lower(state, batch, rng)
    return lowered, mesh, state


def _cost(executable) -> dict:
    cost = executable.cost_analysis()
    if isinstance(cost, (list, tuple)):  # older JAX: one dict per program
        cost = cost[0] if cost else {}
    return {k: float((cost or {}).get(k, 0.0)) for k in ("flops", "bytes accessed")}


def step_cost(cfg, devices, executable) -> tuple[dict, str]:
    """FLOPs and HBM bytes a device spends on one step, and how they were counted.

    XLA's cost analysis counts a ``while`` body once, whatever its trip count, so a program with
    scanned layers or microbatches under-reports by about N (or the microbatch count). Then the
    step is compiled twice more with 1 and 2 unrolled layers on one microbatch's rows, and the
    cost of N layers and all microbatches extrapolated: ``m · (c₁ + (N − 1)(c₂ − c₁))`` (exact
    for identical layers; the optimizer update, counted m times, is a small excess).
    """
    m = int(cfg.train.microbatches)
    if not cfg.model.scan_layers and m == 1:
        return _cost(executable), "the compiled step"
    def cost_of(layers: int) -> dict:
        return _cost(lower_train_step(fit.apply(cfg, {
            "model.scan_layers": False, "model.num_layers": layers, "train.microbatches": 1,
            "train.batch_size": cfg.train.batch_size // m}), devices)[0].compile())
    # One after the other: two TPU compiles in one process at once crashed libtpu (SIGSEGV).
    small = {n: cost_of(n) for n in (1, 2)}
    n = int(cfg.model.num_layers)
    cost = {k: m * (small[1][k] + (n - 1) * (small[2][k] - small[1][k])) for k in small[1]}
    return cost, f"extrapolated from 1- and 2-layer unrolled compiles of {m} microbatch(es)"


_OOM = re.compile(r"required for HLO temporaries \(([\d.]+)G\) exceeds available HBM "
                  r"\(([\d.]+)G\)")


def _refusal(error: Exception) -> tuple[float, float] | None:
    """(required, available) bytes from the TPU compiler's out-of-HBM refusal, else None."""
    match = _OOM.search(str(error)) if "RESOURCE_EXHAUSTED" in str(error) else None
    return None if match is None else tuple(float(g) * 2 ** 30 for g in match.groups())


def _device_bytes(tree) -> int:
    """One device's share of an abstract, sharded tree."""
    return sum(math.prod(x.sharding.shard_shape(x.shape)) * x.dtype.itemsize
               for x in jax.tree_util.tree_leaves(tree))


def compile_train_step(cfg, devices, *, with_cost: bool = True) -> Compiled:
    """Lowers and compiles ``cfg``'s train step for ``devices`` (``tpu_devices`` or
    ``jax.devices()``), and counts its cost (``step_cost``; skipped without ``with_cost``).
    A step the compiler refuses for want of HBM comes back ``refused`` (``Compiled``)."""
    start = time.perf_counter()
    lowered, mesh, state = lower_train_step(cfg, devices)
    params = jax.tree_util.tree_leaves(state.params)
    common = dict(mesh=mesh, devices=devices, parameters=sum(x.size for x in params),
                  device_state_bytes=_device_bytes(state))
    try:
        executable = lowered.compile()
    except Exception as e:  # noqa: BLE001 - only the out-of-HBM refusal is an answer here
        refused = _refusal(e)
        if refused is None:
            raise
        return Compiled(executable=None, seconds=time.perf_counter() - start, cost={},
                        cost_method="not counted", refused=refused, **common)
    seconds = time.perf_counter() - start
    cost, method = step_cost(cfg, devices, executable) if with_cost else ({}, "not counted")
    return Compiled(executable=executable, seconds=seconds, cost=cost, cost_method=method,
                    **common)
