#!/usr/bin/env bash
# The weights' moving average (trainer.ema_decay) on top of the CPU's best proxy levers
# (zero-initialized residuals, crop_pad=2, no label smoothing), in the setup of
# ../cpu_label_smoothing_2026-12-05, whose runs of the same recipes without it are the controls:
# half-width MobileNetV2, 10,000 CIFAR-10 training images (the JPEG copy, $NAS_DATA_DIR or
# .data/cifar10_jpeg.npz), 5,000 validation images, 5 epochs, seeds 0 and 1, each scored with
# test-time flips too; each run about 6 minutes on the 2-core CPU dev machine. The decay sets the
# average's time constant, 1 / (1 - d) steps, to about a tenth of the run: 100 of batch 64's 780
# steps, 40 of batch 128's 390.
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
b64_zero_pad2_ls0_ema0.99 64 0.05 0,1 --set zero_init_residual=true --set crop_pad=2 --set label_smoothing=0.0 --set ema_decay=0.99
b128_zero_pad2_ls0_ema0.975 128 0.1 0,1 --set zero_init_residual=true --set crop_pad=2 --set label_smoothing=0.0 --set ema_decay=0.975
RUNS
