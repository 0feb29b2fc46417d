"""The 10-epoch proxy recipe of the CIFAR-10 experiments: the search (search_cifar10.py) trains its
members with it, and the MobileNetV2 study (study_mobilenetv2_cifar.py) and the JAX-vs-PyTorch
benchmark check it on a MobileNetV2.

Today it is the trainer's default, ``TrainConfig()``: 10 epochs, batch 256, SGD Nesterov 0.9, lr 0.2,
one warm-up epoch then cosine, label smoothing 0.1, weight decay 5e-4 on kernels. On an H100
(2026-11-26, experiments/results/study_mnv2_h100/) it took MobileNetV2 to 80.2-81.4% validation
accuracy with a last-epoch training loss of 0.77-0.78 nats: it underfits, short of the 85% the proxy
should reach. `bash experiments/gpu_session.sh recipes` measures variants (on the GPU machine, a
chosen one reaches the study and the benchmark at once through `PROXY_SET`, as their `--set`
overrides); a better one goes here, so that the search, the study and the benchmark change
together (the trainer's own defaults stay: the CPU demo and the tests are measured with them).
"""

from trainer.config import TrainConfig

CIFAR_PROXY = TrainConfig()
