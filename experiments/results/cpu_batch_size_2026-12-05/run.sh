#!/usr/bin/env bash
# Larger batches for the 10-epoch proxy, with the levers the GPU recipes call starts with
# (zero-initialized residual layers, crop_pad=2, no label smoothing) and the learning rate scaled
# with the batch (batch 128 at lr 0.1, the reference in ../cpu_full_schedule_2026-12-05/): a
# quarter-width MobileNetV2 (small-input strides, 32 px), all 45,000 training images of the 45k/5k
# split, 10 epochs (one of warm-up, then cosine), float32, each scored with test-time flips too;
# then runs.png beside the batch-128 runs of that folder. Batch 512 at lr 0.4 (seeds 0 and 1) and
# batch 256 at lr 0.2 (seeds 0-2), one after another: 45 minutes or more each on the 2-core CPU dev machine
# (batch 512 held 8 GB). CIFAR-10's JPEG copy, $NAS_DATA_DIR or .data/cifar10_jpeg.npz.
set -eu
here=$(dirname "$0")
data=${NAS_DATA_DIR:-.data}/cifar10_jpeg.npz
levers="--set zero_init_residual=true --set crop_pad=2 --set label_smoothing=0.0"
while read -r batch lr seeds; do
  for seed in ${seeds//,/ }; do
    out="$here/b${batch}_zero_pad2_ls0_seed$seed.json"
    [ -s "$out" ] && continue  # a finished run is kept: rerunning the script resumes the list
    # shellcheck disable=SC2086  # $levers: several --set options
    nas train mobilenetv2 --width-multiplier 0.25 --dataset "jpeg-npz:$data" --epochs 10 \
      --lr "$lr" --batch-size "$batch" --seed "$seed" --tta-flip $levers --json > "$out.part" < /dev/null
    mv "$out.part" "$out"
  done
done <<'RUNS'
512 0.4 0,1
256 0.2 0,1,2
RUNS
python -m experiments.plot_training_runs "$here"/*.json "$here"/../cpu_full_schedule_2026-12-05/b128_zero_pad2_ls0_seed*.json \
  --out "$here/runs.png"
