"""The EfficientNet study on CIFAR-10, for machines without ImageNet: b0..b5, up to 3 members.

    nas study efficientnet-cifar --run-dir runs/study_en_cifar

Resolutions follow the compound rule scaled by 32/224: b0 32 px (native), b1 34, b2 37, b3 43,
b4 54, b5 65 (upsampled on the device). Widths and depths are the published ones.
"""

from nas.study import StudyConfig
from trainer.retrain import FAST_RECIPE, with_epochs


def get_config() -> StudyConfig:
    return StudyConfig(
        architectures=tuple(f"efficientnet-b{i}" for i in range(6)),
        dataset="cifar10",
        resolution_scale=32 / 224,
        members=3,
        draws=3,
        eval_split="test",
        trainer=with_epochs(FAST_RECIPE, 10),
    )
