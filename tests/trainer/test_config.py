"""The training configuration: optimizer states built on the host, fields checked, stored runs kept."""

import itertools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from trainer.config import (OPTIMIZERS, SCHEDULE_FIELDS, SCHEDULES, TrainConfig, epoch_learning_rates,
                            init_optimizer_state, learning_rate_schedule, make_optimizer, optimizer_with,
                            program_config)


@pytest.mark.parametrize("optimizer, schedule, ema_decay", list(itertools.product(OPTIMIZERS, SCHEDULES, (0.0, 0.999))))
def test_host_optimizer_state_equals_optax_init(optimizer, schedule, ema_decay):
    config = TrainConfig(optimizer=optimizer, schedule=schedule, step_epochs=(2,), nesterov=optimizer == "sgd",
                         ema_decay=ema_decay)
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



@pytest.mark.parametrize("schedule", SCHEDULES)
def test_a_step_given_its_learning_rate_updates_as_the_scheduled_optimizer(schedule):
    """The compiled training steps take each step's rate (epoch_learning_rates) and build the
    optimizer around it (optimizer_with): the same updates and state as make_optimizer's, whose
    schedule reads the state's step count; programs are keyed without the schedule."""
    config = TrainConfig(epochs=3, schedule=schedule, warmup_epochs=1.0, step_epochs=(2,), learning_rate=0.3)
    steps = 4
    rates = np.concatenate([epoch_learning_rates(config, steps, e) for e in range(3)])
    expected = [float(learning_rate_schedule(config, steps)(i)) for i in range(3 * steps)]
    assert rates.dtype == np.float32 and rates.tolist() == pytest.approx(expected, rel=1e-6)
    assert rates[0] < rates[steps] and len(set(rates.tolist())) > 2  # warm-up, then the schedule moves
    params = {"conv": {"kernel": jnp.ones((3, 3, 2, 2))}, "bn": {"scale": jnp.ones((2,))}}
    scheduled = make_optimizer(config, steps)
    a = b = init_optimizer_state(scheduled, params)
    at_rate = jax.jit(lambda g, s, p, lr: optimizer_with(config, lambda _: lr).update(g, s, p))  # as a program does
    for i, lr in enumerate(rates[: steps + 2]):
        grads = jax.tree_util.tree_map(lambda p: jnp.full_like(p, 0.1 * (i + 1)), params)
        ua, a = scheduled.update(grads, a, params)
        ub, b = at_rate(grads, b, params, lr)
        assert jax.tree_util.tree_structure(a) == jax.tree_util.tree_structure(b)
        for x, y in zip(jax.tree_util.tree_leaves((ua, a)), jax.tree_util.tree_leaves((ub, b))):
            np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6)
    others = {"epochs": 9, "learning_rate": 0.01, "schedule": "cosine" if schedule != "cosine" else "step",
              "warmup_epochs": 0.0, "step_epochs": (1, 2), "step_factor": 0.5}
    assert others.keys() == SCHEDULE_FIELDS.keys()  # a field of the schedule added there is checked here
    assert {program_config(config.replace(**{k: v})) for k, v in others.items()} == {program_config(config)}
    assert program_config(config.replace(momentum=0.5)) != program_config(config)
    assert program_config(config.replace(batch_size=64)) != program_config(config)

# A value other than the stored runs' one for each field added after runs were stored: a new entry in
# TrainConfig.ADDED_LATER needs one here, so that the test below covers it.
CHANGED = {"precise_bn_images": 500, "init": "pytorch_default", "compile_unit": "layer", "crop_pad": 2,
           "tta_flip": True, "zero_init_residual": True, "ema_decay": 0.999}


def test_fields_added_later_keep_stored_runs_and_their_members_as_they_were():
    from nas.config import from_dict

    assert set(CHANGED) == set(TrainConfig.ADDED_LATER)
    for field, old in TrainConfig.ADDED_LATER.items():
        assert CHANGED[field] != old
        # an older run's stored config, without the field, loads with the value it ran with
        stored = {k: v for k, v in TrainConfig().to_dict().items() if k != field}
        assert getattr(from_dict(stored, TrainConfig), field) == old, field
        # members cached before the field existed are found (the key leaves the old value out) and a
        # changed value keys new members
        assert f'"{field}":' not in TrainConfig(**{field: old}).key(), field
        assert f'"{field}":{json.dumps(CHANGED[field])}' in TrainConfig(**{field: CHANGED[field]}).key(), field


def test_init_scheme_is_validated_and_matches_the_models_and_the_cli():
    import search_space.models
    from search_space.errors import UserError
    from trainer.config import INIT_SCHEMES

    assert INIT_SCHEMES == search_space.models.INIT_SCHEMES
    # the third copy, `nas train --init`'s choices (written out so that `nas --help` imports no jax)
    from nas.cli import build_parser

    train = build_parser()._subparsers._group_actions[0].choices["train"]
    assert tuple(next(a for a in train._actions if a.dest == "init").choices) == INIT_SCHEMES
    with pytest.raises(UserError, match="trainer.init: must be one of"):
        TrainConfig(init="xavier")


def test_crop_pad_is_validated_and_scales_with_the_image_size():
    import jax.random

    from nas.config import SearchConfig, apply_overrides
    from search_space.errors import UserError
    from trainer.augment import crop_padding, random_crop_flip

    # 4 px at CIFAR's 32 (the recipe so far); 2 at 32 is 1.75 at MNIST's 28, rounded to 2; at least 1
    # however small the image, unless 0
    assert [crop_padding(32), crop_padding(32, 2), crop_padding(28, 2), crop_padding(8, 2), crop_padding(64, 0)] \
        == [4, 2, 2, 1, 0]
    assert crop_padding(224) == 28
    assert apply_overrides(SearchConfig(), ["trainer.crop_pad=0"]).trainer.crop_pad == 0
    for bad in (-1, 17, 2.5):
        with pytest.raises(UserError, match="trainer.crop_pad: must be an int in"):
            TrainConfig(crop_pad=bad)
    # pad 0: the images come back unmoved (flipped or not)
    x = jnp.arange(2 * 4 * 4 * 1, dtype=jnp.float32).reshape(2, 4, 4, 1)
    assert np.array_equal(np.asarray(random_crop_flip(jax.random.key(0), x, 0, False)), np.asarray(x))


def test_tta_flip_is_a_bool_and_set_from_the_command_line():
    from nas.config import SearchConfig, apply_overrides
    from search_space.errors import UserError

    assert apply_overrides(SearchConfig(), ["trainer.tta_flip=true"]).trainer.tta_flip is True
    with pytest.raises(UserError, match="trainer.tta_flip: must be true or false"):
        TrainConfig(tta_flip=1)


def test_the_weights_moving_average_copies_the_first_step_then_follows_tensorflows_schedule():
    from nas.config import SearchConfig, apply_overrides
    from search_space.errors import UserError
    from trainer.config import averaged_params

    config = TrainConfig(ema_decay=0.2, weight_decay=0.0, warmup_epochs=0.0, schedule="step", learning_rate=1.0,
                         momentum=0.0, nesterov=False)
    tx = make_optimizer(config, steps_per_epoch=10)
    params = {"w": jnp.zeros((3,)), "k": jnp.zeros((2, 2))}
    state = init_optimizer_state(tx, params)
    # plain SGD at lr 1 with gradient -g: the weights after step t are the sum of the gradients so far
    weights, expected = [], None
    for t, g in enumerate([1.0, 2.0, 4.0, 8.0, 16.0]):
        updates, state = tx.update(jax.tree_util.tree_map(lambda p: jnp.full_like(p, -g), params), state, params)
        params = jax.tree_util.tree_map(lambda p, u: p + u, params, updates)
        weights.append(float(params["w"][0]))
        d = min(0.2, t / (t + 9))  # 0 at the first step: the average starts as the weights
        expected = weights[-1] if expected is None else d * expected + (1 - d) * weights[-1]
        assert float(averaged_params(state)["w"][0]) == pytest.approx(expected, rel=1e-6)
    assert weights == [1.0, 3.0, 7.0, 15.0, 31.0]  # the updates themselves are left alone
    assert expected != weights[-1] and averaged_params(state)["k"].shape == (2, 2)
    # without it the optimizer keeps no average, and the setting is checked
    assert averaged_params(init_optimizer_state(make_optimizer(TrainConfig(), 10), params)) is None
    assert apply_overrides(SearchConfig(), ["trainer.ema_decay=0.999"]).trainer.ema_decay == 0.999
    for bad in (-0.1, 1.0):
        with pytest.raises(UserError, match=r"trainer.ema_decay: must be in \[0, 1\)"):
            TrainConfig(ema_decay=bad)
    with pytest.raises(UserError, match="trainer.ema_decay: needs trainer.precise_bn_images > 0"):
        TrainConfig(ema_decay=0.99, precise_bn_images=0)


def test_a_member_trains_whole_batches_of_at_most_its_training_set():
    from trainer.config import batch_and_steps

    assert batch_and_steps(2000, 32) == (32, 62)  # the last partial batch dropped
    assert batch_and_steps(45000, 256) == (256, 175)
    assert batch_and_steps(100, 256) == (100, 1)  # a batch never larger than the training set
