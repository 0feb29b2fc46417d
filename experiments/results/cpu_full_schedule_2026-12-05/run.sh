#!/usr/bin/env bash
# The GPU recipes call's levers at the GPU's schedule: all 45,000 training images of the 45k/5k split
# and 10 epochs (one of warm-up, cosine), as the 10-epoch proxy trains, but a quarter-width
# MobileNetV2 so that a run takes about 25 minutes alone on the 2-core CPU dev machine. Batch 64 at
# lr 0.05 with zero-initialized residuals, crop_pad=2 and no label smoothing (the recipes call's first
# recipe) against batch 64 at lr 0.05 as it is (its second), then batch 128 at lr 0.1 as it is (the
# H200's best so far); seed 0, each scored with test-time flips too. CIFAR-10's JPEG copy, $NAS_DATA_DIR or .data/cifar10_jpeg.npz.
set -eu
here=$(dirname "$0")
data=${NAS_DATA_DIR:-.data}/cifar10_jpeg.npz
while read -r name batch lr sets; do
  # shellcheck disable=SC2086  # $sets: several --set options
  nas train mobilenetv2 --width-multiplier 0.25 --dataset "jpeg-npz:$data" --epochs 10 \
    --lr "$lr" --batch-size "$batch" --seed 0 --tta-flip $sets --json > "$here/${name}_seed0.json" < /dev/null
done <<'RUNS'
b64_zero_pad2_ls0 64 0.05 --set zero_init_residual=true --set crop_pad=2 --set label_smoothing=0.0
b64 64 0.05
b128 128 0.1
RUNS
