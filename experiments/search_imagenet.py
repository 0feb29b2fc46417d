"""The paper's NAS experiment at its own data set, ImageNet, downsampled to 64 px (not run here).

    nas search --config experiments/search_imagenet.py --run-dir runs/imagenet \\
        --set manual_dir=/path/to/ILSVRC-archives        # or TFDS_DATA_DIR / IMAGENET_MANUAL_DIR

ImageNet comes through TFDS ``imagenet2012``, prepared from the user's archives (``manual_dir``;
preparing needs TensorFlow) or already prepared under ``data_dir``. The trainer keeps a data set in
device memory as uint8, so every image is cropped to its central square and resized to 64 px once
(``image_size``; downsampled ImageNet, Chrabaszcz et al. 2017): 15.1 GB for the 1.23M training
images left after the validation split, one copy per worker process on the GPU (two workers on an
80 GB GPU leave room for the members). Members then run at 32, 48, 56 or 64 px (the paper's 0.5 /
0.75 / 0.875 / 1.0 of the native size) with the small-input rule (stride 8: a 64 px input ends at
8 x 8), so this is a scaled-down replication, not the paper's 224 px search.

50,000 training images are held out for scoring, as MnasNet did (the TFDS ``validation`` split, the
paper's test set, is never seen). Each member's cached validation logits are then 200 MB (50,000 x
1,000 float32), 36 GB for the 180 members on disk, and as much in memory for `nas pool`;
``--set val_size=10000`` makes that a fifth. The latency target is 60 ms: random members of this space at
these sizes cost 25.9 / 65.1 / 148.8 ms on the Pixel-1 model (10th / 50th / 90th percentile of 200
samples, seed 0), so the target sits a little below the median member, as the paper's 75 ms does at
224 px (29.2 / 77.9 / 149.3 ms there) and this project's CIFAR-10 target does at 32 px.

Cost, as arithmetic and not a measurement: a member's 10 epochs are 12.3M images; a MobileNetV2 at
32 px trained at 28,139 images/s on an H100 (docs/gpu.md), and at 64 px it has about 4x the
multiply-adds, so some 30 minutes a member and about 90 GPU-hours for the 180 members (60 with
``--set controller=evolution``). ``--set train_examples=128000`` (about 10%, class-balanced) cuts
that tenfold at the cost of a noisier proxy.
"""

import os

from nas.config import RewardConfig, SearchConfig
from trainer.config import TrainConfig


def get_config() -> SearchConfig:
    return SearchConfig(
        dataset="tfds:imagenet2012",
        data_dir=os.environ.get("TFDS_DATA_DIR"),
        manual_dir=os.environ.get("IMAGENET_MANUAL_DIR"),
        image_size=64,
        val_size=50000,
        sizes=(1, 2, 3),
        samples_per_size=30,
        batch=5,
        controller="reinforce",
        seed=0,
        reward=RewardConfig(target_ms=60.0, alpha=-0.07, beta=-0.07),
        # batch 512 at lr 0.4 (0.1 per 128), MobileNetV2's weight decay 4e-5: ImageNet has 25x
        # CIFAR-10's images, so the regularization CIFAR's 5e-4 gives a short run is not wanted here
        trainer=TrainConfig(epochs=10, batch_size=512, learning_rate=0.4, warmup_epochs=1.0, label_smoothing=0.1,
                            weight_decay=4e-5),
    )
