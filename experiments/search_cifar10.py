"""The paper's NAS experiment on CIFAR-10 (a GPU job): ensembles of 1, 2 and 3 searched MnasNet-style
members, 30 sampled ensembles per size, each member trained for the 10-epoch proxy.

    nas search --config experiments/search_cifar10.py --run-dir runs/cifar10

45,000 training / 5,000 held-out validation images (the test split is never seen). Members are
full-width (MobileNetV2's filters x {0.75, 1.0, 1.25}) at 16-32 px with the small-input rule. The
latency target is 15 ms: random members of this space at CIFAR sizes cost 7.9 / 18.1 / 39.2 ms on
the Pixel-1 model (10th / 50th / 90th percentile of 200 samples), so, like the paper's 75 ms at
ImageNet scale, the target sits a little below the median member. 180 members in all: the search's
cost is compiling them (see bench_throughput). With ``--set controller=evolution`` it is 120: a
child of an n-member ensemble trains only the member its mutation changed (sizes 1/2/3: 30, 2 x 10
+ 20, 3 x 10 + 20 members at population 10, batch 5).
"""

from experiments.cifar_proxy import CIFAR_PROXY
from nas.config import RewardConfig, SearchConfig


def get_config() -> SearchConfig:
    return SearchConfig(
        dataset="cifar10",
        val_size=5000,
        sizes=(1, 2, 3),
        samples_per_size=30,
        batch=5,
        controller="reinforce",
        seed=0,
        reward=RewardConfig(target_ms=15.0, alpha=-0.07, beta=-0.07),
        trainer=CIFAR_PROXY,
    )
