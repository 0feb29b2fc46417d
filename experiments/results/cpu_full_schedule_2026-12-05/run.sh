#!/usr/bin/env bash
# The GPU recipes call's levers at the GPU's schedule: all 45,000 training images of the 45k/5k split
# and 10 epochs (one of warm-up, cosine), as the 10-epoch proxy trains, but a quarter-width
# MobileNetV2 so that a run takes about 25 minutes alone on the 2-core CPU dev machine. Batch 64 at
# lr 0.05 with zero-initialized residuals, crop_pad=2 and no label smoothing (the levers; the recipes
# call's first recipe when this folder began) and batch 64 as it is, batch 128 at lr 0.1 as it is
# (the H200's best so far) and with the levers (which this folder made the recipes call's first);
# seed 0, seed 1 of all but plain batch 64 and seed 2 of the batch-128 ones; each scored with
# test-time flips too; then runs.png of all the JSONs. CIFAR-10's JPEG copy, $NAS_DATA_DIR or .data/cifar10_jpeg.npz.
set -eu
here=$(dirname "$0")
data=${NAS_DATA_DIR:-.data}/cifar10_jpeg.npz
while read -r name batch lr seeds sets; do
  for seed in ${seeds//,/ }; do
    # shellcheck disable=SC2086  # $sets: several --set options
    nas train mobilenetv2 --width-multiplier 0.25 --dataset "jpeg-npz:$data" --epochs 10 \
      --lr "$lr" --batch-size "$batch" --seed "$seed" --tta-flip $sets --json > "$here/${name}_seed$seed.json" < /dev/null
  done
done <<'RUNS'
b64_zero_pad2_ls0 64 0.05 0,1 --set zero_init_residual=true --set crop_pad=2 --set label_smoothing=0.0
b64 64 0.05 0
b128 128 0.1 0,1,2
b128_zero_pad2_ls0 128 0.1 0,1,2 --set zero_init_residual=true --set crop_pad=2 --set label_smoothing=0.0
RUNS
python -m experiments.plot_training_runs "$here"/*.json --out "$here/runs.png"
