#!/usr/bin/env bash
# Reruns every benchmark of docs/BENCHMARKS.md; results land in bench/results/*.json.
# Low CPU priority: other work on the machine keeps precedence (the ratios are measured
# interleaved, so they survive background load; absolute times do not).
# Usage: bench/run_all.sh [checkpoint] [dataset]   (defaults: policies/push_pixels.pt, data/push_pixels)
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results
mkdir -p "$out"
checkpoint=${1:-policies/push_pixels.pt}
dataset=${2:-data/push_pixels}
run() { nice -n 19 ./run.sh python -m "$@"; }

run bench.dfo_inference --config paper_real --samples 1024 2048 --repeats 20 --json $out/inference_paper_real.json
run bench.dfo_inference --config paper_real --samples 4096 16384 --repeats 5 --quality 4 --json $out/inference_paper_real_large.json
run bench.dfo_inference --config paper_real --precision float32 --repeats 10 --quality 0 --json $out/inference_paper_real_fp32.json
run bench.dfo_inference --config paper_real --precision int8 --repeats 10 --quality 8 --json $out/inference_paper_real_int8.json
run bench.dfo_inference --config paper_real --threads 2 --repeats 10 --quality 0 --json $out/inference_paper_real_2threads.json
run bench.dfo_inference --config push_pixels --repeats 30 --json $out/inference_push_pixels.json
if [ -f "$checkpoint" ] && [ -d "$dataset" ]; then   # recorded frames: ibc-data generate --task push_pixels
  run bench.dfo_inference --checkpoint "$checkpoint" --dataset "$dataset" --repeats 20 --quality 64 \
      --json $out/inference_checkpoint_recorded.json
  run bench.dfo_inference --checkpoint "$checkpoint" --dataset "$dataset" --precision int8 --repeats 20 --quality 64 \
      --json $out/inference_checkpoint_recorded_int8.json
fi
run bench.train_throughput --config states --repeats 8 --json $out/train_states.json
run bench.train_throughput --config push_pixels --repeats 8 --json $out/train_push_pixels.json
run bench.controller --cycles 1000 --seconds 20 --json $out/controller.json
run bench.controller_node --seconds 20 --json $out/controller_node.json
run bench.recording --seconds 60 --json $out/recording.json
if [ -f "$checkpoint" ]; then
  run bench.end_to_end --policy "$checkpoint" --seconds 60 --json $out/end_to_end.json
fi
