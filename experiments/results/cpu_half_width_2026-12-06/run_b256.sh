#!/usr/bin/env bash
# The same half-width run as run.sh at batch 256, lr 0.2 (the proxy recipe's batch and learning rate
# per image, half the optimizer steps), the three levers on, seed 0: whether the search's proxy can
# keep batch 256 with the levers at a width nearer the GPU's (level with batch 128 on average at
# the quarter width: ../cpu_batch_size_2026-12-05/). Then runs.png with both half-width runs beside
# the quarter width's. CIFAR-10's JPEG copy, $NAS_DATA_DIR or .data/cifar10_jpeg.npz.
set -eu
here=$(dirname "$0")
data=${NAS_DATA_DIR:-.data}/cifar10_jpeg.npz
nas train mobilenetv2 --width-multiplier 0.5 --dataset "jpeg-npz:$data" --epochs 10 \
  --lr 0.2 --batch-size 256 --seed 0 --tta-flip \
  --set zero_init_residual=true --set crop_pad=2 --set label_smoothing=0.0 \
  --json > "$here/b256_zero_pad2_ls0_w05_seed0.json.part" < /dev/null
mv "$here/b256_zero_pad2_ls0_w05_seed0.json.part" "$here/b256_zero_pad2_ls0_w05_seed0.json"
python -m experiments.plot_training_runs "$here"/*_w05_seed0.json \
  "$here"/../cpu_full_schedule_2026-12-05/b128_zero_pad2_ls0_seed*.json \
  "$here"/../cpu_batch_size_2026-12-05/b256_zero_pad2_ls0_seed*.json --out "$here/runs.png"
