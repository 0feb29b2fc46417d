"""Three independently trained MobileNetV2s on CIFAR-10, each on the 10-epoch proxy schedule: is the
geometric-mean ensemble more accurate than its best member?

    nas study mobilenetv2-cifar --run-dir runs/study_mnv2

MobileNetV2 1.0 at CIFAR-10's native 32 px with the small-input rule (stem and first stride-2 block
at stride 1, as the search space does for native sizes up to 64 px): 2.24M params. Members train on
the 45,000-image side of a seeded 45k/5k split and are scored on the 5,000 held-out images, as a
search scores its members (the test split stays unseen). The trainer is the search's proxy
(`experiments/cifar_proxy.py`: 10 epochs, SGD Nesterov, lr 0.2 at batch 256, cosine, label
smoothing 0.1).
"""

from experiments.cifar_proxy import CIFAR_PROXY
from nas.study import StudyConfig


def get_config() -> StudyConfig:
    return StudyConfig(
        architectures=("mobilenetv2",),
        dataset="cifar10",
        resolution_scale=32 / 224,
        members=3,
        draws=3,
        eval_split="validation",
        val_size=5000,
        trainer=CIFAR_PROXY,
    )
