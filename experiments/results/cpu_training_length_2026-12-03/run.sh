#!/usr/bin/env bash
# The miniature WRN study at four training lengths on 5,000 images, then at 27 epochs on 10,000 (as
# many optimizer steps as 54 epochs on 5,000), one after another (2-core CPU dev machine).
# NAS_DATA_DIR holds cifar10_jpeg.npz (a copy of ../shared/data/cifar10_jpeg.npz).
set -euo pipefail
export NAS_DATA_DIR=${NAS_DATA_DIR:-.data}
for e in 2 6 18 54; do
  warm=$(python -c "print($e / 10)")
  nas study experiments/study_wrn10_cpu.py --run-dir runs/len_e$e \
    --set trainer.epochs=$e --set trainer.warmup_epochs=$warm
done
nas study experiments/study_wrn10_cpu.py --run-dir runs/len_n10k_e27 \
  --set train_examples=10000 --set trainer.epochs=27 --set trainer.warmup_epochs=2.7
python -m experiments.check_training_length runs/len_e2 runs/len_e6 runs/len_e18 runs/len_e54 runs/len_n10k_e27 \
  --out experiments/results/cpu_training_length_2026-12-03
