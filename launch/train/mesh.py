"""The device mesh, logical→mesh shardings, and global arrays from per-host batches.

The model only speaks logical axis names (lm/axes.py); this module turns them into
`NamedSharding`s for one concrete mesh, built from the run config.
"""

from __future__ import annotations

import math
from typing import Any

import flax.linen as nn
import jax
import numpy as np
from jax.experimental import mesh_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lm import axes


def mesh_shape(cfg_mesh, device_count: int) -> tuple[int, int, int]:
    """Sizes of ("data", "fsdp", "tensor") for `device_count` devices; -1 = the rest.

    Raises:
      ValueError: naming the requested shape, the device count and a shape that would fit.
    """
    sizes = [int(cfg_mesh.data), int(cfg_mesh.fsdp), int(cfg_mesh.tensor)]
    if sizes.count(-1) > 1 or any(s == 0 or s < -1 for s in sizes):
        raise ValueError(_misfit(sizes, device_count, "each size must be positive, or -1 (the "
                                 "rest of the devices) on at most one axis"))
    known = math.prod(s for s in sizes if s != -1)
    if -1 in sizes:
        if device_count % known:
            raise ValueError(_misfit(sizes, device_count))
        sizes[sizes.index(-1)] = device_count // known
    if math.prod(sizes) != device_count:
        raise ValueError(_misfit(sizes, device_count))
    return tuple(sizes)


def _misfit(sizes, device_count: int,
            rule: str = "the product of the sizes (with -1 for the rest) must equal the device "
                        "count") -> str:
    data, fsdp, tensor = sizes
    return (f"mesh data={data} fsdp={fsdp} tensor={tensor} does not fit {device_count} devices: "
            f"{rule}. "
            f"For example --config.mesh.data=-1 --config.mesh.fsdp=1 --config.mesh.tensor=1 "
            f"(data={device_count}).")


def num_slices(devices) -> int:
    """How many slices (TPU pods joined over the data-centre network) ``devices`` span."""
    return len({getattr(d, "slice_index", 0) for d in devices})


def make_mesh(cfg_mesh, devices=None) -> Mesh:
    """A ("data", "fsdp", "tensor") mesh over `devices` (default: all devices).

    Over several slices the data axis spans them (only data parallelism crosses the slower
    network between slices: one gradient all-reduce a step); fsdp and tensor stay in a slice.
    """
    devices = jax.devices() if devices is None else devices
    shape = mesh_shape(cfg_mesh, len(devices))
    slices = num_slices(devices)
    if slices > 1:
        if shape[0] % slices:
            raise ValueError(
                f"mesh data={shape[0]} does not divide over the {slices} slices: the data axis "
                f"spans the slices; use --config.mesh.data=-1 or a multiple of {slices}")
        ici = (shape[0] // slices, *shape[1:])
        device_array = mesh_utils.create_hybrid_device_mesh(ici, (slices, 1, 1), devices)
    else:
        try:
            device_array = mesh_utils.create_device_mesh(shape, devices)
        except (AssertionError, NotImplementedError, ValueError):
            device_array = np.asarray(devices).reshape(shape)
    auto = (jax.sharding.AxisType.Auto,) * len(axes.MESH_AXES)
    return Mesh(device_array, axes.MESH_AXES, axis_types=auto)


def rules_from_config(cfg_rules) -> tuple:
    """The config's logical rules as a tuple of (logical, mesh axes) pairs, checked."""
    rules = tuple((str(k), tuple(v) if isinstance(v, (list, tuple)) else v) for k, v in cfg_rules)
    axes.check_rules(rules)
    return rules


def _mesh_axes_of(logical_name, rules):
    for name, target in rules:
        if name == logical_name:
            if target is None:
                return ()
            return (target,) if isinstance(target, str) else tuple(target)
    return ()


def check_no_axis_reuse(logical_specs: Any, rules) -> None:
    """Rejects rules that map two dimensions of one array to the same mesh axis.

    Flax would silently leave the second dimension replicated; we prefer to be told.
    """
    def check(path, spec):
        seen = {}
        for dim_name in spec:
            for mesh_axis in _mesh_axes_of(dim_name, rules):
                if mesh_axis in seen:
                    raise ValueError(
                        f"logical axis rules map both {seen[mesh_axis]!r} and {dim_name!r} of "
                        f"{jax.tree_util.keystr(path)} (axes {tuple(spec)}) to mesh axis "
                        f"{mesh_axis!r}; map one of them elsewhere or to None")
                seen[mesh_axis] = dim_name

    jax.tree_util.tree_map_with_path(
        check, logical_specs, is_leaf=lambda x: isinstance(x, PartitionSpec))


def logical_shardings(boxed_tree: Any, mesh: Mesh, rules) -> Any:
    """NamedShardings for a (possibly abstract) tree of boxed `nn.LogicallyPartitioned` leaves.

    Unboxed leaves (e.g. the step counter or optimizer scalars) are replicated.
    """
    specs = nn.get_partition_spec(boxed_tree)
    check_no_axis_reuse(specs, rules)
    return nn.logical_to_mesh_sharding(specs, mesh, rules)


def batch_sharding(mesh: Mesh, rules) -> NamedSharding:
    """Sharding of batch-major arrays: the leading dim over the `batch` rule's mesh axes."""
    return NamedSharding(mesh, nn.logical_to_mesh_axes((axes.BATCH,), rules))


def data_parallel_size(mesh: Mesh, rules) -> int:
    """How many ways the batch dimension is split."""
    return math.prod(mesh.shape[a] for a in _mesh_axes_of(axes.BATCH, rules))


def check_batch_size(global_batch: int, mesh: Mesh, rules,
                     process_count: int | None = None) -> None:
    """A global batch must divide over the data-parallel devices and over the processes
    (``process_count``: this run's, by default)."""
    dp = data_parallel_size(mesh, rules)
    processes = jax.process_count() if process_count is None else process_count
    if global_batch % dp or global_batch % processes:
        need = math.lcm(dp, processes)
        raise ValueError(
            f"global batch {global_batch} does not divide by the data-parallel size {dp} "
            f"(mesh {dict(mesh.shape)}) and process count {processes}; use a multiple "
            f"of {need}, e.g. --config.train.batch_size={max(need, global_batch // need * need)}")


def global_batch(host_batch: dict[str, np.ndarray], sharding: NamedSharding) -> dict:
    """Per-process numpy batch → global jax.Arrays (each process holds its slice)."""
    return {k: jax.make_array_from_process_local_data(sharding, v)
            for k, v in host_batch.items()}
