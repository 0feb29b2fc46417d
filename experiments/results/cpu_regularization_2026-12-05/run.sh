#!/usr/bin/env bash
# The two regularizers of the proxy recipe (weight decay 5e-4 on kernels, label smoothing 0.1), each
# lowered, on top of zero-initialized residuals and crop_pad=2 (../cpu_zero_init_2026-12-04's best),
# which is rerun here as the control. Half-width MobileNetV2, 10,000 CIFAR-10 training images (the
# JPEG copy, $NAS_DATA_DIR or .data/cifar10_jpeg.npz), 5,000 validation images, 5 epochs, batch 64 at
# lr 0.05, seeds 0 and 1, each scored with test-time flips too; each run about 6 minutes on the
# 2-core CPU dev machine.
set -eu
here=$(dirname "$0")
data=${NAS_DATA_DIR:-.data}/cifar10_jpeg.npz
while read -r name batch lr sets; do
  for seed in 0 1; do
    # shellcheck disable=SC2086  # $sets: several --set options
    nas train mobilenetv2 --width-multiplier 0.5 --dataset "jpeg-npz:$data" --train-examples 10000 --epochs 5 \
      --lr "$lr" --batch-size "$batch" --seed "$seed" --tta-flip $sets --json > "$here/${name}_seed$seed.json" < /dev/null
  done
done <<'RUNS'
b64_zero_pad2 64 0.05 --set zero_init_residual=true --set crop_pad=2
b64_zero_pad2_wd5e-5 64 0.05 --set zero_init_residual=true --set crop_pad=2 --set weight_decay=5e-5
b64_zero_pad2_ls0 64 0.05 --set zero_init_residual=true --set crop_pad=2 --set label_smoothing=0.0
RUNS
