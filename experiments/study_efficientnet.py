"""The paper's Figure 2 study: ensembles of up to 3 EfficientNet-b0..b5 on ImageNet.

    nas study efficientnet --run-dir runs/study_en --set manual_dir=/path/to/ILSVRC-archives

ImageNet comes through TFDS ``imagenet2012`` prepared from the user's archives (``manual_dir``;
preparing needs TensorFlow). The trainer keeps a data set in device memory as uint8, so images are
center-cropped and resized to 64 px once (downsampled ImageNet: 15.7 GB for the 1.28M training
images), and each model runs at its published resolution (224..456) x 64/224, i.e. 64..130 px,
upsampled on the device. That, and 30 epochs of SGD with a cosine schedule instead of the paper's
350 epochs of RMSProp at full resolution, make this a scaled-down replication, not the paper's numbers.
"""

import os

from nas.study import StudyConfig
from trainer.config import TrainConfig


def get_config() -> StudyConfig:
    return StudyConfig(
        architectures=tuple(f"efficientnet-b{i}" for i in range(6)),
        dataset="tfds:imagenet2012",
        manual_dir=os.environ.get("IMAGENET_MANUAL_DIR"),
        data_dir=os.environ.get("TFDS_DATA_DIR"),
        image_size=64,
        resolution_scale=64 / 224,
        members=3,
        draws=3,  # C(3, n) <= 3: every subset of the three members
        eval_split="test",  # TFDS imagenet2012 'validation', the paper's evaluation split
        trainer=TrainConfig(epochs=30, batch_size=512, learning_rate=0.4, warmup_epochs=2.0, label_smoothing=0.1,
                            weight_decay=5e-5),
    )
