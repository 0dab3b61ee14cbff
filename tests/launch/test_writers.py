"""train.writers: metrics.jsonl (appended locally, numbered parts on a bucket), TensorBoard and an
optional Weights & Biases writer behind one interface. TensorFlow's in-memory filesystem (ram://)
stands in for GCS, as in test_storage.py."""

import json
import os
import sys
import types

import pytest

from launch.configs import bert
from launch.pretraining import run as pretraining
from launch.train import reporting, storage, writers
from launch.train import workdir as workdir_lib


def _rows(n, start=1):
    return [(step, {"loss": float(step)}) for step in range(start, start + n)]


def _log(workdir, rows, *, resume_step=0, spec="jsonl"):
    logger = reporting.MetricLogger(workdir, resume_step=resume_step, writers=spec)
    for step, scalars in rows:
        logger.write(step, scalars, echo=False)
    logger.close()


def _remote(tmp_path) -> str:
    return f"ram://{tmp_path.name}/run"  # one bucket per test: ram:// lives as long as the process


def _text(path) -> str:
    with storage.open_file(path) as f:
        return f.read()


def test_the_default_and_the_names():
    assert writers.parse(writers.DEFAULT) == ["jsonl", "tensorboard"]
    assert writers.parse(" jsonl , wandb ") == ["jsonl", "wandb"]
    assert writers.parse("") == []
    assert bert.get_config("tiny").train.writers == writers.DEFAULT


@pytest.mark.parametrize("spec", ["jsonl,tensorbord", "jsonl,jsonl", "csv"])
def test_an_unknown_or_repeated_writer_is_refused_in_one_line(spec):
    with pytest.raises(ValueError) as e:
        writers.check(spec)
    assert str(e.value).startswith(f"train.writers={spec!r}: ")
    assert str(e.value).endswith("use a comma-separated list of jsonl, tensorboard, wandb, e.g. "
                                 "--config.train.writers=jsonl,tensorboard,wandb")


def test_a_remote_jsonl_is_written_in_bounded_parts_never_rewritten_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(writers, "PART_LINES", 3)
    workdir = _remote(tmp_path)
    written = []  # the size, in rows, of every object written
    real_open = storage.open_file

    def recording_open(path, mode="r"):
        f = real_open(path, mode)
        if "w" in mode:
            write = f.write
            f.write = lambda text: (written.append((os.path.basename(path), text.count("\n"))),
                                    write(text))[1]
        return f
    monkeypatch.setattr(storage, "open_file", recording_open)
    _log(workdir, _rows(7))
    assert sorted(storage.listdir(workdir)) == [
        "metrics.jsonl-00001", "metrics.jsonl-00002", "metrics.jsonl-00003"]
    assert [len(_text(f"{workdir}/{n}").splitlines()) for n in sorted(storage.listdir(workdir))
            ] == [3, 3, 1]
    assert max(rows for _, rows in written) == 3  # each write: the current part only
    assert len(written) == 7  # one per logged row
    assert [r["step"] for r in writers.read_jsonl(workdir)] == list(range(1, 8))


def test_a_resumed_remote_run_drops_later_rows_and_starts_a_new_part(tmp_path, monkeypatch):
    monkeypatch.setattr(writers, "PART_LINES", 3)
    workdir = _remote(tmp_path)
    _log(workdir, _rows(7))
    _log(workdir, _rows(2, start=5), resume_step=4)  # restored at step 4: rows 5..7 go
    assert sorted(storage.listdir(workdir)) == ["metrics.jsonl-00001", "metrics.jsonl-00002",
                                                "metrics.jsonl-00003"]
    assert _text(f"{workdir}/metrics.jsonl-00002") == '{"step": 4, "loss": 4.0}\n'
    assert [r["step"] for r in writers.read_jsonl(workdir)] == [1, 2, 3, 4, 5, 6]


def test_a_remote_workdir_of_the_whole_file_layout_reads_and_resumes(tmp_path):
    workdir = _remote(tmp_path)
    storage.makedirs(workdir)
    with storage.open_file(f"{workdir}/metrics.jsonl", "w") as f:  # as runs wrote it before
        f.write("".join(json.dumps({"step": s, "loss": 1.0}) + "\n" for s in (1, 2, 3)))
    _log(workdir, _rows(1, start=3), resume_step=2)
    assert [r["step"] for r in writers.read_jsonl(workdir)] == [1, 2, 3]
    assert sorted(storage.listdir(workdir)) == ["metrics.jsonl", "metrics.jsonl-00001"]


def test_a_local_jsonl_is_one_file_appended_and_a_torn_line_goes_on_resume(tmp_path):
    workdir = str(tmp_path / "run")
    _log(workdir, _rows(3))
    with open(os.path.join(workdir, "metrics.jsonl"), "a") as f:
        f.write('{"step": 4, "lo')  # a write cut short by a crash
    assert [r["step"] for r in writers.read_jsonl(workdir)] == [1, 2, 3]
    _log(workdir, _rows(2, start=3), resume_step=2)
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        assert [json.loads(line)["step"] for line in f] == [1, 2, 3, 4]
    assert os.listdir(workdir) == ["metrics.jsonl"]


def test_tensorboard_gets_the_rows_and_no_writer_means_progress_lines_only(tmp_path, capsys):
    _log(str(tmp_path / "tb"), _rows(2), spec="tensorboard")
    assert os.listdir(tmp_path / "tb") == ["tensorboard"]
    assert os.listdir(tmp_path / "tb" / "tensorboard")
    logger = reporting.MetricLogger(str(tmp_path / "none"), writers="")
    logger.write(1, {"loss": 2.0})
    logger.close()
    assert capsys.readouterr().out == "step=1 loss=2\n"
    assert os.listdir(tmp_path / "none") == []


class _FakeRun:
    def __init__(self, **kwargs):
        self.init, self.logged, self.finished = kwargs, [], False

    def log(self, row, step):
        self.logged.append((step, row))

    def finish(self):
        self.finished = True


def test_wandb_gets_every_row_with_one_run_per_workdir(tmp_path, monkeypatch):
    runs = []
    fake = types.SimpleNamespace(init=lambda **kw: runs.append(_FakeRun(**kw)) or runs[-1])
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_RUN_ID", raising=False)
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    workdir = str(tmp_path / "run")
    for _ in range(2):  # a run, then its resumption: the same W&B run
        logger = reporting.MetricLogger(workdir, writers="jsonl,wandb", config={"seed": 0})
        logger.write(1, {"loss": 2.0}, echo=False)
        logger.close()
    first, again = runs
    assert first.init["id"] == again.init["id"] and first.init["id"].startswith("pretrax-")
    assert first.init["resume"] == "allow" and first.init["project"] == "pretrax"
    assert first.init["name"] == "run" and first.init["dir"] == workdir
    assert first.init["config"] == {"seed": 0}
    assert first.logged == [(1, {"loss": 2.0})] and first.finished
    assert writers.read_jsonl(workdir) == [{"step": 1, "loss": 2.0}]  # jsonl kept beside it
    assert not os.path.exists(os.path.join(workdir, "tensorboard"))


def test_wandb_not_installed_is_refused_before_the_run_writes_anything(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    cfg = bert.get_config("tiny")
    cfg.train.writers = "jsonl,tensorboard,wandb"
    workdir = tmp_path / "run"
    with pytest.raises(ValueError) as e:
        pretraining.train_and_evaluate(cfg, str(workdir))
    assert str(e.value) == (
        "train.writers names wandb, but the wandb package is not installed: "
        "pip install 'pretrax[wandb]' (and wandb login), or leave wandb out of "
        "--config.train.writers (default jsonl,tensorboard)")
    assert not workdir.exists()


def test_a_workdir_from_before_train_writers_resumes(tmp_path):
    cfg = bert.get_config("tiny")
    workdir = str(tmp_path / "run")
    old = cfg.copy_and_resolve_references()
    del old.train["writers"]
    workdir_lib.write_config(workdir, old, [])
    assert workdir_lib.check_config(workdir, cfg) == [
        "train.writers: None -> 'jsonl,tensorboard'"]
    assert reporting.writers_of(old) == writers.DEFAULT
