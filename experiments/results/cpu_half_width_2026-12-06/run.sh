#!/usr/bin/env bash
# The GPU recipes call's first recipe (batch 128 at lr 0.1, zero-initialized residuals, crop_pad=2,
# no label smoothing) at the 10-epoch proxy's own schedule on a half-width MobileNetV2: the width
# between ../cpu_full_schedule_2026-12-05/'s quarter and the GPU's full network. All 45,000
# training images of the 45k/5k split, seed 0, scored with test-time flips too; about 70 minutes
# alone on the 2-core CPU dev machine. BATCH=256 LR=0.2: the same at the proxy recipe's own batch
# (the same rate per image, half the optimizer steps; level with batch 128 at the quarter width,
# ../cpu_batch_size_2026-12-05/). Then runs.png: the half-width runs beside the quarter width's at
# both batches. CIFAR-10's JPEG copy, $NAS_DATA_DIR or .data/cifar10_jpeg.npz.
set -eu
here=$(dirname "$0")
data=${NAS_DATA_DIR:-.data}/cifar10_jpeg.npz
batch=${BATCH:-128} lr=${LR:-0.1}
out=$here/b${batch}_zero_pad2_ls0_w05_seed0.json
nas train mobilenetv2 --width-multiplier 0.5 --dataset "jpeg-npz:$data" --epochs 10 \
  --lr "$lr" --batch-size "$batch" --seed 0 --tta-flip \
  --set zero_init_residual=true --set crop_pad=2 --set label_smoothing=0.0 \
  --json > "$out.part" < /dev/null
mv "$out.part" "$out"
python -m experiments.plot_training_runs "$here"/*_w05_seed0.json \
  "$here"/../cpu_full_schedule_2026-12-05/b128_zero_pad2_ls0_seed*.json \
  "$here"/../cpu_batch_size_2026-12-05/b256_zero_pad2_ls0_seed*.json --out "$here/runs.png"
