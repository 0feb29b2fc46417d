#!/usr/bin/env bash
# The GPU checks, as two device calls (each under the 10-minute per-call limit), from the repo root:
#
#   bash experiments/gpu_session.sh accuracy      # WRN and MobileNetV2 studies side by side, then JAX vs PyTorch
#   bash experiments/gpu_session.sh throughput    # naive vs optimized member evaluations per GPU-hour
#
# Needs CIFAR-10 as $NAS_DATA_DIR/cifar10_jpeg.npz (default .data/, git-ignored: copy
# ../shared/data/cifar10_jpeg.npz there and carry .data). Writes logs and a results archive under
# $OUT (default ./gpu_out). The studies' accuracies do not depend on what else runs; their timings
# do, so the two timing benchmarks run alone. SMOKE=1 shrinks everything for a CPU dry run.
set -u
phase=${1:?usage: gpu_session.sh accuracy|throughput}
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export NAS_DATA_DIR=${NAS_DATA_DIR:-.data} NAS_CACHE_DIR=${NAS_CACHE_DIR:-/tmp/nas-cache} PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # several processes share the GPU
PY=${PYTHON:-python3}
RUNS=${RUNS:-/tmp/nas-runs}
STUDY_SET=()
TORCH_ARGS=(--epochs 3)
BENCH_ARGS=(--members "${BENCH_MEMBERS:-16}" --workers 8 --naive-members "${NAIVE_MEMBERS:-3}")
if [ "${SMOKE:-0}" = 1 ]; then
  STUDY_SET=(--set members=2 --set draws=2 --set train_examples=500 --set test_examples=200 --set val_size=200
             --set trainer.epochs=1 --set trainer.warmup_epochs=0.5 --set width_multiplier=0.25)
  TORCH_ARGS=(--epochs 2 --train-examples 1024 --width 0.25)
  BENCH_ARGS=(--members 3 --workers 2 --backend processes --epochs 1 --train-examples 1000 --width 0.25 --naive-members 2
              --naive-time-limit 30)
fi
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/session.log"; }

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  $PY -c "import sys, jax, flax, optax; print(sys.version.split()[0], 'jax', jax.__version__, 'flax', flax.__version__,
'optax', optax.__version__, jax.devices())"; date -u; } > "$OUT/device.txt" 2>&1
cat "$OUT/device.txt"
log "decoding CIFAR-10 once into $NAS_CACHE_DIR"
$PY -c "from trainer.data import load_dataset; load_dataset('cifar10')" || { log "no CIFAR-10"; exit 2; }

study() {  # name, run dir, limit s, extra args: the processes backend, then the in-process one on failure
  local name=$1 dir=$2 limit=$3 start=$SECONDS; shift 3
  timeout "$limit" $PY -m nas study "$name" --run-dir "$dir" "${STUDY_SET[@]}" --backend processes "$@" \
    > "$OUT/study_$name.log" 2>&1
  local rc=$?
  log "study $name (processes backend) exit $rc"
  local left=$((limit - (SECONDS - start)))
  if [ $rc -ne 0 ] && [ -f "$dir/config.json" ] && [ $left -gt 30 ]; then
    timeout "$left" $PY -m nas study "$name" --run-dir "$dir" --resume --backend pipelined \
      >> "$OUT/study_$name.log" 2>&1
    log "study $name resumed in-process: exit $?"
  fi
}

case $phase in
accuracy)
  log "studies: wrn and mobilenetv2-cifar side by side"
  study wrn "$RUNS/study_wrn" 330 --workers 4 --max-minutes 4.5 &
  study mobilenetv2-cifar "$RUNS/study_mnv2" 300 --workers 1 &
  wait
  log "JAX vs PyTorch trainer benchmark (alone on the GPU)"
  timeout 200 $PY -m experiments.bench_jax_vs_torch "${TORCH_ARGS[@]}" --out "$OUT/bench_torch.json" \
    > "$OUT/bench_torch.log" 2>&1
  log "bench_jax_vs_torch exit $?"
  # one archive of the study outputs (points, summaries, findings, plots, member records and logits)
  tar -czf "$OUT/studies.tgz" -C "$RUNS" . 2>/dev/null
  log "archived: $(du -h "$OUT/studies.tgz" | cut -f1)"
  ;;
throughput)
  log "naive vs optimized member evaluations per GPU-hour"
  timeout "${BENCH_LIMIT:-520}" $PY -m experiments.bench_throughput "${BENCH_ARGS[@]}" \
    --out "$OUT/bench_throughput.json" > "$OUT/bench_throughput.log" 2>&1
  log "bench_throughput exit $?"
  ;;
*) echo "unknown phase $phase" >&2; exit 2 ;;
esac
