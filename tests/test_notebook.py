"""notebooks/quickstart.ipynb runs top to bottom (its FAST sizes), so it cannot rot."""

import json
import os
import pathlib

import nbformat
from nbclient import NotebookClient

NOTEBOOK = pathlib.Path(__file__).parent.parent / "notebooks" / "quickstart.ipynb"


def test_the_notebook_has_no_outputs_and_one_parameters_cell():
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code)
    tagged = [c for c in code if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1 and "FAST" in "".join(tagged[0]["source"])


def test_the_quickstart_notebook_executes(tmp_path, monkeypatch):
    # The kernel (the venv's python3) inherits this environment; it runs in tmp_path, so the
    # notebook's workdirs land there, and imports pretrax from the checkout.
    repo = str(NOTEBOOK.parent.parent)
    monkeypatch.setenv("PRETRAX_NOTEBOOK_FAST", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [repo, *filter(None, [os.environ.get("PYTHONPATH")])]))
    monkeypatch.setenv("XLA_FLAGS", "")  # one CPU device, like a Colab CPU runtime
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=900,  # a cell, on a busy machine
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                   for o in c.outputs)
    assert "pretrained vs scratch" in text and "sentiment_rt" in text
    assert "[step 6, sample] The sea was →" in text  # the GPT's checkpoint continued a prompt
    # es→en scored on generated text, then translated by beam search
    assert "test: {" in text and "'bleu': " in text and "'chrf': " in text
    assert ", beam] En el principio creó Dios los cielos y la tierra. →" in text
    images = [o for c in nb.cells for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert len(images) == 1  # the curves
    assert (tmp_path / "workdirs" / "notebook" / "compare" / "report.md").exists()
