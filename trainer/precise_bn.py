"""Batch-norm statistics recomputed for the trained weights before evaluation ("precise BN").

During training each batch-norm layer keeps an exponential moving average of its batch statistics
(momentum 0.9). After a short proxy run those averages can be far from the statistics of the
final network: the weights moved while they were averaged, and an unstable stretch early in
training leaves a large variance that decays only by 0.9 per step. Evaluation then normalizes
with the wrong statistics. Wu and Johnson ("Rethinking 'Batch' in BatchNorm", 2021, section 3)
call the remedy precise BN: recompute the statistics with the final weights over a fixed set of
training images.

Measured here (2-core CPU; the statistics over 2,000 training images):
- A quarter-width MobileNetV2 trained 3 epochs on 2,048 Fashion-MNIST images at lr 0.2, batch
  64, float32, whose first epoch's loss spiked to 4.2: 10.9% on 5,000 validation images with its
  moving averages (nearly every prediction one class), 61.1% with recomputed statistics (60.4%
  with each 500-image batch normalized by its own statistics). At lr 0.05, with no spike, the two
  agreed within a point (71.5% and 70.7%).
- A tiny searched member, one bfloat16 epoch on 1,000 images: 12.6% against 37.6%.
- The README demo's 12 members (one epoch, same weights either way): mean 56.3% against 57.2%,
  8 up, 3 down (by at most 1.9 points), best +4.6 points.
- Cost, the same members with and without it: 8-15% more compile time (4 demo members +15%; 3
  sampled members 24.6 -> 26.5 s, bench_compile_options' moving-average-bn variant) and 1-2 s
  more evaluation per demo member.

Tried and not kept: one forward for both passes (a scan over calibration then validation batches,
each batch norm choosing batch or pooled statistics by a traced flag). On 3 sampled members in
float32 and bfloat16 it cut the evaluation program's compile by 18% (41.5 -> 33.9 s in all), not
the half hoped for: the moving-average evaluation program alone compiled in 1.8-3.1 s, the flagged
one in 3.3-8.9 s, so the batch-statistics reductions, which every flagged step carries, cost about
as much compile as a second forward. That is about 4% of a member's compile, and it moved bfloat16
logits (normalization in float32 throughout; up to 0.34, 2% of argmaxes), so the two passes stay.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

Stats = list[tuple[jax.Array, jax.Array]]  # (mean, var) per batch-norm layer, in module order


def batch_norms(model: nnx.Module) -> list[nnx.BatchNorm]:
    """The model's batch-norm layers in a fixed (module-path) order."""
    return [m for _, m in nnx.iter_modules(model) if isinstance(m, nnx.BatchNorm)]


def batch_statistics(model: nnx.Module, x: jax.Array) -> Stats:
    """Each batch-norm layer's input mean and (biased) variance over the batch ``x``, with every
    layer normalizing by the batch's own statistics, as in a training step.

    Overwrites the model's running statistics and momentum: pass a model merged for this call.
    """
    bns = batch_norms(model)
    for bn in bns:
        bn.momentum = 0.0  # the stored statistic becomes 0 * 0 + 1 * the batch's, exactly
        bn.mean.set_value(jnp.zeros_like(bn.mean.get_value()))
        bn.var.set_value(jnp.zeros_like(bn.var.get_value()))
    model.train()
    model(x)
    return [(bn.mean.get_value(), bn.var.get_value()) for bn in bns]


def pooled_statistics(per_batch: Stats) -> Stats:
    """The statistics of equally sized batches pooled into those of all their images.

    ``per_batch`` has a leading batch axis on every array (as ``lax.map`` of
    :func:`batch_statistics` returns). Mean: the mean of the batch means. Variance: the mean
    within-batch variance plus the variance of the batch means (the law of total variance).
    """
    pooled = []
    for mean_b, var_b in per_batch:
        mean = mean_b.mean(0)
        pooled.append((mean, var_b.mean(0) + jnp.square(mean_b - mean).mean(0)))
    return pooled


def set_statistics(model: nnx.Module, stats: Stats) -> None:
    """Replace the model's running statistics (layers in :func:`batch_norms` order)."""
    bns = batch_norms(model)
    if len(bns) != len(stats):
        raise ValueError(f"{len(stats)} statistics for {len(bns)} batch-norm layers")
    for bn, (mean, var) in zip(bns, stats):
        bn.mean.set_value(mean.astype(bn.mean.get_value().dtype))
        bn.var.set_value(var.astype(bn.var.get_value().dtype))
