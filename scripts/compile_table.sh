#!/usr/bin/env bash
# The README's "Choosing a mesh" table: every row is launch.compile's own figures for a shipped
# config compiled ahead of time for a TPU topology, on any host (needs libtpu:
# pip install -e '.[tpu]'). About 30-60 minutes on 2 CPU cores (one compile a row; the two rows
# that do not fit also compile the settings the binary tries).
#
#   bash scripts/compile_table.sh OUT_DIR        # then: python -m launch.compiling.table OUT_DIR
#   JOBS=2 ROWS='0[4-9]|1' bash scripts/compile_table.sh OUT_DIR   # 2 at a time; rows by name
# (XLA's TPU compiler mostly uses one core, so JOBS=2 on 2 cores nearly halves the wall time.)
set -uo pipefail
out=${1:?usage: scripts/compile_table.sh OUT_DIR}
jobs=${JOBS:-1}
rows=${ROWS:-.}
mkdir -p "$out"
cd "$(dirname "$0")/.."
seq128="--config.data.max_seq_length=128 --config.data.max_predictions_per_seq=20"
compile_row() {
  local name=$1 config=$2 topology=$3
  shift 3
  # shellcheck disable=SC2068
  python -m launch.compile --config="$config" --topology="$topology" $@ \
    --json="$out/$name.json" > "$out/$name.log" 2>&1
  echo "== $name: exit $? ($out/$name.log)"
}
row() {  # row NN_label config topology [overrides...]
  [[ $1 =~ ^($rows) ]] || return 0
  echo "== $1: launch.compile --config=$2 --topology=$3 ${*:4}"
  while (( $(jobs -rp | wc -l) >= jobs )); do wait -n; done
  compile_row "$@" &
}
row 01_BERT-base_seq_128 launch/configs/bert.py:base v5e:2x4 $seq128
row 02_BERT-base_seq_512 launch/configs/bert.py:base v5e:2x4
row 03_BERT-large_seq_128 launch/configs/bert.py:large v4:2x2x2 $seq128
row 04_BERT-large_seq_512 launch/configs/bert.py:large v4:2x2x2
row 05_GPT-2_small launch/configs/gpt.py:small v5e:2x4
row 06_GPT-2_medium launch/configs/gpt.py:medium v5e:4x4
row 07_GPT-2_large launch/configs/gpt.py:large v5p:2x2x2
row 08_GPT_1.3B launch/configs/gpt.py:1b3 v5e:4x8
row 09_GPT_1.3B_attention_xla launch/configs/gpt.py:1b3 v5e:4x8 --config.model.attention_impl=xla
row 10_GPT_7B launch/configs/gpt.py:7b v5e:16x16
row 11_GPT_7B_data-parallel_on_v5e-8 launch/configs/gpt.py:7b v5e:2x4 --config.mesh.data=-1 \
  --config.mesh.fsdp=1
wait
python -m launch.compiling.table "$out"
