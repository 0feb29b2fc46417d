#!/usr/bin/env bash
# The GPU checks, as device calls (each under the 10-minute per-call limit), from the repo root;
# several phases may go in one call, in the order given:
#
#   bash experiments/gpu_session.sh accuracy      # the MobileNetV2 ensemble study, then JAX vs PyTorch
#   bash experiments/gpu_session.sh recipes       # proxy-recipe variants on one MobileNetV2 (at most
#                                                 # 420 s + decoding); its recipes.txt ends with the next call:
#   PROXY_SET=RECIPE TORCH_MODES=none bash experiments/gpu_session.sh accuracy   # the study alone
#   PROXY_SET=best TORCH_MODES=none bash experiments/gpu_session.sh accuracy     # the same, with the
#                                                 # recipes call's best: it can follow at once, unread
#   bash experiments/gpu_session.sh wrn           # the WRN-16-k study (about 5 minutes on an H200)
#   WRN_SET="trainer.epochs=30 trainer.warmup_epochs=3" WRN_MINUTES=9 WRN_LIMIT=560 bash experiments/gpu_session.sh wrn
#   bash experiments/gpu_session.sh compile       # compile seconds vs training speed per compile option
#                                                 # (COMPILE_VARIANTS=default,... to include the defaults)
#   bash experiments/gpu_session.sh firstrun      # first-call vs steady seconds per MobileNetV2 layer kind
#                                                 # (about 1-2 minutes, estimated; the cause of the
#                                                 # 18 s first epoch and 6.5 s scoring of every member)
#   bash experiments/gpu_session.sh throughput    # naive vs optimized member evaluations per GPU-hour
#   OPT_LIMIT=60 OPT_HARD_STOP=200 NAIVE_LIMIT=30 bash experiments/gpu_session.sh compile throughput
#       # one call of at most about 9.5 minutes: the optimized mode takes the compile phase's best
#       # variant (OPT_VARIANT=best, the default)
#   bash experiments/gpu_session.sh search        # the CIFAR-10 search (experiments/search_cifar10.py)
#
# Autotuning measures kernels on the GPU itself: a compile beside other GPU work is slowed several
# times over (seen on an H200: the MobileNetV2 member beside the WRN study did not finish its
# compile and 10 epochs in 5 minutes; alone, the same network compiled in 82 s in bench_jax_vs_torch),
# so phases run one at a time.
#
# Needs CIFAR-10 as $NAS_DATA_DIR/cifar10_jpeg.npz (default .data/, git-ignored: copy
# ../shared/data/cifar10_jpeg.npz there and carry .data). Writes logs and a results archive under
# $OUT (default ./gpu_out). The studies' accuracies do not depend on what else runs; their timings
# do, so the two timing benchmarks run alone. SMOKE=1 shrinks everything for a CPU dry run. MPS=1
# runs the call's processes under NVIDIA's Multi-Process Service (below, where it starts).
set -u
PHASES="accuracy|recipes|wrn|firstrun|compile|throughput|search"
[ $# -ge 1 ] || { echo "usage: gpu_session.sh $PHASES ..." >&2; exit 2; }
for phase in "$@"; do  # every name checked before the device's time goes into decoding CIFAR-10
  [[ $phase != *"|"* && "|$PHASES|" == *"|$phase|"* ]] || { echo "gpu_session.sh: unknown phase '$phase' (phases: $PHASES)" >&2; exit 2; }
  if [ "$phase" = search ] && [[ ${OPT_VARIANT:-} == *,* ]]; then  # a list is for the throughput phase
    echo "gpu_session.sh: search: OPT_VARIANT must name one variant, not '$OPT_VARIANT'" >&2; exit 2
  fi
done
RUNS=${RUNS:-.runs/gpu}
# PROXY_SET=best: the accuracy phase takes the best recipe of a recipes phase, of this call (named
# before it) or of the call before on the same warm machine ($RUNS/recipes_best.txt), so that the
# accuracy call can follow the recipes call at once, written before its results are read
if [ "${PROXY_SET:-}" = best ] && [[ " $* " == *" accuracy "* ]] && [[ " $* " != *" recipes "*accuracy* ]] \
  && [ ! -s "$RUNS/recipes_best.txt" ]; then
  echo "gpu_session.sh: PROXY_SET=best: no recipes phase has run here ($RUNS/recipes_best.txt); run recipes first or name the recipe" >&2
  exit 2
fi
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
# Work under .runs/ (git-ignored) in the checkout: a device call keeps ignored files of the call
# before it while the machine is still warm (it goes back 30 s after a call), so a call that
# follows at once finds the decoded CIFAR-10 and the compiled programs of the one before (the
# recipes phase's, for the accuracy phase's study: about 100 s saved).
export NAS_DATA_DIR=${NAS_DATA_DIR:-.data} NAS_CACHE_DIR=${NAS_CACHE_DIR:-.runs/nas-cache} PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # several processes share the GPU
# A stacked variant trains its members in one process, and a stack's memory bounds its slots
# (trainer/stacked.py checks each compiled stack's plan against what the allocator may hold): let
# that process take 90% of the GPU's memory instead of JAX's default 75%.
case "${OPT_VARIANT:-}" in
  *stacked) export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.9} ;;
esac
# A lead, not a finding: on the H100 every MobileNetV2 member's first epoch took about 13 s more
# than the others (18.4 s against 1.6 s), and scoring 6.5 s, also for members trained after the
# first one in the same worker process. If that is the CUDA driver compiling PTX (of cuDNN's or
# XLA's kernels) at first use, a larger driver JIT cache than the default 256 MiB keeps it to the
# first member; the records' epoch_s show whether it does.
export CUDA_CACHE_MAXSIZE=${CUDA_CACHE_MAXSIZE:-4294967296}
PY=${PYTHON:-python3}
SEARCH_NAME=search_cifar10  # the search phase's run, $RUNS/$SEARCH_NAME (the studies archive leaves it out)
STUDY_SET=() SEARCH_SMOKE_SET=()
# the proxy recipe (10 epochs, batch 256): the study's config, so its compiled programs are reused.
# PyTorch's loops: torch.compile alone by default (on the H100, 88 s compiling, then about 5 s an
# epoch: some 150 s for 10 epochs); TORCH_MODES=compile,eager adds the eager loop.
TORCH_ARGS=(--torch-modes "${TORCH_MODES:-compile}")
OPT_VARIANT=${OPT_VARIANT:-best}  # best: the compile phase's pick, else the last measured one (pick_variant); none: defaults
# Phase sizes (about 20 s more to decode CIFAR-10): compile <= 120 s (four variants with nothing to
# autotune, three side by side, each a fresh process: start, data, compile on the host CPU, then two
# timed epochs and the scoring, the timed parts one at a time; 45 s for three on the H100; the
# default options are what the throughput phase's naive mode measures; autotune0 keeps XLA's
# convolutions, so its first epoch shows whether their one-time cost is cuDNN's, the matmul ones
# have none; each has a twin without XLA's command buffers (CUDA graphs, built when a program first
# runs: whether the first epoch's and the scoring's one-time seconds are cuDNN's own or the graphs'
# around its calls, bench_compile_options.py). throughput <= 540 s: the optimized mode first,
# starting members for 120 s and waiting for those in flight (hard stop 300 s); then the naive loop,
# starting members for 90 s (each 60-110 s: compile with autotuning, then 10 epochs; 106 s on the
# H200). So `compile throughput` in one 10-minute call needs shorter limits (OPT_LIMIT,
# OPT_HARD_STOP, NAIVE_LIMIT, BENCH_LIMIT). `accuracy` took 232 s for the study on the H100 (one
# MobileNetV2 compile of 103 s, reused by the other members and by the JAX half of the benchmark
# through a shared persistent compilation cache), then about 40 s for JAX and some 220 s for
# PyTorch: about 8 minutes. A 15-minute budget (about 14 of commands) does not hold both calls.
# AUTOTUNE_FROM=.runs/search_cifar10/jax_cache/xla_gpu_per_fusion_autotune_cache_dir (a search run
# carried in): the optimized mode starts with that search's autotuning results, as it runs well into
# a search (bench_throughput.py --autotune-from).
BENCH_ARGS=(--members "${BENCH_MEMBERS:-16}" --workers "${WORKERS:-4}" --naive-members "${NAIVE_MEMBERS:-3}"
            --optimized-time-limit "${OPT_LIMIT:-120}" --naive-time-limit "${NAIVE_LIMIT:-90}"
            ${OPT_HARD_STOP:+--optimized-hard-stop "$OPT_HARD_STOP"} ${OPT_BACKEND:+--backend "$OPT_BACKEND"}
            ${AUTOTUNE_FROM:+--autotune-from "$AUTOTUNE_FROM"}
            ${OPT_WARMUP:+--optimized-warmup "$OPT_WARMUP"} ${WARMUP_LIMIT:+--warmup-time-limit "$WARMUP_LIMIT"}
            ${OPT_PRECOMPILE:+--optimized-precompile "$OPT_PRECOMPILE"}
            ${PRECOMPILE_LIMIT:+--precompile-time-limit "$PRECOMPILE_LIMIT"}
            ${STACK_SLOTS:+--stack-slots "$STACK_SLOTS"} ${STACK_AHEAD:+--stack-ahead "$STACK_AHEAD"})
# A stacked OPT_VARIANT (stacked, shift-stacked, autotune0-matmul-stacked; trainer/stacked.py) runs
# the optimized mode on the stacked backend: members of one input resolution trained STACK_SLOTS
# (default 8) at a time as one program, one program per resolution for the whole run, STACK_AHEAD
# stacks (default 4 on 16 cores) built and compiled on threads while one trains; with
# OPT_WARMUP=4 (or more) the warm-up, not counted, first compiles the 4 resolutions' programs.
# OPT_WARMUP=N (WARMUP_LIMIT=S): the optimized mode's workers first evaluate N other members, not
# counted, so that per-layer and padded programs (OPT_VARIANT=shift-padded, trainer/padded.py) are
# measured as they run that far into a search; the warm-up's seconds come on top of the limits.
# OPT_PRECOMPILE=N (a padded variant): before that, every padded layer kind of the space (12
# covering members, not trained) is compiled in N processes into the optimized mode's cache
# (nas/precompile.py): its seconds are not counted either, and the summary also gives the rate with
# them charged to a 180-member search; PRECOMPILE_LIMIT=S starts no covering member after S s and
# abandons those still compiling at 2S (the workers then compile what is missing as they meet it).
# SEARCH_PRECOMPILE=N does the same for a new or resumed search
# (`nas search --precompile N`; its run must be padded: SEARCH_SET="trainer.compile_unit=padded" or a
# padded OPT_VARIANT).
# Depthwise kinds only by default: on the H200 (2026-12-04) the pointwise ones, autotuned, cost under
# 1 ms a layer more on their first call (experiments/results/gpu_logs_2026-12-04_h200), and the call's
# 100 s ran out before the depthwise ones, the suspects left for the first epoch's one-time seconds.
FIRSTRUN_ARGS=(--kinds "${FIRSTRUN_KINDS:-depthwise,depthwise-shift}")
# COMPILE_PARALLEL=1 for autotuned variants (autotuning times kernels on the GPU: side by side, each
# slows the others' compile), with COMPILE_TIMEOUT s each (a search member's autotuned compile took
# 45-55 s alone on the H100) and COMPILE_LIMIT for the phase.
COMPILE_ARGS=(--members 1 --timeout "${COMPILE_TIMEOUT:-80}" --parallel "${COMPILE_PARALLEL:-3}"
              --variants "${COMPILE_VARIANTS:-autotune0-matmul,autotune0-matmul-nocmdbuf,autotune0,autotune0-nocmdbuf}")
if [ "${SMOKE:-0}" = 1 ]; then
  STUDY_SET=(--set members=2 --set draws=2 --set train_examples=500 --set test_examples=200 --set val_size=200
             --set trainer.epochs=1 --set trainer.warmup_epochs=0.5 --set width_multiplier=0.25)
  TORCH_ARGS=(--epochs 2 --train-examples 1024 --width 0.25 --torch-modes "${TORCH_MODES:-eager}")
  : "${TORCH_LIMIT:=600}"  # PyTorch's bf16 autocast is slow on CPUs
  # members cut to their first 2 of 7 blocks, with a small head (BLOCKS_HELP in bench_throughput.py):
  # whole quarter-width members' compile phase ran past its 120 s on 2 cores
  BENCH_ARGS=(--members 3 --workers 2 --backend "${OPT_BACKEND:-processes}" --epochs 1 --train-examples 1000 --width 0.25 --blocks 2
              --head 64 --naive-members 2 --naive-time-limit 30 ${OPT_WARMUP:+--optimized-warmup "$OPT_WARMUP"}
              ${OPT_PRECOMPILE:+--optimized-precompile "$OPT_PRECOMPILE"}
              ${PRECOMPILE_LIMIT:+--precompile-time-limit "$PRECOMPILE_LIMIT"}
              ${STACK_SLOTS:+--stack-slots "$STACK_SLOTS"} ${STACK_AHEAD:+--stack-ahead "$STACK_AHEAD"})
  COMPILE_ARGS=(--members 1 --train-examples 1000 --val-size 500 --width 0.25 --blocks 2 --head 64
                --variants default,autotune0-matmul --parallel 2)
  FIRSTRUN_ARGS=(--batch 8 --eval-batch 16 --width 0.25 "${FIRSTRUN_ARGS[@]}")
  # a new search run: sizes 1 and 2, one ensemble each (3 members), quarter width with a small head
  SEARCH_SMOKE_SET=(train_examples=500 val_size=200 sizes=1,2 samples_per_size=1 batch=1 trainer.epochs=1
                    trainer.warmup_epochs=0.5 space.width_multiplier=0.25 space.head_filters=64)
  : "${WORKERS:=2}"
fi
# BENCH_SET="batch_size=512 learning_rate=0.4 ...": trainer settings of the proxy recipe that both
# modes train with (the search's own, experiments/cifar_proxy.py, unless changed here), so a recipe
# the search would take (a larger batch: fewer steps an epoch) is measured as the search would run it.
for item in ${BENCH_SET:-}; do BENCH_ARGS+=(--set "$item"); done
log() { echo "[$(date +%T)] $*" | tee -a "$OUT/session.log"; }
# NAS_PROGRAM_STORE=DIR (a folder carried in): programs compiled ahead on the CPU machine for a
# described H100 (experiments/ship_programs.py: the stacked frames), which the trainers load instead
# of compiling (trainer/program_store.py); each load, or why a program was compiled instead, is a
# "program store" line in the phase's log, copied into session.log.
if [ -n "${NAS_PROGRAM_STORE:-}" ]; then
  if [ -f "$NAS_PROGRAM_STORE/ship.json" ]; then
    log "program store $NAS_PROGRAM_STORE: $(find "$NAS_PROGRAM_STORE" -name '*.xla' | wc -l) programs, $($PY -c '
import json, sys; s = json.load(open(sys.argv[1])); print(s["variant"], "x%d" % s["slots"], "frames",
",".join(str(r["resolution"]) for r in s["rows"]), "for", s["target"])' "$NAS_PROGRAM_STORE/ship.json")"
  else
    log "program store $NAS_PROGRAM_STORE: no ship.json there (experiments/ship_programs.py writes it)"
  fi
  export NAS_PROGRAM_STORE
fi

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  $PY -c "import sys, jax, flax, optax; print(sys.version.split()[0], 'jax', jax.__version__, 'flax', flax.__version__,
'optax', optax.__version__, jax.devices())"
  # the CUDA libraries jax runs on (cuDNN's version matters: docs/gpu.md, the first epoch's cost)
  $PY -c "import importlib.metadata as m; print(' '.join(sorted(d.metadata['Name'] + '==' + d.version
for d in m.distributions() if (d.metadata['Name'] or '').lower().startswith(('nvidia-', 'jax-cuda', 'jaxlib')))))"
  $PY -c "from jax._src.lib import cuda_versions as v; print('cuDNN loaded', v.cudnn_get_version())" 2>/dev/null \
    || echo "cuDNN loaded: unknown"
  date -u; } > "$OUT/device.txt" 2>&1
cat "$OUT/device.txt"
# MPS=1: this call's processes share the GPU through NVIDIA's Multi-Process Service, whose kernels
# from several processes run at once. Without it the GPU switches between processes' contexts, and
# seven MobileNetV2 trainings side by side gave only 1.26x the images a second of one alone (H200,
# 2026-12-04), while a small member's step is mostly fixed cost (about 1% of the GPU's peak,
# ../shared/PERF_NOTES.md): the worker processes of the throughput and search phases are what it is
# for (issue #7). A user-space daemon with its pipe and log folders in /tmp, started here and told
# to quit when the script exits; the device's settings (compute mode, MIG) are left as they are.
# The phases run without it, with a line in session.log, where the daemon is missing or does not
# start, a JAX process under it does not reach the backend one reaches without it, or no MPS server
# serves that process (the daemon starts one for its first client; inside a container without the
# host's IPC a client may run on its own instead).
if [ "${MPS:-0}" = 1 ]; then
  if ! command -v nvidia-cuda-mps-control > /dev/null 2>&1; then
    log "MPS=1: no nvidia-cuda-mps-control here; the phases run without MPS"
  else
    backend=$($PY -c "import jax; print(jax.default_backend())" 2>/dev/null)
    CUDA_MPS_PIPE_DIRECTORY=$(mktemp -d /tmp/nas-mps-pipe.XXXXXX) CUDA_MPS_LOG_DIRECTORY=$(mktemp -d /tmp/nas-mps-log.XXXXXX)
    export CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
    servers="" mps_client=""
    if nvidia-cuda-mps-control -d; then
      mps_client=$($PY -c "import jax, jax.numpy as jnp
jnp.ones(8).sum().block_until_ready(); print(jax.default_backend())" 2>/dev/null)
      servers=$(echo get_server_list | nvidia-cuda-mps-control 2>/dev/null | tr '\n' ' ')
    fi
    if [ -n "$backend" ] && [ "$mps_client" = "$backend" ] && [ -n "${servers// /}" ]; then
      trap 'echo quit | nvidia-cuda-mps-control > /dev/null 2>&1' EXIT
      log "MPS on: a $backend client ran under it (servers: ${servers% })"
    else
      echo quit | nvidia-cuda-mps-control > /dev/null 2>&1
      unset CUDA_MPS_PIPE_DIRECTORY CUDA_MPS_LOG_DIRECTORY
      log "MPS=1: the daemon did not start, a JAX process under it did not reach the ${backend:-?} backend" \
          "(it reached ${mps_client:-none}), or no server served it; the phases run without MPS"
    fi
  fi
fi
log "decoding CIFAR-10 once into $NAS_CACHE_DIR"
$PY -c "from trainer.data import load_dataset; load_dataset('cifar10')" || { log "no CIFAR-10"; exit 2; }

study() {  # name, run dir, limit s, extra args: the processes backend, then the in-process one on failure
  # (its log: $STUDY_LOG, else $OUT/study_NAME.log)
  local name=$1 dir=$2 limit=$3 start=$SECONDS study_log=${STUDY_LOG:-$OUT/study_$1.log}; shift 3
  timeout "$limit" $PY -m nas study "$name" --run-dir "$dir" "${STUDY_SET[@]}" --backend processes "$@" \
    > "$study_log" 2>&1
  local rc=$?
  log "study $name (processes backend) exit $rc"
  local left=$((limit - (SECONDS - start)))
  if [ $rc -ne 0 ] && [ -f "$dir/config.json" ] && [ $left -gt 30 ]; then
    timeout "$left" $PY -m nas study "$name" --run-dir "$dir" --resume --backend pipelined \
      >> "$study_log" 2>&1
    log "study $name resumed in-process: exit $?"
  fi
  $PY -m nas report "$dir" >> "$study_log" 2>&1  # DIR/report.md: tables, findings, members on one page
}

archive() {  # archive.tgz, tar args: gzip them into $OUT; over 15 MiB, as parts of 15 MiB (files come
  # back from a device call at up to 16 MiB each, 8 files in all); joined again by `cat NAME.part* > NAME`
  local name=$1; shift
  rm -f "$OUT/$name" "$OUT/$name".part*  # an earlier archive of the same name (or its parts)
  tar -czf "$OUT/$name" "$@" 2>/dev/null
  if [ "$(stat -c %s "$OUT/$name")" -gt $((15 * 1024 * 1024)) ]; then
    split -b 15m -d -a 1 "$OUT/$name" "$OUT/$name.part" && rm "$OUT/$name"
  fi
  du -ch "$OUT/$name"* | tail -1 | cut -f1
}

# Where OPT_VARIANT=best looks when this call ran no compile phase: the last GPU measurement of the
# compile options (H200, 2026-12-04: autotune0-matmul and its -nocmdbuf twin, no one-time costs;
# on the H100 of 2026-11-26 the same lowering was the fastest too). Not in the CPU dry run, whose
# calls keep the default build unless they measured otherwise.
COMPILE_PICK_FROM=${COMPILE_PICK_FROM:-$([ "${SMOKE:-0}" = 1 ] || echo experiments/results/gpu_logs_2026-12-04_h200/bench_compile_options.json)}
pick_variant() {  # OPT_VARIANT, with "best" resolved from this call's compile phase, else from an earlier
  # call's on the same (still warm) machine, else COMPILE_PICK_FROM, else none; ranked for WORKERS workers
  if [ "$OPT_VARIANT" = best ]; then
    local from=$OUT/bench_compile_options.json
    [ -f "$from" ] || from=$RUNS/bench_compile_options.json
    [ -f "$from" ] || from=$COMPILE_PICK_FROM
    if [ -n "$from" ] && [ -f "$from" ]; then
      $PY -m experiments.bench_compile_options --pick "$from" --pick-workers "${WORKERS:-4}" 2>/dev/null || echo none
    else echo none; fi
  else echo "$OPT_VARIANT"; fi
}

for phase in "$@"; do
case $phase in
accuracy)
  # One persistent compilation cache for the study's members and the benchmark's JAX half: the
  # same network, data shapes and recipe compile to the same programs. PROXY_SET: a recipe as the
  # recipes phase names it ('+'-joined study --set assignments, e.g. the "best:" line of its
  # recipes.txt), applied to both the study and the benchmark; empty: experiments/cifar_proxy.py.
  export JAX_COMPILATION_CACHE_DIR=$RUNS/mnv2_jax_cache
  proxy_set=${PROXY_SET:-} proxy_sets=()
  if [ "$proxy_set" = best ]; then
    proxy_set=$(cat "$RUNS/recipes_best.txt" 2>/dev/null)
    [ -n "$proxy_set" ] || { log "PROXY_SET=best: the recipes phase finished no recipe; accuracy skipped"; continue; }
    log "PROXY_SET=best: $proxy_set (the recipes phase's best)"
  fi
  for kv in ${proxy_set//+/ }; do proxy_sets+=(--set "$kv"); done
  # The recipes phase trained this recipe's seed-0 member under the same member key (network, data,
  # split, trainer config, seed): a new study takes it from there and trains seeds 1 and 2 only.
  recipe_members=$RUNS/recipe_${proxy_set//[^A-Za-z0-9.=+_-]/_}/members
  if [ -n "$proxy_set" ] && [ -d "$recipe_members" ] && [ ! -f "$RUNS/study_mnv2/config.json" ]; then
    mkdir -p "$RUNS/study_mnv2/members" && cp "$recipe_members"/*.npz "$RUNS/study_mnv2/members/" 2>/dev/null \
      && log "seed-0 member taken from the recipes phase ($recipe_members)"
  fi
  log "study mobilenetv2-cifar (alone on the GPU)${proxy_set:+, recipe $proxy_set}"
  # 300 s held the proxy recipe's study on the H100 (232 s); batch 128 trains more slowly per epoch
  study_limit=${STUDY_LIMIT:-$([ "${TORCH_MODES:-}" = none ] && echo 450 || echo 300)}
  study mobilenetv2-cifar "$RUNS/study_mnv2" "$study_limit" --workers 1 "${proxy_sets[@]}"
  if [ "${TORCH_MODES:-}" != none ]; then  # none: the study alone (about 4 minutes instead of 8)
    log "JAX vs PyTorch trainer benchmark (alone on the GPU)"
    timeout "${TORCH_LIMIT:-270}" $PY -m experiments.bench_jax_vs_torch "${TORCH_ARGS[@]}" "${proxy_sets[@]}" \
      --out "$OUT/bench_torch.json" > "$OUT/bench_torch.log" 2>&1
    log "bench_jax_vs_torch exit $?"
  fi
  unset JAX_COMPILATION_CACHE_DIR
  ;;
recipes)
  # The proxy recipe's variants on one MobileNetV2 (seed 0; the proxy recipe itself gave 80.24% on
  # the H100, twice, with a last-epoch training loss of 0.78: it underfits): which reaches the 85%
  # the 10-epoch proxy should? Not bfloat16: after 100 steps its gradients match float32's
  # (experiments/check_bf16_gradients.py). Each a one-member study of its own, all sharing one
  # compilation cache: the first runs alone and autotunes (its times are single-job; on the H200
  # 101 s compiling, 35 s for 10 epochs at batch 128, 5 s scoring), then the rest RECIPE_PARALLEL at
  # a time, reusing XLA's per-fusion autotuning results (a learning rate or the crop's padding is a
  # constant of the program, but the convolutions it autotunes are the same; another batch size
  # autotunes its own shapes, slowly beside other jobs). Their accuracies do not depend on what runs
  # beside them; their times do: on the H200 seven side by side took 12.2 s an epoch each, 1.26x
  # the images a second of one alone (about 150 s each with loading the programs and scoring).
  # Each stopped at RECIPE_LIMIT s. RECIPES: space-separated, each a '+'-joined list of study --set
  # assignments (trainer.batch_size=64+trainer.learning_rate=0.05 and the like: RECIPE_PARALLEL=1).
  export JAX_COMPILATION_CACHE_DIR=$RUNS/mnv2_jax_cache
  # Measured on the H200 (2026-12-04, experiments/results/gpu_logs_2026-12-04_h200): batch 128 at
  # lr 0.1 82.68%, 2.4 points over batch 256 at lr 0.2 (the same learning rate per image, twice the
  # steps); lr 0.2 at batch 128, weight decay 5e-5, one-cycle and PyTorch's initialization
  # 80.4-81.9% (one seed each; the proxy recipe's seeds spread 1.2 points); batch 64 never finished
  # (its own shapes to autotune beside six trainings: 3.4 min to its first epoch's end). The recipe
  # underfits (last-epoch loss 0.78-0.82 nats), and twice the steps gave the largest gain (on the
  # CPU too: batch 64 over 128 by 2.7 and 6.3 points, experiments/results/cpu_proxy_levers_2026-12-04).
  # On the CPU (half-width MobileNetV2, 10,000 images, 5 epochs, two seeds each, one after another on
  # one machine; experiments/results/cpu_zero_init_2026-12-04) residual layers started as their
  # shortcuts (trainer.zero_init_residual: the last BN scale of each branch at zero) gave the
  # batch-64 recipe 3.4-4.9 points, and with the crop's translation halved as well (crop_pad=2,
  # airbench's 10-epoch setting) 7.8-8.9, though halving it alone cost 0.4-2.1; the two together
  # gave batch 128 at lr 0.1 4.0-7.2; on top of both, no label smoothing gained in all six pairs
  # tried (+2.0, +2.0, +0.2, +0.3 at batch 64, seeds 0-3; +0.2, +1.0 at batch 128; weight decay
  # 5e-5 nothing; twice the learning rate 1.3-1.6 points less:
  # experiments/results/cpu_regularization_2026-12-05 and cpu_label_smoothing_2026-12-05). At the
  # proxy's own schedule (45,000 images, 10 epochs; quarter-width MobileNetV2, seeds 0-2,
  # experiments/results/cpu_full_schedule_2026-12-05) the three levers at batch 128, lr 0.1 reached
  # 79.98%, 80.08% and 80.28% as is (82.34%, 81.32% and 81.16% with flips), ahead of the same
  # levers at batch 64, lr 0.05 on seeds 0 and 1 (79.44%, 79.40%; 80.82%, 81.30%) and of plain
  # batch 128 (77.24%, 76.46%, 74.72%: +4.0 points on average):
  # at the full schedule batch 64's extra steps stop paying, and on the GPU batch 128 takes half
  # the steps. So batch 128 at lr 0.1 with all three runs
  # first and alone (the best guess, and the likeliest to finish), filling the autotuning cache
  # with batch 128's shapes, then side by side three more at batch 128, which reuse those shapes:
  # the plain recipe (82.68% as is on the H200; what the levers add on the GPU), both levers with
  # label smoothing (what dropping it adds), zero-initialized residuals at the full 4 px without
  # label smoothing (what halving the translation adds at full width), and last the first recipe on
  # MobileNetV2 1.4 (the MobileNetV2 paper's widest, about 2x the multiply-adds): a second way to
  # 85% should the levers add less at full width than at a quarter, where they added 2.7-5.6
  # points. It autotunes its own shapes beside the others (on the H200 two batch-64 recipes did
  # not finish that way: listed without a result if so). It took the place of the three levers at
  # batch 64, lr 0.05, which trailed batch 128 on both seeds at the CPU's full schedule.
  # Estimated from the H200's batch-128 figures (6.3 ms a step, 101 s compiling): about 140 s for
  # the first, 150-200 s for the four together.
  read -r -a recipes <<< "${RECIPES:-trainer.batch_size=128+trainer.learning_rate=0.1+trainer.zero_init_residual=true+trainer.crop_pad=2+trainer.label_smoothing=0.0 \
trainer.batch_size=128+trainer.learning_rate=0.1 \
trainer.batch_size=128+trainer.learning_rate=0.1+trainer.zero_init_residual=true+trainer.crop_pad=2 \
trainer.batch_size=128+trainer.learning_rate=0.1+trainer.zero_init_residual=true+trainer.label_smoothing=0.0 \
width_multiplier=1.4+trainer.batch_size=128+trainer.learning_rate=0.1+trainer.zero_init_residual=true+trainer.crop_pad=2+trainer.label_smoothing=0.0}"
  # RECIPE_COMMON: '+'-joined assignments added to every recipe (empty: none). By default each
  # member is scored with test-time flips too (its mirror image's logits averaged in; scoring
  # only, the training is the same), and its record keeps each view's accuracy alone
  # (view_accuracies): one training gives the recipe's accuracy with and without them.
  common=${RECIPE_COMMON-trainer.tta_flip=true}
  if [ -n "$common" ]; then for i in "${!recipes[@]}"; do recipes[i]+="+$common"; done; fi
  # Each recipe stops at RECIPE_LIMIT s, and none runs past RECIPES_BUDGET s from the phase's
  # start: a 15-minute device budget is about 30 s of start, this call (about 20 s of decoding,
  # then at most 420 s), and the accuracy call that follows (the study alone: 230-330 s with the
  # compiled programs this call leaves; give it STUDY_LIMIT from what `status` says is left).
  mkdir -p "$RUNS/recipe_logs"
  recipes_end=$((SECONDS + ${RECIPES_BUDGET:-420}))
  run_recipe() {
    local recipe=$1 name=${1//[^A-Za-z0-9.=+_-]/_} sets=() kv limit=${RECIPE_LIMIT:-330}
    local left=$((recipes_end - SECONDS))
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -lt 60 ]; then log "recipe $recipe skipped: ${limit} s left of RECIPES_BUDGET"; return; fi
    for kv in ${recipe//+/ }; do sets+=(--set "$kv"); done
    log "recipe $recipe (limit $limit s)"
    STUDY_LOG="$RUNS/recipe_logs/$name.log" study mobilenetv2-cifar "$RUNS/recipe_$name" "$limit" \
      --workers 1 --set members=1 --set draws=1 "${sets[@]}"
  }
  run_recipe "${recipes[0]}"
  step=${RECIPE_PARALLEL:-7}
  for ((i = 1; i < ${#recipes[@]}; i += step)); do
    for recipe in "${recipes[@]:i:step}"; do run_recipe "$recipe" & done
    wait
  done
  rm -f "$RUNS/recipes_best.txt"
  $PY - "$RUNS" "$common" <<'PY' | tee "$OUT/recipes.txt"
import glob, json, os, sys
best, common = None, sys.argv[2]
for d in sorted(set(glob.glob(sys.argv[1] + "/recipe_*")) - {sys.argv[1] + "/recipe_logs"}):
    path, name = os.path.join(d, "records.jsonl"), os.path.basename(d)[len("recipe_"):]
    records = [json.loads(line) for line in open(path)] if os.path.exists(path) else []
    if not records:
        print(f"{name:<55} no result: stopped by its time limit or failed (recipe_logs/{name}.log)")
    for r in records:
        acc = r.get("val_accuracy")
        views = r.get("view_accuracies") or []
        print(f"{name:<55} {r.get('status')} val acc "
              f"{'-' if acc is None else f'{acc:.4f}'}{' (as is %.4f, mirrored %.4f)' % tuple(views) if len(views) == 2 else ''}"
              f" last-epoch loss {(r.get('loss_curve') or [float('nan')])[-1]:.3f} "
              f"compile {r.get('compile_s', 0):.1f} s epochs {r.get('train_s', 0):.1f} s "
              f"(first {(r.get('epoch_s') or [0])[0]:.1f} s)")
        if r.get("status") == "ok" and (best is None or acc > best[1]):
            best = (name, acc)
# seed 0 measured before: the proxy recipe 80.24% (H100, study_mnv2_h100); the best recipe of the
# H200 session (gpu_logs_2026-12-04_h200; scored without flips; the default RECIPES rerun it second, with flips)
earlier, earlier_acc = "trainer.batch_size=128+trainer.learning_rate=0.1", 0.8268
earlier += f"+{common}" if common else ""
if best:
    print(f"best: {best[0]} at {best[1]:.2%} (proxy recipe 80.24% on the H100; batch 128 at lr 0.1 "
          f"{earlier_acc:.2%} on the H200, both scored as is); 85% reached: {'yes' if best[1] >= 0.85 else 'no'}")
    print(f"next: PROXY_SET={best[0]} TORCH_MODES=none bash experiments/gpu_session.sh accuracy")
    with open(os.path.join(sys.argv[1], "recipes_best.txt"), "w") as f:  # what PROXY_SET=best reads
        f.write(best[0] + "\n")
    if best[1] < earlier_acc:
        # this call's rerun of it (the default RECIPES' second) left its seed-0 member, which the study takes
        rerun = glob.glob(f"{sys.argv[1]}/recipe_{earlier}/members/*.npz")
        print(f"or the earlier best, {earlier} ({earlier_acc:.2%} on the H200 as is): PROXY_SET={earlier} TORCH_MODES=none "
              f"bash experiments/gpu_session.sh accuracy ("
              + ("seeds 1 and 2, seed 0 from this call: about 45 s each)" if rerun else
                 "all three seeds: about 101 s compiling, then 45 s each)"))
PY
  unset JAX_COMPILATION_CACHE_DIR
  ;;
wrn)
  # WRN_SET="trainer.epochs=30 trainer.warmup_epochs=3": --set overrides for a new study (the CPU
  # miniature, experiments/results/cpu_training_length_2026-12-03, turned in the ensembles' favour
  # only at its longest schedule; the committed GPU study trained 10 epochs). A resumed study
  # keeps its stored config.
  wrn_sets=(); for item in ${WRN_SET:-}; do wrn_sets+=(--set "$item"); done
  log "study wrn${WRN_SET:+ ($WRN_SET)}"
  study wrn "$RUNS/study_wrn" "${WRN_LIMIT:-420}" --workers 4 --max-minutes "${WRN_MINUTES:-5}" "${wrn_sets[@]}"
  ;;
compile)
  log "compile options: compile seconds vs training speed"
  timeout "${COMPILE_LIMIT:-120}" $PY -m experiments.bench_compile_options "${COMPILE_ARGS[@]}" \
    --out "$OUT/bench_compile_options.json" > "$OUT/bench_compile_options.log" 2>&1
  log "bench_compile_options exit $?"
  # kept for a throughput or search call after this one while the machine is warm (pick_variant)
  [ -f "$OUT/bench_compile_options.json" ] && mkdir -p "$RUNS" && cp "$OUT/bench_compile_options.json" "$RUNS/"
  ;;
firstrun)
  # Alone on the GPU, no persistent cache: eight small programs, each autotuned as it compiles.
  log "first call vs steady call per layer kind"
  timeout "${FIRSTRUN_LIMIT:-150}" $PY -m experiments.bench_first_run "${FIRSTRUN_ARGS[@]}" \
    --out "$OUT/bench_first_run.json" > "$OUT/bench_first_run.log" 2>&1
  log "bench_first_run exit $?"
  ;;
throughput)
  # OPT_VARIANT=A,B: an optimized run per variant against one naive run, each with its ratio. Each
  # further variant adds about 200 s: the optimized runs then start members for 100 s and stop hard
  # at 200 s, and the naive one starts members for 60 s (each 60-110 s), unless OPT_LIMIT /
  # OPT_HARD_STOP / NAIVE_LIMIT say.
  variant=$(pick_variant)
  [ "$variant" = none ] || BENCH_ARGS+=(--optimized-variant "$variant")
  n_variants=$(($(tr -cd , <<< "$variant" | wc -c) + 1))
  if [ "$n_variants" -gt 1 ]; then
    BENCH_ARGS+=(--optimized-time-limit "${OPT_LIMIT:-100}" --optimized-hard-stop "${OPT_HARD_STOP:-200}"
                 --naive-time-limit "${NAIVE_LIMIT:-60}")
  fi
  log "naive vs optimized member evaluations per GPU-hour (optimized variant: $variant)"
  timeout "${BENCH_LIMIT:-$((n_variants > 1 ? 190 + 200 * n_variants : 540))}" $PY -m experiments.bench_throughput "${BENCH_ARGS[@]}" \
    --out "$OUT/bench_throughput.json" > "$OUT/bench_throughput.log" 2>&1
  log "bench_throughput exit $?"
  # its summary into this log too, so a device call's output shows the figures without its files
  # (and the stacked backend's lines on frames given fewer slots for want of memory)
  grep -E '^ *(naive|optimized) \(|^ratio|^both modes|precompile charged|^stacked: |^program store' "$OUT/bench_throughput.log" | while IFS= read -r line; do log "$line"; done
  ;;
search)
  # Resumable: a run directory carried in as $SEARCH_RUN is continued. From an earlier call's files:
  #   mkdir -p .runs && cat search_run.tgz* | tar -xz -C .runs   (one file, or its parts in order)
  # then SEARCH_RUN=.runs/search_cifar10 with carry [".data", ".runs/search_cifar10"] (64 MiB in all: CIFAR-10 is
  # 21 MB, a 180-member run about 36 MB).
  # SEARCH_SET="controller=evolution ..." adds --set overrides to a new run (evolution trains 120
  # members instead of 180: a child ensemble retrains only its mutated member); a resumed run keeps
  # its stored config.
  run=${SEARCH_RUN:-$RUNS/$SEARCH_NAME}
  if [ -f "$run/config.json" ]; then args=(--run-dir "$run" --resume); else
    args=(--config experiments/search_cifar10.py --run-dir "$run")
    for item in "${SEARCH_SMOKE_SET[@]}" ${SEARCH_SET:-}; do args+=(--set "$item"); done
  fi
  variant=$(pick_variant)
  if [ "$variant" != none ]; then
    exports=$($PY -m experiments.bench_compile_options --exports "$variant") && eval "$exports"
    if [ ! -f "$run/config.json" ]; then  # trainer settings (e.g. trainer.compile_unit=layer): a new run only
      for item in $($PY -m experiments.bench_compile_options --sets "$variant"); do args+=(--set "$item"); done
    fi
  fi
  backend=()
  if [[ $variant == *stacked ]]; then  # a stacked run's members train in stacks, not worker processes
    backend=(--backend stacked ${STACK_SLOTS:+--stack-slots "$STACK_SLOTS"} ${STACK_AHEAD:+--stack-ahead "$STACK_AHEAD"})
  fi
  log "search: ${args[*]} ${backend[*]} (compile variant: $variant)"
  # the plan first (members left to train per size, the target against random ensembles): a few
  # seconds, nothing written; then the search, its log after the plan
  $PY -m nas search "${args[@]}" --dry-run > "$OUT/search.log" 2>&1
  timeout "${SEARCH_LIMIT:-480}" $PY -m nas search "${args[@]}" --workers "${WORKERS:-4}" "${backend[@]}" \
    ${SEARCH_PRECOMPILE:+--precompile "$SEARCH_PRECOMPILE"} >> "$OUT/search.log" 2>&1
  rc=$? hint=""
  [ $rc = 124 ] && hint=": stopped by its ${SEARCH_LIMIT:-480} s limit (SEARCH_RUN continues it: docs/gpu.md)"
  log "search exit $rc$hint"
  $PY -m nas show "$run" >> "$OUT/search.log" 2>&1
  # the search's members an hour (issue #7's steady-state figure) into this log too
  grep -E '^pace:' "$OUT/search.log" | tail -1 | while IFS= read -r line; do log "$line"; done
  grep -E '^program store' "$OUT/search.log" | while IFS= read -r line; do log "$line"; done
  $PY -m nas pool "$run" >> "$OUT/search.log" 2>&1  # ensembles recombined from the trained members
  # the plots and RUN/report.md (the launch commands, device, Figure 3, fronts, records summary: what
  # a results folder needs), with pool.png linked; in the archive below
  $PY -m nas report "$run" >> "$OUT/search.log" 2>&1
  # Without the compiled programs (hundreds of MB: jax_cache/*-cache, with their *-atime stamps);
  # the records, controller checkpoints and member logits (200 kB a CIFAR-10 member) are what a
  # resume and the results need. XLA's per-fusion autotuning results stay
  # (jax_cache/xla_gpu_per_fusion_autotune_cache_dir, small text files): a resumed search on the
  # same kind of GPU skips autotuning the fusions it has seen (unmeasured so far; entries of another
  # GPU kind are keyed apart and just unused).
  log "search run archived: $(archive search_run.tgz --exclude='jax_cache/*-cache' --exclude='jax_cache/*-atime' \
    -C "$(dirname "$run")" "$(basename "$run")")"
  ;;
esac
# One archive of the study outputs so far (points, summaries, findings, plots, member records and
# logits, recipe logs), rewritten after every phase: a call that the device's budget cuts short
# still returns the phases that finished. The search run and compilation caches are left out (the
# search phase archives its run itself).
if [ -n "$(ls -A "$RUNS" 2>/dev/null | grep -v -e "^$SEARCH_NAME\$" -e 'jax_cache$')" ]; then
  log "studies archived: $(archive studies.tgz --exclude='*jax_cache*' --exclude="./$SEARCH_NAME" -C "$RUNS" .)"
fi
done
# A device call returns at most 8 files from $OUT (docs/gpu.md); a longer list loses the rest
# (2026-12-04: a study's archive and log, behind eight copied logs). Over 8, the logs and JSON go
# into one logs.tgz beside session.log and the archives.
if [ "$(find "$OUT" -maxdepth 1 -type f | wc -l)" -gt 8 ]; then
  loose=$(cd "$OUT" && find . -maxdepth 1 -type f ! -name '*.tgz*' ! -name session.log -printf '%f\n' | sort)
  # shellcheck disable=SC2086  # the script's own file names, no spaces
  (cd "$OUT" && tar -czf logs.tgz $loose && rm -f $loose)
  log "over 8 files in $OUT: $(echo $loose | wc -w) logs packed into logs.tgz"
fi
