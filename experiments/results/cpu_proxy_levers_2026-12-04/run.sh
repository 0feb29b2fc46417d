#!/usr/bin/env bash
# Two levers of the 10-epoch proxy recipe at CPU scale: test-time flips (scoring only) and batch 64
# against batch 128 at the same learning rate per image. Half-width MobileNetV2, 10,000 CIFAR-10
# training images (the JPEG copy, $NAS_DATA_DIR or .data/cifar10_jpeg.npz), 5,000 validation
# images, 5 epochs, seeds 0 and 1; each run about 15-20 minutes on the 2-core CPU dev machine.
set -eu
here=$(dirname "$0")
data=${NAS_DATA_DIR:-.data}/cifar10_jpeg.npz
for seed in 0 1; do
  for recipe in "128 0.1" "64 0.05"; do
    read -r batch lr <<< "$recipe"
    nas train mobilenetv2 --width-multiplier 0.5 --dataset "jpeg-npz:$data" --train-examples 10000 --epochs 5 \
      --lr "$lr" --batch-size "$batch" --seed "$seed" --tta-flip --json > "$here/b${batch}_seed$seed.json"
  done
done
