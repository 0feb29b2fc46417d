"""The paper's Figure 1 study: ensembles of up to 8 Wide-ResNet-16-k (k = 1, 2, 4, 8) on CIFAR-10.

    nas study wrn --run-dir runs/study_wrn [--max-minutes 40]

WRN-16-k at 32 px: 0.17M / 0.69M / 2.75M / 10.95M params, 27M / 101M / 393M / 1.55G multiply-adds
(`nas describe wrn-16-k`). The paper trains each member for 200 epochs with Zagoruyko & Komodakis'
step schedule; this default is a 10-epoch cosine schedule (the `fast` recipe shortened: SGD Nesterov,
lr 0.2 at batch 256, 2 warm-up epochs, label smoothing 0.1), so that 32 members fit a GPU session.
`--set trainer.epochs=200 --set trainer.schedule=step ...` restores the paper's budget.
"""

from nas.study import StudyConfig
from trainer.retrain import FAST_RECIPE, with_epochs


def get_config() -> StudyConfig:
    return StudyConfig(
        architectures=("wrn-16-1", "wrn-16-2", "wrn-16-4", "wrn-16-8"),
        dataset="cifar10",
        members=8,
        draws=8,
        eval_split="test",
        trainer=with_epochs(FAST_RECIPE, 10),
    )
