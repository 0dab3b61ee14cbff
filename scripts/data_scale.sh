#!/usr/bin/env bash
# Memory and start-up of pretraining on a corpus of a given size: writes a synthetic corpus
# (scripts/make_scale_corpus.py), then runs the tiny BERT for 50 steps on it as `stream:` under
# /usr/bin/time -v and prints the peak RSS and the time from start to the first logged step.
# With MB=0 it runs the embedded in-memory corpus instead (the baseline).
#
#   MB=100 bash scripts/data_scale.sh /tmp/scale        # ~100 MB of text in 16 files
#   MB=0 bash scripts/data_scale.sh /tmp/scale          # the embedded corpus, in memory
set -euo pipefail
out=${1:?usage: MB=SIZE scripts/data_scale.sh OUT_DIR}
mb=${MB:-100}
files=${FILES:-16}
cd "$(dirname "$0")/.."
mkdir -p "$out"
if [[ $mb == 0 ]]; then
  corpus=embedded
else
  corpus="stream:$out/corpus_${mb}mb/part-*.txt.gz"
  [[ -e $out/corpus_${mb}mb/part-0000.txt.gz ]] || \
    python scripts/make_scale_corpus.py --output="$out/corpus_${mb}mb" --megabytes="$mb" \
      --files="$files"
fi
workdir=$out/run_${mb}mb
rm -rf "$workdir"
start=$(date +%s.%N)
/usr/bin/time -v python -m launch.pretrain --config=launch/configs/bert.py:tiny \
  --workdir="$workdir" --config.data.corpus="$corpus" --config.train.steps=50 \
  --config.train.log_every=1 --config.train.eval_every=1000 --config.train.eval_batches=4 \
  --config.train.checkpoint_every=1000 > "$out/run_${mb}mb.log" 2> "$out/run_${mb}mb.time" &
pid=$!
first=""
while kill -0 $pid 2>/dev/null; do
  if [[ -z $first ]] && grep -q '^step=1 ' "$out/run_${mb}mb.log" 2>/dev/null; then
    first=$(echo "$(date +%s.%N) - $start" | bc)
  fi
  sleep 0.2
done
wait $pid
[[ -n $first ]] || first=$(echo "$(date +%s.%N) - $start" | bc)
rss=$(grep 'Maximum resident set size' "$out/run_${mb}mb.time" | awk '{print $NF}')
wall=$(grep 'Elapsed (wall clock)' "$out/run_${mb}mb.time" | awk '{print $NF}')
echo "corpus=$corpus peak_rss_mb=$((rss / 1024)) first_step_s=$first wall=$wall"
