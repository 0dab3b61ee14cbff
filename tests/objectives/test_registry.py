"""The objective registry: every record agrees with the batch schema and with what its loss
reads and returns; names are checked; objectives/ stays free of data/."""

import ast
import pathlib

import jax
import jax.numpy as jnp
import pytest

from data import features, sentence_order
from objectives import OBJECTIVES, PRETRAINING, registry, weighted

B, L, P, V = 2, 12, 3, 11

# The model outputs each objective reads, at test shapes.
OUTPUT_SHAPES = {"mlm_logits": (B, P, V), "nsp_logits": (B, 2), "sop_logits": (B, 2),
                 "order_logits": (B, 9), "logits": (B, L, V), "plm_logits": (B, P, V),
                 "start_logits": (B, L), "end_logits": (B, L)}
OUTPUT_SHAPES_BY_NAME = {"classification": {"logits": (B, 3)}, "regression": {"logits": (B, 1)}}


def _inputs(spec):
    """Zero outputs (only ``spec.outputs``) and a zero batch (only ``spec.batch_keys``, at the
    schema's shapes and dtypes) for ``spec``."""
    shapes = {**OUTPUT_SHAPES, **OUTPUT_SHAPES_BY_NAME.get(spec.name, {})}
    outputs = {k: jnp.zeros(shapes[k], jnp.float32) for k in spec.outputs}
    schema = features.shapes(spec.name, B=B, L=L, P=P, S=L + 1, T=L)
    batch = {k: jnp.zeros(*schema[k]) for k in spec.batch_keys}
    return outputs, batch


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_batch_keys_are_in_the_schema_of_the_objective(name):
    spec = OBJECTIVES[name]
    assert spec.name == name
    assert set(spec.batch_keys) <= set(features.schema(name)), name
    if spec.baseline is not None:
        assert {spec.baseline.targets, spec.baseline.weights} <= set(spec.batch_keys)


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_the_loss_needs_only_its_declared_reads_and_returns_its_metrics(name):
    spec = OBJECTIVES[name]
    outputs, batch = _inputs(spec)
    options = {"sep_id": features.SEP_ID} if "sep_id" in spec.options else {}
    terms, metrics = jax.eval_shape(lambda o, b: spec.loss(o, b, **options), outputs, batch)
    assert set(spec.metrics) <= set(metrics), (name, sorted(metrics))
    assert terms and all(k in metrics for k in terms)  # every optimised term is also reported


def test_families_and_heads():
    assert PRETRAINING == ("mlm", "nsp", "sop", "order", "clm", "plm", "seq2seq")
    sentence = [n for n in PRETRAINING if OBJECTIVES[n].inputs == registry.SENTENCE_INPUTS]
    assert sentence == ["mlm", "nsp", "sop", "order"]
    heads = {n for n, o in OBJECTIVES.items() if o.head_classes is not None}
    assert heads == {"nsp", "sop", "order"}

    class DataOptions:
        order_max_segments = 0

    for k in (1, 2, 3, 4):
        DataOptions.order_max_segments = k
        assert OBJECTIVES["order"].head_classes(DataOptions) == sentence_order.num_order_classes(k)
        assert OBJECTIVES["sop"].head_classes(DataOptions) == 2


def test_unknown_names_are_refused_in_one_line_naming_the_known():
    with pytest.raises(ValueError, match="known: clm, mlm, nsp, order, plm, seq2seq, sop$") as e:
        registry.active_weights({"mlm": 1.0, "sentence_shuffle": 1.0})
    assert "\n" not in str(e.value) and "sentence_shuffle" in str(e.value)
    # A fine-tuning kind has a record, but is no pretraining objective.
    with pytest.raises(ValueError, match="unknown objectives \\['classification'\\]"):
        weighted({"classification": 1.0})
    with pytest.raises(ValueError, match="known: classification, clm, .*span_qa$"):
        registry.get("nope")
    assert registry.get("span_qa") is OBJECTIVES["span_qa"]


def test_weighted_needs_the_declared_options_and_the_declared_reads():
    with pytest.raises(ValueError, match="order: sep_id"):
        weighted({"mlm": 1.0, "order": 1.0})
    weighted({"mlm": 1.0, "order": 0.0})  # not active: no option needed
    outputs, batch = _inputs(OBJECTIVES["mlm"])
    with pytest.raises(ValueError, match="objective nsp needs output nsp_logits, batch key "
                                         "nsp_labels"):
        weighted({"mlm": 1.0, "nsp": 1.0})(outputs, batch)


def _imported_modules(path: pathlib.Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_objectives_import_nothing_from_data_or_launch():
    package = pathlib.Path(registry.__file__).parent
    files = sorted(package.glob("**/*.py"))
    assert len(files) >= 8
    for path in files:
        bad = {m for m in _imported_modules(path) if m.split(".")[0] in ("data", "launch")}
        assert not bad, f"{path.name} imports {sorted(bad)}"
