#!/usr/bin/env bash
# Zero-initialized residual layers (trainer.zero_init_residual) and the crop's translation
# (trainer.crop_pad) at CPU scale, against batch 64 at lr 0.05 as it is (and two at batch 128, lr 0.1)
# (../cpu_proxy_levers_2026-12-04, rerun here: the machine's instruction set moves these short runs
# by a point or two). Half-width MobileNetV2, 10,000 CIFAR-10 training images (the JPEG copy,
# $NAS_DATA_DIR or .data/cifar10_jpeg.npz), 5,000 validation images, 5 epochs, seeds 0 and 1, each
# scored with test-time flips too; each run 6-8 minutes on the 2-core CPU dev machine.
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
b64_base 64 0.05
b64_zero 64 0.05 --set zero_init_residual=true
b64_pad2 64 0.05 --set crop_pad=2
b64_zero_pad2 64 0.05 --set zero_init_residual=true --set crop_pad=2
b64_zero_lr0.1 64 0.1 --set zero_init_residual=true
b128_base 128 0.1
b128_zero_pad2 128 0.1 --set zero_init_residual=true --set crop_pad=2
RUNS
