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

from launch.finetuning import setup as finetune_setup
from launch.pretraining import run as pretraining
from launch.train import checkpoint, stopping, train_state
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
    # launch.generate / launch.convert --to_hf / launch.evaluate pick a step with --step.
    with pytest.raises(checkpoint.UnreadableCheckpointError) as e:
        checkpoint.restore_params_subtree(workdir, "encoder", abstract, step_flag="--step")
    assert str(e.value).endswith("it was not changed. Use another of its steps, e.g. --step=2 "
                                 "(it has [1, 2])")


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


# Fine-tuning's best/: an unreadable one falls back to the run's own checkpoints, saying so.

def _finetuned(tmp_path, best_step: int = 3, steps=(2, 3)) -> str:
    """A run whose checkpoints at ``steps`` and best/ (at ``best_step``) hold kernels of that
    step's value."""
    run_dir = str(tmp_path / "ft")
    manager = _manager(run_dir)
    for step in steps:
        checkpoint.save(manager, step, _state(scale=float(step)), {"best_step": best_step})
    manager.wait_until_finished()
    manager.close()
    best = finetune_setup.best_manager(run_dir)
    finetune_setup.save_best(best, best_step, _state(scale=float(best_step)).params)
    checkpoint.finish(best)
    best.close()
    return run_dir


def _params_file(run_dir: str, step: int) -> str:
    directory = os.path.join(run_dir, "best", str(step), "params", "d")
    return max((os.path.join(directory, f) for f in os.listdir(directory)), key=os.path.getsize)


def _best(run_dir: str, best_step=None):
    return finetune_setup.restore_best(run_dir, _abstract(_state()).params, best_step)


def test_a_readable_best_is_restored(tmp_path):
    params, step = _best(_finetuned(tmp_path))
    assert step == 3
    np.testing.assert_array_equal(params["encoder"]["dense"]["kernel"], 3.0)


@pytest.mark.parametrize("damage", ["truncated", "garbage metadata", "deleted"])
def test_an_unreadable_best_is_stood_in_for_by_the_same_step(tmp_path, caplog, damage):
    run_dir = _finetuned(tmp_path)
    if damage == "truncated":
        _truncate(_params_file(run_dir, 3))
    elif damage == "garbage metadata":
        _garble(os.path.join(run_dir, "best", "3", "params", "_METADATA"))
    else:
        shutil.rmtree(os.path.join(run_dir, "best"))
    before = _files(run_dir)
    with caplog.at_level(logging.WARNING):  # without best/, its step is the run's progress's
        params, step = _best(run_dir, best_step=3 if damage == "deleted" else None)
    assert step == 3
    np.testing.assert_array_equal(params["encoder"]["dense"]["kernel"], 3.0)
    warning = [r.getMessage() for r in caplog.records if "cannot be read" in r.getMessage()]
    assert len(warning) == 1 and "\n" not in warning[0]
    why = "it holds no complete checkpoint" if damage == "deleted" else "step 3: "
    assert warning[0].startswith(f"{run_dir}/best cannot be read ({why}")
    assert warning[0].endswith("using the parameters of the run's checkpoint at step 3 instead "
                               "(the same step: the same parameters)")
    assert _files(run_dir) == before  # nothing moved or deleted


def test_without_that_step_the_newest_readable_checkpoint_stands_in_and_says_so(tmp_path,
                                                                                caplog):
    run_dir = _finetuned(tmp_path, best_step=2, steps=(3, 4))  # keep_checkpoints rotated 2 away
    _truncate(_params_file(run_dir, 2))
    _truncate(_array_file(os.path.join(run_dir, "checkpoints", "4")))
    with caplog.at_level(logging.WARNING):
        params, step = _best(run_dir)
    assert step == 3
    np.testing.assert_array_equal(params["encoder"]["dense"]["kernel"], 3.0)
    assert ("using the parameters of the run's checkpoint at step 3 instead (its newest readable "
            "one, not the best dev step: the scores are step 3's)") in caplog.text


def test_nothing_readable_for_best_is_one_clear_error(tmp_path):
    run_dir = _finetuned(tmp_path)
    for path in (_params_file(run_dir, 3), _array_file(os.path.join(run_dir, "checkpoints", "2")),
                 _array_file(os.path.join(run_dir, "checkpoints", "3"))):
        _truncate(path)
    with pytest.raises(ValueError, match=r"ft/best cannot be read \(step 3: .*\), and no "
                       r"checkpoint of the run can stand in \(steps \[2, 3\] are unreadable "
                       r"too\); nothing was changed\. Fine-tune again with a new --workdir") as e:
        _best(run_dir)
    assert "\n" not in str(e.value)


def test_best_of_another_model_is_named_not_stood_in_for(tmp_path):
    run_dir = _finetuned(tmp_path)
    with pytest.raises(checkpoint.UnfitCheckpointError, match=r"encoder/dense/kernel: "
                       r"checkpoint \(4, 3\), this model \(4, 5\)"):
        finetune_setup.restore_best(run_dir, _abstract(_state(width=5)).params)


def test_an_unfinished_best_save_is_removed_at_the_next_start(tmp_path):
    run_dir = _finetuned(tmp_path)
    leftover = os.path.join(run_dir, "best", "6.orbax-checkpoint-tmp-1712345678")
    os.makedirs(os.path.join(leftover, "params"))  # what a full disk left mid-save
    finetune_setup.best_manager(run_dir).close()
    assert sorted(os.listdir(os.path.join(run_dir, "best"))) == ["3"]


def test_a_best_save_that_fails_is_a_save_failure(tmp_path, monkeypatch):
    run_dir = _finetuned(tmp_path)
    best = finetune_setup.best_manager(run_dir)

    def full(*args, **kwargs):
        raise OSError(28, os.strerror(28))
    monkeypatch.setattr(best, "save", full)
    with pytest.raises(stopping.SaveFailed, match=r"saving the checkpoint at step 6 in .*ft/best "
                       r"failed: \[Errno 28\] No space left on device; the checkpoint at step 3 "
                       r"is intact") as e:
        finetune_setup.save_best(best, 6, _state().params)
    assert e.value.exit_status == 74
    best.close()
