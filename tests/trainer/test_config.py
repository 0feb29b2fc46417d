"""The optimizers' states start at zero, so the trainer can build them on the host."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trainer.config import OPTIMIZERS, SCHEDULES, TrainConfig, init_optimizer_state, make_optimizer


@pytest.mark.parametrize("optimizer, schedule", list(itertools.product(OPTIMIZERS, SCHEDULES)))
def test_host_optimizer_state_equals_optax_init(optimizer, schedule):
    config = TrainConfig(optimizer=optimizer, schedule=schedule, step_epochs=(2,), nesterov=optimizer == "sgd")
    # strongly typed, as a built model's parameters are (optax keeps a weak type in its state)
    params = {"conv": {"kernel": jnp.ones((3, 3, 4, 8)), "bias": jnp.full((8,), 0.5, jnp.float32)},
              "bn": {"scale": jnp.ones((8,))}, "dense": {"kernel": jnp.ones((8, 10), jnp.bfloat16)}}
    tx = make_optimizer(config, steps_per_epoch=10)
    expected, got = tx.init(params), init_optimizer_state(tx, params)
    assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(expected)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(expected)):
        assert isinstance(a, jax.Array) and jax.typeof(a) == jax.typeof(b)  # dtype, shape, weak type
        assert np.array_equal(np.asarray(a), np.asarray(b))
    # and it is a working state: one update from it equals one from optax's own
    grads = jax.tree_util.tree_map(lambda p: jnp.full_like(p, 0.1), params)
    for a, b in zip(jax.tree_util.tree_leaves(tx.update(grads, got, params)),
                    jax.tree_util.tree_leaves(tx.update(grads, expected, params))):
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_init_scheme_is_validated_and_keys_members_only_when_changed():
    import search_space.models
    from nas.config import from_dict
    from search_space.errors import UserError
    from trainer.config import INIT_SCHEMES

    assert INIT_SCHEMES == search_space.models.INIT_SCHEMES
    # the third copy, `nas train --init`'s choices (written out so that `nas --help` imports no jax)
    from nas.cli import build_parser

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    assert tuple(next(a for a in train._actions if a.dest == "init").choices) == INIT_SCHEMES
    assert "init" not in TrainConfig().key()  # members cached before the field existed are found
    assert '"init":"pytorch_default"' in TrainConfig(init="pytorch_default").key()
    with pytest.raises(UserError, match="trainer.init: must be one of"):
        TrainConfig(init="xavier")
    stored = {k: v for k, v in TrainConfig().to_dict().items() if k != "init"}  # an older run's config
    assert from_dict(stored, TrainConfig).init == "he_fan_out"


def test_crop_pad_scales_with_the_image_size_and_keys_members_only_when_changed():
    import jax.random

    from nas.config import SearchConfig, apply_overrides, from_dict
    from search_space.errors import UserError
    from trainer.augment import crop_padding, random_crop_flip

    # 4 px at CIFAR's 32 (the recipe so far); 2 at 32 is 1.75 at MNIST's 28, rounded to 2; at least 1
    # however small the image, unless 0
    assert [crop_padding(32), crop_padding(32, 2), crop_padding(28, 2), crop_padding(8, 2), crop_padding(64, 0)] \
        == [4, 2, 2, 1, 0]
    assert crop_padding(224) == 28
    assert "crop_pad" not in TrainConfig().key()  # members cached before the field existed are found
    assert '"crop_pad":2' in TrainConfig(crop_pad=2).key()
    stored = {k: v for k, v in TrainConfig().to_dict().items() if k != "crop_pad"}  # an older run's config
    assert from_dict(stored, TrainConfig).crop_pad == 4
    assert apply_overrides(SearchConfig(), ["trainer.crop_pad=0"]).trainer.crop_pad == 0
    for bad in (-1, 17, 2.5):
        with pytest.raises(UserError, match="trainer.crop_pad: must be an int in"):
            TrainConfig(crop_pad=bad)
    # pad 0: the images come back unmoved (flipped or not)
    x = jnp.arange(2 * 4 * 4 * 1, dtype=jnp.float32).reshape(2, 4, 4, 1)
    assert np.array_equal(np.asarray(random_crop_flip(jax.random.key(0), x, 0, False)), np.asarray(x))


def test_tta_flip_is_a_bool_that_keys_members_only_when_on():
    from nas.config import SearchConfig, apply_overrides, from_dict
    from search_space.errors import UserError

    assert "tta_flip" not in TrainConfig().key()  # members cached before the field existed are found
    assert '"tta_flip":true' in TrainConfig(tta_flip=True).key()
    stored = {k: v for k, v in TrainConfig().to_dict().items() if k != "tta_flip"}  # an older run's config
    assert from_dict(stored, TrainConfig).tta_flip is False
    assert apply_overrides(SearchConfig(), ["trainer.tta_flip=true"]).trainer.tta_flip is True
    with pytest.raises(UserError, match="trainer.tta_flip: must be true or false"):
        TrainConfig(tta_flip=1)
