"""The README's main job: a small real search on the CPU in a few minutes.

Fashion-MNIST (Debian's dataset-fashion-mnist), 2,000 training / 1,000 validation images, members
at a quarter of MobileNetV2's widths, one proxy epoch each; ensembles of 1, 2 and 3, two samples
per size. At 14-28 px and width 0.25 members cost 2-7M multiply-adds, about 2-4 ms on a Pixel 1
(10th-90th percentile of random samples), hence the 3 ms latency target (the paper's 75 ms is for
full-width ImageNet members). Compiling is what bounds this demo on a CPU (2 samples per size, 12
members), so its members compile per layer (``trainer.compile_unit="layer"``, trainer/layerwise.py):
a layer's programs are compiled once and reused by every later member that has it (here 110 of
the 12 members' 254 layers). Measured on a 2-core CPU (2026-12-02, two runs each way, the order
swapped between the pairs): 328 and 349 s per layer against 420 and 435 s with one program per
member (``--set trainer.compile_unit=program``), 1.25-1.28x; a member's compile 45-48 s against
53-54 s and its epoch 12 s against 23 s with three members in flight, its scoring 7-8 s against
4 s (precise batch norm through each layer's training forward, batch by batch). With less host
time per program call since (flat arrays for the layers' state) it ran in 304 s, the same records.
"""

from nas.config import RewardConfig, SearchConfig, SpaceConfig
from trainer.config import TrainConfig


def get_config() -> SearchConfig:
    return SearchConfig(
        dataset="fashion_mnist",
        val_size=1000,
        train_examples=2000,
        sizes=(1, 2, 3),
        samples_per_size=2,
        batch=2,
        controller="reinforce",
        seed=0,
        space=SpaceConfig(width_multiplier=0.25, head_filters=256),
        reward=RewardConfig(target_ms=3.0, alpha=-0.07, beta=-0.07),
        trainer=TrainConfig(epochs=1, batch_size=32, learning_rate=0.1, warmup_epochs=0.1,
                            compile_unit="layer"),
    )
