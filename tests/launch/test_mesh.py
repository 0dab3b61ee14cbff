"""Mesh shape arithmetic, rule checks and batch-size checks (8 fake CPU devices)."""

import jax
import ml_collections
import pytest
from jax.sharding import PartitionSpec as P

from launch.train import mesh as mesh_lib
from lm import axes


def mesh_cfg(data, fsdp, tensor):
    return ml_collections.ConfigDict({"data": data, "fsdp": fsdp, "tensor": tensor})


@pytest.mark.parametrize("sizes,expected", [((-1, 1, 1), (8, 1, 1)), ((2, 2, 2), (2, 2, 2)),
                                            ((1, -1, 4), (1, 2, 4)), ((1, 1, -1), (1, 1, 8))])
def test_mesh_shape(sizes, expected):
    assert mesh_lib.mesh_shape(mesh_cfg(*sizes), 8) == expected
    named = dict(zip(axes.MESH_AXES, expected, strict=True))
    assert dict(mesh_lib.make_mesh(mesh_cfg(*sizes)).shape) == named


@pytest.mark.parametrize("sizes", [(3, 1, 1), (-1, 3, 1), (-1, -1, 1), (0, 1, 8)])
def test_mesh_shape_misfit_says_what_fits(sizes):
    with pytest.raises(ValueError, match="data|-1|positive"):
        mesh_lib.mesh_shape(mesh_cfg(*sizes), 8)


def test_rules_reusing_a_mesh_axis_are_rejected():
    rules = mesh_lib.rules_from_config([(axes.EMBED, "tensor"), (axes.MLP, "tensor")])
    with pytest.raises(ValueError, match="'embed' and 'mlp'"):
        mesh_lib.check_no_axis_reuse({"kernel": P(axes.EMBED, axes.MLP)}, rules)


def test_unknown_logical_axis_is_rejected():
    with pytest.raises(ValueError, match="does not define"):
        mesh_lib.rules_from_config([("hidden", "data")])


def test_batch_must_divide_data_parallel_size():
    rules = mesh_lib.rules_from_config(axes.DEFAULT_RULES)
    mesh = mesh_lib.make_mesh(mesh_cfg(-1, 1, 1))
    mesh_lib.check_batch_size(16, mesh, rules)
    with pytest.raises(ValueError, match="batch_size=8"):
        mesh_lib.check_batch_size(12, mesh, rules)
    assert jax.device_count() == 8
