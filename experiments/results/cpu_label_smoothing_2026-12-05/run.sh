#!/usr/bin/env bash
# Label smoothing off (the best lever of ../cpu_regularization_2026-12-05) checked three ways on top
# of zero-initialized residuals and crop_pad=2: two more seeds (2 and 3) of it and of its control, at
# twice the learning rate (seeds 0 and 1), and at batch 128, lr 0.1 (seeds 0 and 1; its control is
# ../cpu_zero_init_2026-12-04's b128_zero_pad2). Half-width MobileNetV2, 10,000 CIFAR-10 training
# images (the JPEG copy, $NAS_DATA_DIR or .data/cifar10_jpeg.npz), 5,000 validation images, 5 epochs,
# each scored with test-time flips too; each run about 6 minutes on the 2-core CPU dev machine.
set -eu
here=$(dirname "$0")
data=${NAS_DATA_DIR:-.data}/cifar10_jpeg.npz
while read -r name batch lr seeds sets; do
  for seed in ${seeds//,/ }; do
    # shellcheck disable=SC2086  # $sets: several --set options
    nas train mobilenetv2 --width-multiplier 0.5 --dataset "jpeg-npz:$data" --train-examples 10000 --epochs 5 \
      --lr "$lr" --batch-size "$batch" --seed "$seed" --tta-flip $sets --json > "$here/${name}_seed$seed.json" < /dev/null
  done
done <<'RUNS'
b64_zero_pad2 64 0.05 2,3 --set zero_init_residual=true --set crop_pad=2
b64_zero_pad2_ls0 64 0.05 2,3 --set zero_init_residual=true --set crop_pad=2 --set label_smoothing=0.0
b64_zero_pad2_ls0_lr0.1 64 0.1 0,1 --set zero_init_residual=true --set crop_pad=2 --set label_smoothing=0.0
b128_zero_pad2_ls0 128 0.1 0,1 --set zero_init_residual=true --set crop_pad=2 --set label_smoothing=0.0
RUNS
