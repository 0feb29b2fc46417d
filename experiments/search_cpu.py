"""The paper's NAS experiment at CPU scale: 30 sampled ensembles per size, ensembles of 1, 2 and 3.

    nas search --config experiments/search_cpu.py --run-dir runs/search_cpu

The demo's data and members (Fashion-MNIST, 2,000 training / 1,000 validation images, members at a
quarter of MobileNetV2's widths, one proxy epoch, soft 3 ms target: see ``experiments/demo.py``)
with ``experiments/search_cifar10.py``'s search shape: 30 samples per size at batch 5. Regularized
evolution (population 10, tournament 3), because a child trains only the member its mutation
changed: 120 members in all instead of REINFORCE's 180 (sizes 1/2/3: 30, 2 x 10 + 20, 3 x 10 + 20).
Members compile per layer, as in the demo. Measured on a 2-core CPU: 120 members in 28.2 min with
this config (37.6 min before the layers' programs took flat arrays; both in
experiments/results/cpu_search_layer_2026-12-02/, the same records), 119 in 59 min with one program per
member (``--set trainer.compile_unit=program``; experiments/results/cpu_search_2026-12-02/, whose
retrained members are those of that run).
``--set controller=reinforce`` runs the paper's controller instead (180 members).
"""

import dataclasses

from experiments.demo import get_config as demo_config
from nas.config import SearchConfig


def get_config() -> SearchConfig:
    return dataclasses.replace(demo_config(), samples_per_size=30, batch=5, controller="evolution")
