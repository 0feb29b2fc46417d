"""The WRN scaling study in miniature for the 2-core CPU, at several training lengths.

    nas study experiments/study_wrn10_cpu.py --run-dir runs/len_e6
    nas study experiments/study_wrn10_cpu.py --run-dir runs/len_e18 \
        --set trainer.epochs=18 --set trainer.warmup_epochs=1.8
    nas study experiments/study_wrn10_cpu.py --run-dir runs/len_n10k_e27 --set train_examples=10000 \
        --set trainer.epochs=27 --set trainer.warmup_epochs=2.7

Three WRN-10-1 (0.077M params, 12.5M multiply-adds at 32 px) and three WRN-10-2 (0.303M, 44.5M)
on 5,000 CIFAR-10 training images, scored on the 10,000 test images: three WRN-10-1 cost 0.84x one
WRN-10-2's FLOPs, the paper's comparison at CPU scale. The GPU study (WRN-16-k, 10 epochs) found the
ensembles of smaller models short of the larger single model and left open whether longer training
closes the gap; `experiments/check_training_length.py` compares this study run at several
``trainer.epochs`` (warm-up kept at a tenth of the schedule) and training-set sizes. On the CPU dev machine one epoch
took 8.8 s (WRN-10-1) and 19.7 s (WRN-10-2).
"""

from nas.study import StudyConfig
from trainer.retrain import FAST_RECIPE, with_epochs


def get_config() -> StudyConfig:
    return StudyConfig(
        architectures=("wrn-10-1", "wrn-10-2"),
        dataset="cifar10",
        members=3,
        draws=8,
        eval_split="test",
        train_examples=5000,
        trainer=with_epochs(FAST_RECIPE, 6).replace(warmup_epochs=0.6),
    )
