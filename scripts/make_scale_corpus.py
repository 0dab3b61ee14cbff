"""Writes a large synthetic pretraining corpus for measuring the streamed data path.

The embedded corpus's documents, repeated: each copy in a shuffled document order and with about
5% of its words replaced by other words of the corpus (so copies are not byte-identical), dealt
into N gzipped files until the uncompressed text reaches the target size. Seeded: the same
arguments write the same files.

  python scripts/make_scale_corpus.py --output=/tmp/scale100m --megabytes=100 --files=16
"""

from __future__ import annotations

import argparse
import gzip
import os
import random

from data import sources


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, help="directory to write part-*.txt.gz into")
    parser.add_argument("--megabytes", type=float, default=100.0,
                        help="uncompressed size to reach")
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--perturb", type=float, default=0.05,
                        help="share of words replaced per copy")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    docs = [list(d) for d in sources.read_documents("embedded")]
    vocab = sorted({w for d in docs[:200] for s in d for w in s.split()})
    os.makedirs(args.output, exist_ok=True)
    outs = [gzip.open(os.path.join(args.output, f"part-{i:04d}.txt.gz"), "wt", compresslevel=3)
            for i in range(args.files)]
    target, written, copy, n = args.megabytes * 1e6, 0, 0, 0
    try:
        while written < target:
            for i in rng.sample(range(len(docs)), len(docs)):
                lines = []
                for sentence in docs[i]:
                    words = [rng.choice(vocab) if rng.random() < args.perturb else w
                             for w in sentence.split()]
                    lines.append(" ".join(words))
                text = "\n".join(lines) + "\n\n"
                outs[n % args.files].write(text)
                written += len(text.encode())
                n += 1
                if written >= target:
                    break
            copy += 1
    finally:
        for f in outs:
            f.close()
    print(f"wrote {n} documents ({copy} copies, {written / 1e6:.0f} MB uncompressed) into "
          f"{args.files} files in {args.output}")


if __name__ == "__main__":
    main()
