"""The local backends: pipelined (compile ahead on threads) gives the same members as sequential,
and an error in one member is that member's failed result."""

import dataclasses

import numpy as np
import pytest

import nas.evaluators as evaluators
from nas.evaluators import MemberJob, PipelinedEvaluator, SequentialEvaluator, make_evaluator
from search_space.errors import UserError
from tests.trainer.test_train import _small_split, fashion, tiny_member  # noqa: F401 - fixture
from trainer.config import TrainConfig

CONFIG = TrainConfig(epochs=1, batch_size=32, learning_rate=0.1, warmup_epochs=0.1)


def _jobs():
    return [MemberJob("a", tiny_member(), 0), MemberJob("b", tiny_member(), 1)]


def test_pipelined_trains_the_same_members_as_sequential(fashion):  # noqa: F811
    split = _small_split(fashion, 128)
    seq = {job.key: r for job, r in SequentialEvaluator().evaluate_many(_jobs(), split, CONFIG)}
    ev = PipelinedEvaluator(compile_workers=2, train_workers=2)
    try:
        pipe = {job.key: r for job, r in ev.evaluate_many(_jobs(), split, CONFIG)}
    finally:
        ev.close()
    assert sorted(pipe) == ["a", "b"]
    for k in seq:
        assert seq[k].ok and pipe[k].ok
        np.testing.assert_array_equal(seq[k].val_logits, pipe[k].val_logits)
        assert seq[k].loss_curve == pipe[k].loss_curve


def test_pipelined_per_layer_members_compile_each_layer_once_between_them(fashion):  # noqa: F811
    # The demo's setting: two compile threads start members with the same layers at once; the
    # program cache builds each layer once (one thread waits for the other's build) and both
    # members train exactly as they do one after the other.
    from trainer.layerwise import PROGRAMS

    config = dataclasses.replace(CONFIG, compile_unit="layer")
    split = _small_split(fashion, 128)
    PROGRAMS.clear()
    seq = {job.key: r for job, r in SequentialEvaluator().evaluate_many(_jobs(), split, config)}
    distinct = seq["a"].stages_compiled  # the member repeats some layers within itself
    assert 0 < distinct < seq["a"].stages and seq["b"].stages_compiled == 0
    PROGRAMS.clear()
    ev = PipelinedEvaluator(compile_workers=2, train_workers=2)
    try:
        pipe = {job.key: r for job, r in ev.evaluate_many(_jobs(), split, config)}
    finally:
        ev.close()
    assert sum(r.stages_compiled for r in pipe.values()) == distinct
    for k in seq:
        assert seq[k].ok and pipe[k].ok and pipe[k].lowering.endswith("unit=layer")
        np.testing.assert_array_equal(seq[k].val_logits, pipe[k].val_logits)
        assert seq[k].loss_curve == pipe[k].loss_curve


def test_an_error_in_one_member_is_its_failed_result(fashion, monkeypatch):  # noqa: F811
    split = _small_split(fashion, 128)
    real = evaluators.prepare_member

    def flaky(spec, split, config, seed):
        if seed == 1:
            raise RuntimeError("injected failure\nsecond line")
        return real(spec, split, config, seed)

    monkeypatch.setattr(evaluators, "prepare_member", flaky)
    ev = PipelinedEvaluator(compile_workers=1, train_workers=1)
    try:
        out = {job.key: r for job, r in ev.evaluate_many(_jobs(), split, CONFIG)}
    finally:
        ev.close()
    assert out["a"].ok
    assert out["b"].status == "failed" and out["b"].reason == "error: RuntimeError: injected failure"


def test_auto_is_pipelined_without_a_gpu():
    ev = make_evaluator("auto")
    try:
        assert isinstance(ev, PipelinedEvaluator)
    finally:
        ev.close()


def test_unknown_backend_is_a_user_error():
    with pytest.raises(UserError, match="unknown backend 'gpu'"):
        make_evaluator("gpu")
    with pytest.raises(ValueError):
        PipelinedEvaluator(compile_workers=0)


def test_member_costs_count_each_member_once_and_set_the_first_epoch_apart():
    from nas.run_summary import member_costs

    a = {"key": "a", "status": "ok", "compile_s": 10.0, "train_s": 12.0, "epoch_s": [9.0, 1.5, 1.5], "eval_s": 2.0}
    b = {"key": "b", "status": "failed", "compile_s": 4.0, "train_s": 0.0, "epoch_s": [], "eval_s": 0.0}
    old = {"key": "c", "status": "ok", "compile_s": 1.0, "train_s": 3.0}  # a record from before epoch_s
    costs = member_costs([{"members": [a, b]}, {"members": [a, old]}])
    assert costs["trained"] == 3 and costs["failed"] == 1
    assert costs["compile_s_mean"] == 5.0 and costs["first_epoch_s_mean"] == 9.0
    assert member_costs([{"members": [old]}])["first_epoch_s_mean"] is None
    assert costs["stages"] == costs["stages_compiled"] == 0  # whole-program members
    layered = [{"key": "d", "status": "ok", "stages": 20, "stages_compiled": 5},
               {"key": "e", "status": "ok", "stages": 18, "stages_compiled": 0}]
    costs = member_costs([{"members": layered}, {"members": [layered[0], old]}])
    assert (costs["stages"], costs["stages_compiled"]) == (38, 5)
