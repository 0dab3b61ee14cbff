"""Bad checkpoints: another architecture names the parameters; a damaged newest checkpoint falls
back to the one before it and is moved aside, never deleted; nothing readable is a clear error."""

import logging
import os
import shutil

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from launch.pretraining import run as pretraining
from launch.train import checkpoint, train_state
from tests.launch.test_pretrain_e2e import make_config, read_metrics

TX = optax.adam(1e-3)


def _state(width: int = 3, scale: float = 1.0):
    params = {"encoder": {"dense": {"kernel": jnp.full((4, width), scale),
                                    "bias": jnp.zeros((width,))}}}
    zero = jnp.zeros((), jnp.int32)
    return train_state.TrainState(step=zero, params=params, opt_state=TX.init(params),
                                skipped_steps=zero, nonfinite_run=zero)


def _abstract(state):
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return checkpoint.abstract_like(state, jax.tree_util.tree_map(lambda _: device, state))


def _manager(workdir: str):
    return checkpoint.make_manager(workdir, ml_collections.ConfigDict(dict(keep_checkpoints=5)))


@pytest.fixture
def workdir(tmp_path):
    """Checkpoints at steps 1, 2, 3 whose kernels hold 1.0, 2.0, 3.0."""
    path = str(tmp_path / "run")
    manager = _manager(path)
    for step in (1, 2, 3):
        checkpoint.save(manager, step, _state(scale=float(step)), {"instances": 10 * step})
    manager.wait_until_finished()
    manager.close()
    return path


def _step_dir(workdir: str, step: int) -> str:
    return os.path.join(workdir, "checkpoints", str(step))


def _array_file(step_dir: str) -> str:
    """The biggest file of a step's array data (the OCDBT data files under ``state/d``)."""
    directory = os.path.join(step_dir, "state", "d")
    return max((os.path.join(directory, f) for f in os.listdir(directory)),
               key=os.path.getsize)


def _truncate(path: str) -> None:
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)


def _garble(path: str) -> None:
    with open(path, "wb") as f:
        f.write(b"\x00garbage{")


def _files(directory: str) -> dict[str, bytes]:
    return {os.path.relpath(os.path.join(root, f), directory):
            open(os.path.join(root, f), "rb").read()
            for root, _, names in os.walk(directory) for f in names}


def _restore(workdir: str):
    manager = _manager(workdir)
    try:
        return checkpoint.restore_latest(manager, _abstract(_state())), manager.all_steps()
    finally:
        manager.close()


def test_healthy_checkpoints_restore_the_newest(workdir):
    (state, position, step), steps = _restore(workdir)
    assert step == 3 and position == {"instances": 30} and list(steps) == [1, 2, 3]
    np.testing.assert_array_equal(state.params["encoder"]["dense"]["kernel"], 3.0)


@pytest.mark.parametrize("damage", ["truncated array file", "deleted array file",
                                    "garbage array metadata", "deleted array metadata",
                                    "garbage input position"])
def test_damaged_newest_checkpoint_falls_back_and_is_moved_aside(workdir, damage, caplog):
    state_dir = os.path.join(_step_dir(workdir, 3), "state")
    if damage == "truncated array file":
        _truncate(_array_file(_step_dir(workdir, 3)))
    elif damage == "deleted array file":
        os.remove(_array_file(_step_dir(workdir, 3)))
    elif damage == "garbage array metadata":
        _garble(os.path.join(state_dir, "_METADATA"))
    elif damage == "deleted array metadata":
        os.remove(os.path.join(state_dir, "_METADATA"))
    else:
        _garble(os.path.join(_step_dir(workdir, 3), "data", "metadata"))
    damaged = _files(_step_dir(workdir, 3))
    with caplog.at_level(logging.WARNING):
        (state, position, step), steps = _restore(workdir)
    assert step == 2 and position == {"instances": 20}
    np.testing.assert_array_equal(state.params["encoder"]["dense"]["kernel"], 2.0)
    assert "the checkpoint at step 3 cannot be read" in caplog.text
    assert "restored step 2 instead and moved step 3 to" in caplog.text
    # Kept byte for byte, out of Orbax's view: step 3 can be saved again.
    moved = os.path.join(workdir, "checkpoints", "corrupt", "3")
    assert _files(moved) == damaged
    assert list(steps) == [1, 2] and not os.path.exists(_step_dir(workdir, 3))
    manager = _manager(workdir)
    checkpoint.save(manager, 3, _state(scale=7.0), {"instances": 30})
    manager.wait_until_finished()
    manager.close()
    (state, _, step), _ = _restore(workdir)
    assert step == 3
    np.testing.assert_array_equal(state.params["encoder"]["dense"]["kernel"], 7.0)


def test_a_second_corrupt_copy_of_a_step_does_not_replace_the_first(workdir):
    os.makedirs(os.path.join(workdir, "checkpoints", "corrupt", "3"))
    _truncate(_array_file(_step_dir(workdir, 3)))
    (_, _, step), _ = _restore(workdir)
    assert step == 2
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints", "corrupt"))) == ["3", "3.1"]


def test_no_readable_checkpoint_is_an_error_and_nothing_moves(workdir):
    for step in (1, 2, 3):
        _truncate(_array_file(_step_dir(workdir, step)))
    before = _files(workdir)
    with pytest.raises(ValueError, match=r"no checkpoint in .*checkpoints can be read: step 3: "
                                         r".*; step 2: .*; step 1: .*Nothing was moved"):
        _restore(workdir)
    assert _files(workdir) == before


def test_another_width_names_the_parameters_and_moves_nothing(workdir):
    before = _files(workdir)
    manager = _manager(workdir)
    with pytest.raises(checkpoint.UnfitCheckpointError) as e:
        checkpoint.restore_latest(manager, _abstract(_state(width=5)))
    manager.close()
    assert "the checkpoint at step 3 in" in str(e.value)
    assert "encoder/dense/kernel: checkpoint (4, 3), this model (4, 5)" in str(e.value)
    assert "encoder/dense/bias: checkpoint (3,), this model (5,)" in str(e.value)
    assert _files(workdir) == before


def test_init_from_a_damaged_checkpoint_names_it_and_another_step(workdir):
    _truncate(_array_file(_step_dir(workdir, 3)))
    before = _files(workdir)
    abstract = _abstract(_state()).params["encoder"]
    with pytest.raises(ValueError, match=r"the checkpoint at step 3 in .* cannot be read "
                                         r"\(.*\); it was not changed\. Use another of its "
                                         r"steps, e.g\. --config\.init_step=2"):
        checkpoint.restore_params_subtree(workdir, "encoder", abstract)
    assert _files(workdir) == before
    params, step, _ = checkpoint.restore_params_subtree(workdir, "encoder", abstract, 2)
    assert step == 2
    np.testing.assert_array_equal(params["dense"]["kernel"], 2.0)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A 3-step tiny BERT run with checkpoints at steps 2 and 3."""
    path = str(tmp_path_factory.mktemp("pretrain") / "run")
    corpus = os.path.join(os.path.dirname(__file__), "..", "fixtures", "corpus_slice.txt.gz")
    pretraining.train_and_evaluate(make_config(corpus, 3), path)
    return path, corpus


def test_pretraining_resumes_from_the_step_before_a_truncated_one(tmp_path, pretrained, caplog):
    source, corpus = pretrained
    workdir = str(tmp_path / "run")
    shutil.copytree(source, workdir)
    _truncate(_array_file(_step_dir(workdir, 3)))
    with caplog.at_level(logging.WARNING):
        results = pretraining.train_and_evaluate(make_config(corpus, 3), workdir)
    assert results["resumed_from"] == 2 and results["step"] == 3
    assert "the checkpoint at step 3 cannot be read" in caplog.text
    assert os.path.isdir(os.path.join(workdir, "checkpoints", "corrupt", "3"))
    assert os.path.isdir(_step_dir(workdir, 3))  # saved again
    before, after = read_metrics(source), read_metrics(workdir)
    assert sorted(after) == [1, 2, 3]
    # Step 3 again, from step 2's state and input position: the same loss.
    assert after[3]["loss"] == pytest.approx(before[3]["loss"], rel=1e-6, abs=1e-6)
