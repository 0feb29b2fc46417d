import dataclasses

import jax
import numpy as np
import pytest
from flax import nnx

from search_space.errors import UserError
from search_space import zoo
from tests.trainer.test_train import tiny_member
from trainer.config import TrainConfig
from trainer.data import validation_split
from trainer.layerwise import PROGRAMS, LayerwiseTrainer, model_stages
from trainer.train import MemberTrainer, train_member

CONFIG = TrainConfig(epochs=1, batch_size=32, learning_rate=0.1, warmup_epochs=0.1, precise_bn_images=64)


def _stage_leaves(trees):
    return [leaf for tree in trees for leaf in jax.tree_util.tree_leaves(tree)]


def _whole_program_stage_params(t: MemberTrainer):
    model = nnx.merge(t.graphdef_train, t.state.params, t.state.rest)
    return [nnx.state(s, nnx.Param) for s in model_stages(model)]


@pytest.mark.parametrize("spec", [tiny_member(), zoo.get("wrn-10-1", resolution=28)], ids=["mnasnet", "wrn"])
def test_a_step_is_the_whole_program_trainers_step(fashion, spec):
    # One step from the same weights on the same augmented batch: the same loss, parameters and
    # precise-BN logits up to float rounding (the programs differ in fusion, not in arithmetic).
    split = validation_split(fashion, 200, seed=0, train_examples=CONFIG.batch_size)
    config = CONFIG.replace(tta_flip=True)  # scored with mirror images too: both trainers' views compared
    whole, layers = MemberTrainer(spec, split, config, 3), LayerwiseTrainer(spec, split, config, 3)
    whole.compile(), layers.compile()
    assert layers.stages == len(model_stages(nnx.merge(whole.graphdef_train, whole.state.params, whole.state.rest)))
    before = [np.asarray(a) for a in _stage_leaves(layers.params)]
    np.testing.assert_allclose(layers.run_epoch(0), whole.run_epoch(0), rtol=1e-6)
    after_whole = _stage_leaves(_whole_program_stage_params(whole))
    after_layers = _stage_leaves(layers.params)
    assert len(after_whole) == len(after_layers) == len(before)
    moved = 0.0
    for b, w, lay in zip(before, after_whole, after_layers):
        assert w.shape == lay.shape
        np.testing.assert_allclose(np.asarray(lay), np.asarray(w), atol=2e-5)
        moved = max(moved, float(np.abs(np.asarray(w) - b).max()))
    assert moved > 1e-2  # the step did change the weights
    lw, ll = whole.view_logits(split.x_val), layers.view_logits(split.x_val)
    assert lw.shape == ll.shape == (2, 200, 10)
    np.testing.assert_allclose(ll, lw, atol=2e-3)


def test_each_stage_keeps_the_moving_average_of_its_weights_and_is_scored_with_it(fashion):
    # trainer.ema_decay: each stage's optimizer averages its own weights. Two epochs of one step (the
    # trainers part by more than rounding from the third step on, as the whole-program trainer does
    # under another depthwise lowering): after the second step the average is 0.1 x the first
    # step's weights + 0.9 x the second's, in either trainer.
    split = validation_split(fashion, 200, seed=0, train_examples=CONFIG.batch_size)
    config = CONFIG.replace(epochs=2, ema_decay=0.5)
    whole, layers = MemberTrainer(tiny_member(), split, config, 3), LayerwiseTrainer(tiny_member(), split, config, 3)
    whole.compile(), layers.compile()
    history = {"whole": [], "layers": []}
    for epoch in range(2):
        whole.run_epoch(epoch), layers.run_epoch(epoch)
        history["whole"].append([np.asarray(a) for a in _stage_leaves(_whole_program_stage_params(whole))])
        history["layers"].append([np.asarray(a) for a in _stage_leaves(layers.params)])
    model = nnx.merge(whole.graphdef_train, whole.scoring_params(), whole.state.rest)
    averages = {"whole": _stage_leaves([nnx.state(s, nnx.Param) for s in model_stages(model)]),
                "layers": _stage_leaves(layers.scoring_params())}
    for name, (first, second) in history.items():
        assert len(averages[name]) == len(first) == len(second)
        for avg, w1, w2 in zip(averages[name], first, second):
            np.testing.assert_allclose(np.asarray(avg), 0.1 * w1 + 0.9 * w2, atol=1e-6)
    assert max(float(np.abs(a - b).max()) for a, b in zip(*history["layers"])) > 1e-3  # the step moved them
    # scored with the average: as the same stages with the averaged weights put in place of the last
    x = split.x_val
    with_average = layers.view_logits(x)
    last = layers.params
    layers.params, layers.config = layers.scoring_params(), config.replace(ema_decay=0.0)
    np.testing.assert_allclose(layers.view_logits(x), with_average, atol=1e-6)
    layers.params = last
    assert np.abs(layers.view_logits(x) - with_average).max() > 1e-4


def test_later_members_reuse_earlier_members_layers(fashion):
    PROGRAMS.clear()
    split = validation_split(fashion, 1000, seed=0, train_examples=2000)
    config = CONFIG.replace(compile_unit="layer", precise_bn_images=2000)
    first_spec = tiny_member()
    first = train_member(first_spec, split, config)
    assert first.ok and first.val_accuracy > 0.35  # chance is 0.10
    assert first.lowering.endswith(",unit=layer") and first.steps == 62
    assert 0 < first.stages_compiled < first.stages  # block1.0 and block2.0 have one shape: one program
    # One block's kernel changed: that block's layers are new, the rest are reused.
    blocks = list(first_spec.blocks)
    blocks[2] = dataclasses.replace(blocks[2], kernel=5)
    other = first_spec.replace(blocks=tuple(blocks))
    second = train_member(other, split, config)
    assert second.ok and 0 < second.stages_compiled < first.stages_compiled
    # another seed and learning-rate schedule: each step's rate is an argument of the programs
    again = train_member(tiny_member(), split, config.replace(learning_rate=0.05, warmup_epochs=0.0), seed=1)
    assert again.ok and again.stages_compiled == 0 and again.compile_s < first.compile_s / 3
    assert again.val_accuracy != first.val_accuracy  # not a cached result
    # Programs another member compiled train exactly as the member's own would: what a search
    # resumed in a fresh process (nothing cached) needs to reproduce its records.
    PROGRAMS.clear()
    alone = train_member(other, split, config)
    assert alone.stages_compiled > second.stages_compiled
    np.testing.assert_array_equal(alone.val_logits, second.val_logits)


def test_divergence_is_a_failed_result(fashion, monkeypatch):
    import trainer.train as tt

    original = tt.init_model

    def poisoned(*a, **k):
        m = original(*a, **k)
        m.classifier.dense.kernel[...] = m.classifier.dense.kernel[...] * float("nan")
        return m

    monkeypatch.setattr(tt, "init_model", poisoned)
    split = validation_split(fashion, 128, seed=0, train_examples=256)
    r = train_member(tiny_member(), split, TrainConfig(epochs=2, batch_size=64, compile_unit="layer"))
    assert r.status == "failed" and "diverged" in r.reason and r.epochs == 1


def test_compile_unit_is_checked():  # its old cache keys: tests/trainer/test_config.py
    with pytest.raises(UserError, match="trainer.compile_unit"):
        TrainConfig(compile_unit="block")


def test_the_program_cache_stays_within_its_size_and_the_processs_memory_maps(monkeypatch):
    import trainer.layerwise as lw

    cache = lw._ProgramCache(capacity=6, max_regions=None)
    built = [cache.get(k, lambda k=k: f"programs {k}") for k in range(10)]
    assert all(new for _, new in built) and len(cache) == 6 and cache.evicted == 4
    assert cache.get(9, lambda: "again") == ("programs 9", False)  # still there, not rebuilt
    assert cache.get(0, lambda: "again") == ("again", True)  # the oldest went first
    # Every entry maps 100 regions here; a budget of 450 keeps four.
    cache = lw._ProgramCache(capacity=100, max_regions=450)
    monkeypatch.setattr(lw, "_mapped_regions", lambda: 100 * len(cache))
    for k in range(20):
        cache.get(k, lambda k=k: k)
    assert len(cache) == 4 and cache.get(19, lambda: None) == (19, False)


def test_precise_bn_images_are_the_whole_program_trainers_in_training_batches():
    from trainer.layerwise import _precise_bn_batches
    from trainer.train import precise_bn_indices

    config = TrainConfig(precise_bn_images=2000, eval_batch_size=1000)
    whole = np.asarray(precise_bn_indices(5000, config, 7)).reshape(-1)
    batches = _precise_bn_batches(5000, config, 7, 32)
    assert batches.shape == (62, 32) and (batches.reshape(-1) == whole[:62 * 32]).all()
    few = _precise_bn_batches(5000, config.replace(precise_bn_images=10), 7, 32)
    assert few.shape == (1, 32) and len(set(few.reshape(-1))) == 32  # one batch, distinct images
    assert _precise_bn_batches(5000, config.replace(precise_bn_images=0), 7, 32) is None
