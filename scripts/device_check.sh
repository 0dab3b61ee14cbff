#!/usr/bin/env bash
# The device check: on a borrowed GPU or TPU host, time pretrax's bfloat16 train step at BERT-base
# (seq 512, 76 predictions) and GPT-2 small (seq 1024) shapes with launch.benchmark and print MFU
# against the chip's published peak (launch/train/flops.py:CHIPS). About 3-5 minutes, mostly
# compiles. Then AOT-compiles the same two shapes through launch.compile for this host's devices,
# so the measured step sits beside XLA's roofline bound for it.
#
#   bash scripts/device_check.sh [OUT_DIR]      # figures as JSON in OUT_DIR (default: .)
set -euo pipefail
out=${1:-.}
mkdir -p "$out"
cd "$(dirname "$0")/.."
for shape in bert_base_512 gpt2_small; do
  echo "== launch.benchmark --shape=$shape (bfloat16)"
  python -m launch.benchmark --shape="$shape" --notorch --nopipeline --steps=10 --rounds=3 \
    --json="$out/benchmark_$shape.json"
done
echo "== launch.compile for this host's devices (roofline bounds)"
python -m launch.compile --config=launch/configs/bert.py:base --config.train.batch_size=32 \
  --json="$out/compile_bert_base.json" || true
python -m launch.compile --config=launch/configs/gpt.py:small --config.train.batch_size=8 \
  --json="$out/compile_gpt_small.json" || true
python - "$out" <<'PY'
import json, sys
out = sys.argv[1]
for shape in ("bert_base_512", "gpt2_small"):
    r = json.load(open(f"{out}/benchmark_{shape}.json"))
    p = r["runs"]["pretrax"]
    print(f"{shape}: {r['device']} × {r['device_count']}: {p['ms_per_step']:.1f} ms/step, "
          f"{p['tokens_per_s']:,.0f} tokens/s, MFU {p['mfu']:.1%} of {r['peak_source']}")
PY
