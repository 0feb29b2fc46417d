#!/usr/bin/env bash
# The miniature WRN study at four training lengths, one after another (2-core CPU dev machine).
# NAS_DATA_DIR holds cifar10_jpeg.npz (a copy of ../shared/data/cifar10_jpeg.npz).
set -euo pipefail
export NAS_DATA_DIR=${NAS_DATA_DIR:-.data}
for e in 2 6 18 54; do
  warm=$(python -c "print($e / 10)")
  nas study experiments/study_wrn10_cpu.py --run-dir runs/len_e$e \
    --set trainer.epochs=$e --set trainer.warmup_epochs=$warm
done
python -m experiments.check_training_length runs/len_e2 runs/len_e6 runs/len_e18 runs/len_e54 \
  --out experiments/results/cpu_training_length_2026-12-03
