#!/usr/bin/env bash
# Issue #28's GPU measurements in one bounded run, from the repository root of a checkout on a
# CUDA machine (no install needed: the project runs from the checkout with that machine's torch):
#   1. CUDA inference: bench.dfo_inference on paper_real (1024 and 2048 samples, auto = bf16 search,
#      and float32), the explicit paper_real_mse, and the shipped pixel policy; the training step
#      of push_pixels and of the paper's particle network (ibc-bench train);
#   2. the CUDA checkpoint test (tests/test_core_checkpoint.py -k cuda);
#   3. the particle study (paper Fig. 6) at the paper's network and Langevin recipe:
#      scripts/particle_sweep.py --paper-network, IBC Langevin and MSE at 2/4/8/16-D, 2,000 demos
#      each, every training stopped after TRAIN_SECONDS, 100 held-out seeds evaluated in lock-step;
#      nvidia-smi dmon samples the GPU's load meanwhile.
# Everything lands in OUT (default out/gpu_session): session.log, machine.txt, results.tar.gz
# (all JSON, logs and the particle policies), particle_summary.json, particle_results.md and
# success_vs_dim.png.
#
#   OUT=out/gpu scripts/gpu_session.sh                                  # the real thing (~8 min)
#   OUT=/tmp/rehearsal DEVICE=cpu TINY=1 scripts/gpu_session.sh         # CPU rehearsal, tiny sizes
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/gpu_session}
DEVICE=${DEVICE:-cuda}
PY=${PYTHON:-python3}
TRAIN_SECONDS=${TRAIN_SECONDS:-240}
WORK=${WORK:-/tmp/ibc_gpu_session}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$WORK/bench"
log="$OUT/session.log"
failures=0

step() { echo "=== [$(date -u +%T) +${SECONDS}s] $*" | tee -a "$log"; }
# Each step runs even if an earlier one failed; its exit status is logged and counted.
run() {
  step "\$ $*"
  "$@" 2>&1 | tee -a "$log"
  local status=${PIPESTATUS[0]}
  [ "$status" = 0 ] || { failures=$((failures + 1)); step "exit $status: $*"; }
}

if [ -n "${TINY:-}" ]; then   # rehearsal sizes: every step runs, nothing is measured
  repeats=3; quality=2; iterations=2; samples=(64); episodes=20; steps=20; eval_episodes=4; dims=(2 4)
  sweep_extra=(model.mlp.depth=2 ebm.counter_examples=8 ebm.langevin.iterations=3
               ebm.langevin.inference_samples=16)
else
  repeats=200; quality=16; iterations=20; samples=(1024 2048); episodes=2000; steps=50000; eval_episodes=100
  dims=(2 4 8 16); sweep_extra=()
fi

{
  date -u
  nvidia-smi -L 2>&1 || true
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 || true
  "$PY" -c 'import torch, platform; print("python", platform.python_version(), "torch", torch.__version__,
"cuda", torch.version.cuda, "available", torch.cuda.is_available(),
torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
  nproc
} >"$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt" | tee -a "$log"

# 1. Inference and training-step latency (nothing else on the GPU meanwhile).
bench="$WORK/bench"
run "$PY" -m bench.dfo_inference --config paper_real --device "$DEVICE" --samples "${samples[@]}" \
    --repeats "$repeats" --quality "$quality" --json "$bench/inference_${DEVICE}_paper_real.json"
run "$PY" -m bench.dfo_inference --config paper_real --device "$DEVICE" --precision float32 \
    --repeats "$repeats" --quality 0 --json "$bench/inference_${DEVICE}_paper_real_fp32.json"
run "$PY" -m bench.dfo_inference --checkpoint policies/push_pixels.pt --device "$DEVICE" \
    --repeats "$repeats" --quality "$quality" --json "$bench/inference_${DEVICE}_push_pixels_policy.json"
run "$PY" -m ibc_cli.bench inference --config paper_real_mse --device "$DEVICE" \
    --iterations "$repeats" --json "$bench/inference_${DEVICE}_paper_real_mse.json"
run "$PY" -m ibc_cli.bench train --config push_pixels --device "$DEVICE" \
    --iterations "$iterations" --warmup 2 --json "$bench/train_${DEVICE}_push_pixels.json"
particle_bench=(); [ -n "${TINY:-}" ] && particle_bench=(model.mlp.depth=2 ebm.langevin.iterations=3)
run "$PY" -m ibc_cli.bench train --config particle --device "$DEVICE" \
    --iterations "$iterations" --warmup 2 --json "$bench/train_${DEVICE}_particle_paper.json" "${particle_bench[@]}"

# 2. The CUDA checkpoint test (skips, and says so, without CUDA).
run "$PY" -m pytest -q -rA tests/test_core_checkpoint.py -k cuda -p no:cacheprovider \
    --junitxml "$bench/test_core_checkpoint_cuda.xml"

# 3. The particle study; cells run concurrently, each training bounded by TRAIN_SECONDS, the whole
# sweep by SWEEP_SECONDS (finished cells are kept: the sweep rewrites its summary after each).
sweep="$WORK/particle"
dmon=""
if command -v nvidia-smi >/dev/null; then
  nvidia-smi dmon -s u -d 5 >"$bench/gpu_utilisation.txt" 2>&1 &
  dmon=$!
fi
run timeout -k 10 "${SWEEP_SECONDS:-$((TRAIN_SECONDS + 150))}" \
    "$PY" scripts/particle_sweep.py --out "$sweep" --paper-network --device "$DEVICE" \
    --dims "${dims[@]}" --methods langevin mse --episodes "$episodes" --steps "$steps" \
    --eval-episodes "$eval_episodes" --eval-batch "$eval_episodes" --max-train-seconds "$TRAIN_SECONDS" \
    --jobs $((2 * ${#dims[@]})) --data-workers 8 "${sweep_extra[@]}"
[ -n "$dmon" ] && kill "$dmon" 2>/dev/null

step "packing results ($failures failed steps)"
cp "$sweep/summary.json" "$OUT/particle_summary.json" 2>/dev/null
cp "$sweep/results.md" "$OUT/particle_results.md" 2>/dev/null
cp "$sweep/success_vs_dim.png" "$OUT/success_vs_dim.png" 2>/dev/null
tar -czf "$OUT/results.tar.gz" -C "$WORK" bench \
    $(cd "$WORK" && ls -d particle/eval particle/logs particle/summary.json particle/runs/*/policy.pt 2>/dev/null)
ls -la "$OUT" | tee -a "$log"
step "done, $failures failed steps"
exit $((failures > 0))
