"""The non-finite guard: a NaN/Inf step changes nothing but its counters; K in a row stop the run
with the last good checkpoint intact."""

import dataclasses
import functools
import os

import jax
import ml_collections
import numpy as np
import pytest

from data import features
from launch.configs import bert
from launch.pretraining import run as pretraining
from launch.train import checkpoint, optimizer, step_fns, stopping, train_state
from launch.train import mesh as mesh_lib
from lm import axes, models
from lm.config import TransformerConfig
from objectives import weighted
from tests.launch.test_pretrain_e2e import make_config, read_metrics

VOCAB = 64
MODEL = TransformerConfig(vocab_size=VOCAB, hidden_size=32, num_layers=1, num_heads=2, mlp_dim=64,
                          max_length=16, dropout_rate=0.1, attention_dropout_rate=0.0)


def _batch(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    shapes = features.shapes(("mlm", "nsp"), B=4, L=16, P=3)
    out = {}
    for key, (shape, dtype) in shapes.items():
        high = {"token_ids": VOCAB, "mlm_targets": VOCAB, "mlm_positions": 16, "nsp_labels": 2,
                "type_ids": 2}.get(key, 2)
        out[key] = (np.ones(shape, dtype) if key == "mlm_weights"
                    else rng.integers(0, high, shape).astype(dtype))
    return out


@pytest.fixture(scope="module")
def step_fn():
    """A jitted train step with max_nonfinite_steps=2 and a fresh state (one device)."""
    mesh = mesh_lib.make_mesh(ml_collections.ConfigDict(dict(data=1, fsdp=1, tensor=1)),
                              jax.devices()[:1])
    rules = mesh_lib.rules_from_config(axes.DEFAULT_RULES)
    model = models.make_model("bert", MODEL)
    tx = optimizer.make_optimizer(bert.get_config("tiny").train)
    state, _ = train_state.create_train_state(model, tx, _batch(0), 0, mesh, rules)
    fn = jax.jit(functools.partial(
        step_fns.train_step, model=model, tx=tx, objective=weighted({"mlm": 1.0, "nsp": 1.0}),
        objective_kw={}, max_nonfinite_steps=2))
    step = step_fns.in_mesh(lambda s, b: fn(s, b, jax.random.key(1)), mesh, rules)
    return step, state


def _poisoned(seed: int, value: float) -> dict:
    batch = _batch(seed)
    batch["mlm_weights"] = batch["mlm_weights"] * np.float32(value)  # NaN or Inf in the loss
    return batch


def _host(tree):
    return jax.tree_util.tree_map(np.asarray, jax.device_get(tree))


def _assert_same(a, b):
    jax.tree_util.tree_map(np.testing.assert_array_equal, _host(a), _host(b))


def _differs(a, b) -> bool:
    return any(not np.array_equal(x, y) for x, y in zip(
        jax.tree_util.tree_leaves(_host(a)), jax.tree_util.tree_leaves(_host(b)), strict=True))


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_a_nonfinite_step_changes_nothing_but_its_counters(step_fn, value):
    step, state = step_fn
    good, _ = step(state, _batch(1))
    before = _host(good)
    bad, metrics = step(good, _poisoned(2, value))
    assert int(bad.step) == 2 and int(bad.skipped_steps) == 1 and int(bad.nonfinite_run) == 1
    _assert_same(bad.params, before.params)
    _assert_same(bad.opt_state, before.opt_state)
    # A skipped step's metrics weigh nothing, so a logging window averages the good steps only.
    assert all(float(w) == 0.0 for _, w in _host(metrics).values())
    assert step_fns.reduce_metrics([metrics])["loss"] != step_fns.reduce_metrics([metrics])[
        "loss"]  # nan: no good step in this window
    after, _ = step(bad, _batch(3))
    assert int(after.skipped_steps) == 1 and int(after.nonfinite_run) == 0
    assert _differs(after.params, before.params)


def test_nonfinite_parameters_are_counted_and_not_updated(step_fn):
    step, state = step_fn
    good, _ = step(state, _batch(1))
    broken = good.replace(params=jax.tree_util.tree_map(lambda x: x * np.nan, good.params))
    out, _ = step(broken, _batch(2))
    assert int(out.skipped_steps) == 1 and int(out.nonfinite_run) == 1
    _assert_same(out.opt_state, good.opt_state)  # Adam's moments never see a NaN


def test_k_in_a_row_halt_the_state_for_good(step_fn):
    step, state = step_fn
    good, _ = step(state, _batch(1))
    before = _host(good)
    s = good
    for seed in (2, 3):
        s, _ = step(s, _poisoned(seed, np.nan))
    assert int(s.nonfinite_run) == 2  # = max_nonfinite_steps: halted
    s, metrics = step(s, _batch(4))  # even a good batch no longer updates a halted state
    assert int(s.nonfinite_run) == 3 and int(s.skipped_steps) == 3
    _assert_same(s.params, before.params)
    _assert_same(s.opt_state, before.opt_state)


def _poison_from(monkeypatch, first_bad_step: int):
    """Training batches of steps ≥ ``first_bad_step`` get NaN MLM weights (dirty data), as
    the pipeline would deliver them: by stream position, so a resumed run sees the same."""
    real = pretraining.objective_data

    def objective_data(objectives):
        inputs = real(objectives)

        def make_dataset(cfg, split, *, start_position=0, **kw):
            stream = inputs.make_dataset(cfg, split, start_position=start_position, **kw)
            if split != "train":
                return stream
            first = start_position // kw["batch_size"] + 1
            return (_poisoned_batch(b) if step >= first_bad_step else b
                    for step, b in enumerate(stream, start=first))
        return dataclasses.replace(inputs, make_dataset=make_dataset)
    monkeypatch.setattr(pretraining, "objective_data", objective_data)


def _poisoned_batch(batch: dict) -> dict:
    return dict(batch, mlm_weights=batch["mlm_weights"] * np.float32(np.nan))


def test_a_diverged_run_stops_with_the_last_good_checkpoint(tmp_path, fixture_corpus,
                                                          monkeypatch):
    workdir = str(tmp_path / "run")
    cfg = make_config(fixture_corpus, 12)
    cfg.train.max_nonfinite_steps = 3
    _poison_from(monkeypatch, 6)
    with pytest.raises(stopping.Diverged) as stop:
        pretraining.train_and_evaluate(cfg, workdir)
    message = str(stop.value)
    assert stop.value.exit_status == stopping.EXIT_DIVERGED == 65
    assert "training stopped at step 8" in message and "since step 6" in message
    assert "the last good checkpoint, step 4" in message and "train.learning_rate" in message
    # Nothing from the streak was saved: neither step 6 (one bad step, not yet halted: step 5's
    # parameters under a later number) nor the halted state at step 8.
    directory = os.path.join(workdir, "checkpoints")
    assert checkpoint.complete_steps(directory) == [2, 4]
    assert not [d for d in os.listdir(directory) if not d.isdigit()]
    metrics = read_metrics(workdir)
    assert [metrics[s]["skipped_steps"] for s in (5, 6, 7, 8)] == [0, 1, 2, 3]
    assert np.isfinite(metrics[5]["loss"]) and np.isnan(metrics[6]["loss"])
    assert not os.path.exists(os.path.join(workdir, "results.json"))


def test_finetuning_keeps_no_best_from_a_nonfinite_streak(monkeypatch):
    """The loop saves nothing while NaN/Inf steps are being skipped, best/ included, so a dev
    score then cannot become the best: results.json's best_step always has its parameters."""
    from data.task_sources import TaskSpec
    from launch.finetuning import run as finetuning

    scores = iter([0.5, 0.9, 0.7])
    monkeypatch.setattr(finetuning, "_evaluate", lambda *a: {"accuracy": next(scores)})
    saved = []
    monkeypatch.setattr(finetuning.finetune_setup, "save_best",
                        lambda manager, step, params: saved.append(step))
    monkeypatch.setattr(checkpoint, "save", lambda *a: None)
    spec = TaskSpec("t", "classification", ("a", "b"), False, ("accuracy",), "accuracy")
    progress = {"best": -np.inf, "best_step": 0, "curve": []}
    dev = finetuning._DevHooks(None, None, spec, 9, progress, None, None)
    zero = np.int32(0)
    state = train_state.TrainState(step=zero, params={}, opt_state=(), skipped_steps=zero,
                                   nonfinite_run=zero)
    dev.evaluate(3, state)
    dev.save(3, state)
    dev.evaluate(6, state.replace(nonfinite_run=np.int32(2)))  # the best score, mid-streak
    dev.evaluate(9, state)
    dev.save(9, state)
    assert [c["step"] for c in progress["curve"]] == [3, 6, 9]  # every score is on the curve
    assert progress["best_step"] == 9 and progress["best"] == 0.7 and saved == [3, 9]
