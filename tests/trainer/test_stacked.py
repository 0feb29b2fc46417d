import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from search_space import MnasNetSpace, scale_width
from search_space.layers import layer_plan
from search_space.models import init_model
from search_space.spec import Activation, WideResNetSpec, spec_id
from tests.trainer.test_padded import VARIED, varied_member
from tests.trainer.test_train import tiny_member
from trainer.config import TrainConfig
from trainer.data import validation_split
from trainer.stacked import StackedTrainer, _abstract_frame, frame_specs, frame_state, run_stacked, train_stacked
from trainer.train import MemberTrainer

CONFIG = TrainConfig(epochs=1, batch_size=32, learning_rate=0.1, warmup_epochs=0.1, precise_bn_images=64,
                     compile_unit="stacked")


def _in_frame(spec):
    """(the member's model, its frame holding the same weights), both built eagerly."""
    member = init_model(spec, 10, seed=0)
    graphdef, _ = _abstract_frame(frame_specs(spec), 10, jnp.float32)
    return member, nnx.merge(graphdef, frame_state(member, spec, 10, jnp.float32))


def _varied_three_blocks():
    """tests/trainer/test_padded.py's varied member's first three blocks at an eighth of the widths:
    every operation, both kernels, squeeze-excite on and off, an identity shortcut and a pooled
    projection one, a stride-2 layer, and blocks of fewer layers than the frame's."""
    spec = varied_member(width=0.125)
    return spec.replace(blocks=spec.blocks[:3])


def test_a_member_in_its_frame_computes_the_member():
    # The same logits in both modes (eager, about 15 s on the 2-core CPU).
    spec = _varied_three_blocks()
    member, frame = _in_frame(spec)
    x = jax.random.normal(jax.random.key(1), (4, spec.resolution, spec.resolution, 3))
    for mode in ("eval", "train"):
        getattr(member, mode)()
        getattr(frame, mode)()
        np.testing.assert_allclose(np.asarray(frame(x)), np.asarray(member(x)), atol=2e-5)
    assert len(frame.positions) == sum(n + 1 for n in (1, 2, 3))  # the space's most layers
    assert len(frame.positions) > len(member.layers)


@pytest.mark.slow
def test_only_the_members_weights_in_its_frame_move():
    # In training mode, the member's gradients where it has weights (a 3x3 kernel in the centre of
    # the frame's 5x5), zero everywhere else: other operations' branches, absent positions, the
    # parts it lacks, the rims of its padded arrays. Eager: about a minute on the 2-core CPU.
    spec = _varied_three_blocks()
    member, frame = _in_frame(spec)
    member.train()
    frame.train()
    x = jax.random.normal(jax.random.key(1), (4, spec.resolution, spec.resolution, 3))

    def loss(model):
        return jnp.mean(model(x) ** 2)

    g_member = {tuple(map(str, p)): np.asarray(v.get_value()) for p, v in nnx.to_flat_state(nnx.grad(loss)(member))}
    g_frame = nnx.grad(loss)(frame)
    real = {l.name: (i, l.op) for i, l in enumerate(l for l in layer_plan(spec, 10)
                                                   if l.op in ("mbconv", "sepconv", "conv"))}
    moved = 0
    for path, v in nnx.to_flat_state(g_frame):
        key = tuple(map(str, path))
        g = np.asarray(v.get_value())
        if key[0] != "positions":  # stem, head, classifier
            mine = g_member[key]
            np.testing.assert_allclose(g[tuple(slice(0, n) for n in mine.shape)], mine, atol=1e-5, err_msg=str(key))
            continue
        index, op = real.get(frame.names[int(key[1])], (None, None))
        mine = g_member.get(("layers", str(index), *key[3:])) if key[2] == op else None
        if mine is None:  # another operation's branch, an absent position, parts the member lacks
            assert not np.any(g), f"{key}: a weight the member does not have would move"
            continue
        start = [0] * g.ndim
        if key[-1] == "kernel" and g.ndim == 4:  # a 3x3 kernel sits in the centre of the frame's 5x5
            start[0] = start[1] = (g.shape[0] - mine.shape[0]) // 2
        region = tuple(slice(s, s + n) for s, n in zip(start, mine.shape))
        np.testing.assert_allclose(g[region], mine, atol=1e-5, err_msg=str(key))
        rest = g.copy()
        rest[region] = 0
        assert not np.any(rest), f"{key}: a padded weight would move"
        moved += 1
    assert moved > 30


def test_frames_are_shared_by_resolution_and_nothing_else():
    a = varied_member(width=0.125)
    rotated = [i for block in VARIED for i in [(block[0] + 1) % 3, *block[1:]]] + [3]  # every block another op
    other_ops = scale_width(MnasNetSpace(28).decode_member(rotated), 0.125, "never").replace(head_filters=64)
    assert [b.conv_op for b in other_ops.blocks] != [b.conv_op for b in a.blocks]
    assert frame_specs(other_ops) == frame_specs(a)
    assert frame_specs(varied_member(width=0.125, resolution_index=1)) != frame_specs(a)
    with pytest.raises(ValueError, match="MnasNet space"):
        frame_specs(WideResNetSpec(depth=16, width=1))


def _two_block(spec):
    """A member's first two blocks (5 frame positions): a frame that compiles in about 30 s on the CPU."""
    return spec.replace(blocks=spec.blocks[:2])


@pytest.mark.slow
def test_stacked_members_train_as_each_alone_and_a_diverged_one_fails_alone(fashion):
    # A swish member (ReLU's kink amplifies rounding: tests/trainer/test_padded.py) trained in its
    # frame takes its own trainer's steps: the same loss at every step of an epoch, validation
    # logits within rounding. Two members stacked each train as alone; a member whose weights are
    # NaN fails as diverged and its stack-mate's figures do not change.
    split = validation_split(fashion, 200, seed=0, train_examples=4 * CONFIG.batch_size)
    a = _two_block(tiny_member(res_index=2)).replace(activation=Activation.SWISH)
    b = _two_block(varied_member(width=0.25, resolution_index=2)).replace(activation=Activation.SWISH,
                                                                       head_filters=a.head_filters)
    assert frame_specs(a) == frame_specs(b)
    alone = MemberTrainer(a, split, CONFIG.replace(compile_unit="program"), 3)
    alone.compile()
    stacked = StackedTrainer([a, b], split, CONFIG, [3, 4])
    stacked.compile()
    losses = stacked.run_epoch(0)
    assert losses.shape == (2, 4)
    np.testing.assert_allclose(losses[0], alone.run_epoch(0), rtol=1e-4)
    logits = stacked.view_logits(split.x_val)
    assert logits.shape == (2, 1, 200, 10)
    np.testing.assert_allclose(logits[0, 0], alone.logits(split.x_val), atol=2e-3)

    [b_alone] = train_stacked([b], split, CONFIG, [4], slots=2)  # the empty slot trains a copy
    pair = train_stacked([a, b], split, CONFIG, [3, 4])
    assert [r.spec_id for r in pair] == [spec_id(a), spec_id(b)] and all(r.ok for r in pair)
    assert pair[1].stacked == 2 and b_alone.stacked == 1 and b_alone.programs_reused
    np.testing.assert_allclose(pair[1].loss_curve, b_alone.loss_curve, rtol=1e-5)
    np.testing.assert_allclose(pair[1].val_logits, b_alone.val_logits, atol=1e-4)

    poisoned = StackedTrainer([a, b], split, CONFIG, [3, 4])
    poisoned.compile()
    params = jax.tree.map(lambda p: p.at[0].set(jnp.nan) if p.ndim > 1 else p, poisoned.state.params)
    poisoned.state = poisoned.state._replace(params=params)
    failed, fine = run_stacked(poisoned)
    assert failed.status == "failed" and failed.reason == "diverged: non-finite loss in epoch 1"
    assert fine.ok and fine.stacked == 2
    np.testing.assert_allclose(fine.loss_curve, pair[1].loss_curve, rtol=1e-6)
    np.testing.assert_allclose(fine.val_logits, pair[1].val_logits, atol=1e-5)
