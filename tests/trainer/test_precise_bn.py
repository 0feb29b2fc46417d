import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from search_space.models import BatchNorm
from tests.trainer.test_train import _small_split, tiny_member
from trainer.config import TrainConfig
from trainer.precise_bn import batch_norms, batch_statistics, pooled_statistics, set_statistics
from trainer.train import MemberTrainer, precise_bn_indices


class TwoLayers(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.fc1, self.bn1 = nnx.Linear(3, 4, rngs=rngs), BatchNorm(4, momentum=0.9, epsilon=1e-3, dtype=jnp.float32, rngs=rngs)
        self.fc2, self.bn2 = nnx.Linear(4, 2, rngs=rngs), BatchNorm(2, momentum=0.9, epsilon=1e-3, dtype=jnp.float32, rngs=rngs)

    def __call__(self, x):
        return self.bn2(self.fc2(jax.nn.relu(self.bn1(self.fc1(x)))))


def _garbage_statistics(model):
    for bn in batch_norms(model):
        bn.mean.set_value(jnp.full_like(bn.mean.get_value(), 50.0))
        bn.var.set_value(jnp.full_like(bn.var.get_value(), 1e4))


def test_batch_statistics_are_each_layers_input_statistics_with_batch_normalization():
    model = TwoLayers(nnx.Rngs(0))
    _garbage_statistics(model)  # neither the stored statistics nor the momentum may matter
    model.eval()
    x = jax.random.normal(jax.random.key(1), (64, 3)) * 3 + 1
    stats = batch_statistics(model, x)

    h1 = np.asarray(model.fc1(x), np.float64)
    m1, v1 = h1.mean(0), h1.var(0)
    n1 = (h1 - m1) / np.sqrt(v1 + 1e-3) * np.asarray(model.bn1.scale.get_value()) + np.asarray(model.bn1.bias.get_value())
    h2 = np.asarray(model.fc2(jnp.asarray(np.maximum(n1, 0), jnp.float32)), np.float64)
    expected = [(m1, v1), (h2.mean(0), h2.var(0))]
    assert len(stats) == 2
    for (mean, var), (em, ev) in zip(stats, expected):
        np.testing.assert_allclose(mean, em, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(var, ev, rtol=1e-4, atol=1e-5)


def test_pooled_statistics_are_those_of_all_images():
    rng = np.random.default_rng(0)
    batches = rng.normal(2.0, 3.0, (5, 40, 6)) + rng.normal(0, 1, (5, 1, 6))  # batch means differ
    per_batch = [(jnp.asarray(batches.mean(1)), jnp.asarray(batches.var(1)))]
    (mean, var), = pooled_statistics(per_batch)
    all_images = batches.reshape(-1, 6)
    np.testing.assert_allclose(mean, all_images.mean(0), rtol=1e-5)
    np.testing.assert_allclose(var, all_images.var(0), rtol=1e-5)


def test_set_statistics_checks_the_layer_count():
    model = TwoLayers(nnx.Rngs(0))
    set_statistics(model, [(jnp.ones(4), jnp.full(4, 2.0)), (jnp.zeros(2), jnp.ones(2))])
    assert float(model.bn1.var.get_value()[0]) == 2.0
    with pytest.raises(ValueError, match="1 statistics for 2 batch-norm layers"):
        set_statistics(model, [(jnp.ones(4), jnp.ones(4))])


def test_precise_bn_indices_are_a_seeded_sample_in_eval_batches():
    config = TrainConfig(precise_bn_images=2500, eval_batch_size=1000)
    idx = np.asarray(precise_bn_indices(3000, config, seed=1))
    assert idx.shape == (2, 1000) and idx.dtype == np.int32  # whole batches only
    assert len(np.unique(idx)) == 2000 and idx.min() >= 0 and idx.max() < 3000
    np.testing.assert_array_equal(idx, np.asarray(precise_bn_indices(3000, config, seed=1)))
    assert not np.array_equal(idx, np.asarray(precise_bn_indices(3000, config, seed=2)))
    assert np.asarray(precise_bn_indices(300, config, seed=1)).shape == (1, 300)  # at most the split
    assert precise_bn_indices(3000, config.replace(precise_bn_images=0), seed=1) is None


def test_evaluation_uses_statistics_recomputed_for_the_final_weights(fashion):  # noqa: F811
    split = _small_split(fashion)
    config = TrainConfig(epochs=1, batch_size=32, learning_rate=0.1, warmup_epochs=0.1, eval_batch_size=64)
    runs = {}
    for images in (0, 192):
        t = MemberTrainer(tiny_member(), split, config.replace(precise_bn_images=images), seed=0)
        t.compile()
        t.run_epoch(0)
        good = t.logits(split.x_val)
        model = nnx.merge(t.graphdef_eval, t.state.params, t.state.rest)
        _garbage_statistics(model)
        t.state = t.state._replace(rest=nnx.state(model, nnx.Not(nnx.Param)))
        runs[images] = good, t.logits(split.x_val)
    good, after = runs[192]
    np.testing.assert_allclose(after, good, rtol=1e-5, atol=1e-5)  # the stored statistics are not read
    good, after = runs[0]
    assert np.abs(after - good).max() > 0.1  # with the moving averages they are


def test_config_rejects_a_negative_image_count():
    from search_space.errors import UserError

    with pytest.raises(UserError, match="precise_bn_images"):
        TrainConfig(precise_bn_images=-1)
    assert dataclasses.replace(TrainConfig(), precise_bn_images=0).precise_bn_images == 0
