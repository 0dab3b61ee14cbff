"""A workdir on a bucket: config, metrics and results go through tf.io.gfile, not a local "gs:"
directory. TensorFlow's in-memory filesystem (ram://) stands in for GCS."""

import os

from launch.configs import bert
from launch.train import reporting, storage, writers
from launch.train import workdir as workdir_lib


def test_paths_with_a_scheme_stay_as_they_are():
    assert storage.absolute("gs://bucket/run") == "gs://bucket/run"
    assert storage.absolute("run") == os.path.abspath("run")
    assert storage.is_remote("gs://b/x") and not storage.is_remote("/tmp/x")


def test_config_metrics_and_results_are_written_to_the_remote_workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a local "ram:" directory would appear here
    workdir = "ram://bucket/run"
    cfg = bert.get_config("tiny")
    workdir_lib.write_config(workdir, cfg, [])
    assert workdir_lib.read_config(workdir)["model"]["hidden_size"] == 128
    assert workdir_lib.check_config(workdir, cfg) == []
    logger = reporting.MetricLogger(workdir)
    logger.write(1, {"loss": 2.0}, echo=False)
    logger.write(2, {"loss": 1.5}, echo=False)
    logger.close()
    resumed = reporting.MetricLogger(workdir, resume_step=1)  # drops step 2, keeps step 1
    resumed.write(2, {"loss": 1.25}, echo=False)
    resumed.close()
    # Remote rows go to numbered parts (writers.py), read back as one metrics.jsonl.
    assert [row["loss"] for row in writers.read_jsonl(workdir)] == [2.0, 1.25]
    assert not any(p.name.startswith("ram") for p in tmp_path.iterdir())
