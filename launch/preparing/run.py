"""``launch.prepare_data``'s work: a corpus tokenised once into TFRecord shards
(``data.prepared``), with progress lines on stdout."""

from __future__ import annotations

import time

from data import prepared


def prepare(corpus: str, tokenizer: str, output: str, num_shards: int,
            tfds_data_dir: str = "") -> dict:
    """Writes ``output`` (``data.prepared.prepare``) and prints where it is and the result."""
    start = time.perf_counter()
    arguments = {"corpus": corpus, "tokenizer": tokenizer, "output": output,
                 "num_shards": num_shards, "tfds_data_dir": tfds_data_dir}
    manifest = prepared.prepare(corpus, tokenizer, output, num_shards,
                                tfds_data_dir=tfds_data_dir, arguments=arguments,
                                progress=lambda line: print(line, flush=True))
    docs = sum(s["documents"] for s in manifest["shards"])
    print(f"pretrain on it with --config.data.corpus=prepared:{output} "
          f"--config.data.tokenizer={tokenizer} ({docs} documents, "
          f"{time.perf_counter() - start:.1f} s)", flush=True)
    return manifest
