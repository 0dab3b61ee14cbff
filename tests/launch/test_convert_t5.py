"""launch.convert for T5 v1.1 through files: transformers' save_pretrained → pretrax workdir (same
logits) → model.safetensors → from_pretrained (the same weights); a scanned run exports too."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import jax  # noqa: E402

from launch.conversion import huggingface  # noqa: E402
from launch.train import workdir as workdir_lib  # noqa: E402
from tests.lm import test_t5_parity as parity  # noqa: E402
from tests.lm.test_hf_maps import TOL, _jiggle  # noqa: E402


def test_import_then_export_round_trips_through_files(tmp_path, capsys):
    original = _jiggle(parity.hf_t5())
    original.save_pretrained(str(tmp_path / "hf"), safe_serialization=True)
    huggingface.import_hf(str(tmp_path / "hf"), str(tmp_path / "wd"))
    assert "loaded: encoder-decoder (" in capsys.readouterr().out
    cfg = workdir_lib.read_config(str(tmp_path / "wd"))
    assert (cfg["model"]["arch"], cfg["model"]["num_decoder_layers"]) == ("t5", 3)
    arch, config, params, step = huggingface.load_workdir(str(tmp_path / "wd"))
    assert (arch, step, config.decoder_layers) == ("t5", 0, 3)
    batch = parity._batch(2)
    np.testing.assert_allclose(parity._ours(config, params, batch),
                               parity._theirs(original, batch), **TOL)

    huggingface.export_hf(str(tmp_path / "wd"), str(tmp_path / "out"))
    exported = json.loads((tmp_path / "out" / "config.json").read_text())
    assert exported["architectures"] == ["T5ForConditionalGeneration"]
    reloaded = transformers.AutoModelForPreTraining.from_pretrained(str(tmp_path / "out")).eval()
    assert type(reloaded) is transformers.T5ForConditionalGeneration
    theirs, ours = original.state_dict(), reloaded.state_dict()
    assert set(theirs) == set(ours)
    for name, value in theirs.items():
        np.testing.assert_array_equal(ours[name].numpy(), value.numpy(), err_msg=name)


def test_a_scanned_run_unstacks_both_stacks():
    stacked = {"encoder": {"layers": {"w": np.arange(2)}, "final_norm": 1},
               "decoder": {"layers": {"w": np.arange(3) + 10}}, "lm_head": 2}
    out = huggingface.unstack_layers(jax.tree.map(np.asarray, stacked), 2, 3)
    assert sorted(out["encoder"]) == ["final_norm", "layers_0", "layers_1"]
    assert [int(out["decoder"][f"layers_{n}"]["w"]) for n in range(3)] == [10, 11, 12]
