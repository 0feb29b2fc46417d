#!/usr/bin/env bash
# The GPU recipes call's first recipe (batch 128 at lr 0.1, zero-initialized residuals, crop_pad=2,
# no label smoothing) on the full-width MobileNetV2 at the 10-epoch proxy's own schedule, on the
# CPU: what ../cpu_half_width_2026-12-06/ forecast (about 85.5% as is) measured, float32. All 45,000
# training images of the 45k/5k split, seed 0, scored with test-time flips too. About 4-5 hours
# alone on the 2-core CPU dev machine, so it keeps a checkpoint after every epoch in $CKPT (default
# .runs/cpu_full_width_ckpt, git-ignored) and the same command resumes it after a kill or a session's end.
# CIFAR-10's JPEG copy, $NAS_DATA_DIR or .data/cifar10_jpeg.npz.
set -eu
here=$(dirname "$0")
data=${NAS_DATA_DIR:-.data}/cifar10_jpeg.npz
ckpt=${CKPT:-.runs/cpu_full_width_ckpt}
out=$here/b128_zero_pad2_ls0_w1_seed0.json
nas train mobilenetv2 --dataset "jpeg-npz:$data" --epochs 10 \
  --lr 0.1 --batch-size 128 --seed 0 --tta-flip \
  --set zero_init_residual=true --set crop_pad=2 --set label_smoothing=0.0 \
  --checkpoint-dir "$ckpt" --every 1 --json > "$out.part" < /dev/null
mv "$out.part" "$out"
python -m experiments.plot_training_runs "$out" \
  "$here"/../cpu_half_width_2026-12-06/b128_zero_pad2_ls0_w05_seed0.json \
  "$here"/../cpu_full_schedule_2026-12-05/b128_zero_pad2_ls0_seed0.json --out "$here/runs.png"
