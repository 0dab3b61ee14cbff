"""Writes the monolingual Spanish/English pretraining corpora of the Bible task's train split
(data/corpora/seq2seq/, see data/monolingual.py) and their manifest.

Run from the repository root: ``python scripts/build_seq2seq_corpora.py``. Then the tokenizer
(data/tokenizers/README.md) is trained on exactly these two files.
"""

import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from data import monolingual  # noqa: E402

OUT = os.path.join("data", "corpora", "seq2seq")

if __name__ == "__main__":
    written = monolingual.write_corpora(OUT)
    manifest = {}
    for lang, path in written.items():
        docs = monolingual.monolingual_documents(lang)
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        manifest[os.path.basename(path)] = {
            "language": lang, "split": "train", "documents": len(docs),
            "sentences": sum(len(v) for _, v in docs), "sha256": digest,
            "first_chapters": [name for name, _ in docs[:3]]}
        print(path, manifest[os.path.basename(path)])
    with open(os.path.join(OUT, "MANIFEST.json"), "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, ensure_ascii=False)
        f.write("\n")
