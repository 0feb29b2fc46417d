"""The local backends: pipelined (compile ahead on threads) gives the same members as sequential,
and an error in one member is that member's failed result."""

import dataclasses
import time

import numpy as np
import pytest

import nas.evaluators as evaluators
from nas.evaluators import MemberJob, PipelinedEvaluator, SequentialEvaluator, make_evaluator
from search_space.errors import UserError
from tests.trainer.test_train import _small_split, tiny_member
from trainer.config import TrainConfig
from trainer.train import MemberResult

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


def test_epoch_progress_reports_at_most_every_so_often_with_the_pace_since_the_first_epoch(monkeypatch):
    clock = iter([0.0,  # created (the member's compile and first epoch follow)
                  50.0,  # epoch 1 ends: under a minute since the start, nothing
                  70.0,  # epoch 2: a line, 20 s an epoch since epoch 1 ended
                  90.0,  # epoch 3: under a minute since the last line
                  130.0,  # epoch 4: a line
                  250.0])  # epoch 5 of 5: the result line follows, nothing
    monkeypatch.setattr(evaluators.time, "perf_counter", lambda: next(clock))
    lines: list[str] = []
    progress = evaluators.epoch_progress("wrn-10-1 seed 0", 60.0, lines.append)
    for epoch, loss in enumerate([2.0, 1.5, 1.2, 1.0, 0.9], start=1):
        progress(epoch, 5, loss)
    assert lines == ["    .. wrn-10-1 seed 0: epoch 2/5, loss 1.500 (20.0 s an epoch, about 1 min 00 s left)",
                     "    .. wrn-10-1 seed 0: epoch 4/5, loss 1.000 (26.7 s an epoch, about 27 s left)"]
    # a first epoch longer than the interval: said as the time since the start
    clock = iter([0.0, 75.0])
    lines.clear()
    evaluators.epoch_progress("m", 60.0, lines.append)(1, 3, 2.5)
    assert lines == ["    .. m: epoch 1/3, loss 2.500 (1 min 15 s in)"]
    assert evaluators.epoch_progress("m", None) is None


def test_members_report_their_epochs_in_process(fashion, capfd):  # noqa: F811
    split = _small_split(fashion, 128)
    config = dataclasses.replace(CONFIG, epochs=3)
    jobs = [MemberJob("a", tiny_member(), 0, label="tiny seed 0"), MemberJob("b", tiny_member(), 1)]
    for ev in (SequentialEvaluator(progress_every_s=0.0), PipelinedEvaluator(progress_every_s=0.0)):
        try:
            assert all(r.ok for _, r in ev.evaluate_many(jobs, split, config))
        finally:
            ev.close()
        err = capfd.readouterr().err
        for name in ("tiny seed 0", "member b seed 1"):  # the label, else the key and seed
            assert f".. {name}: epoch 1/3, loss " in err and f".. {name}: epoch 2/3, loss " in err
        assert "epoch 3/3" not in err  # the last epoch's result is the caller's line
    assert make_evaluator("sequential").progress_every_s == evaluators.EPOCH_PROGRESS_S


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


def test_pipelined_draws_a_job_only_when_a_thread_is_free(monkeypatch):
    finished: list[int] = []

    def instant(spec, split, config, seed):  # a member that fails to compile after 50 ms
        time.sleep(0.05)
        finished.append(seed)
        return MemberResult("x", "failed", "stand-in")

    monkeypatch.setattr(evaluators, "prepare_member", instant)
    finished_when_drawn: list[int] = []

    def jobs():  # five members, then none: a time limit's gate
        for s in range(5):
            finished_when_drawn.append(len(finished))
            yield MemberJob(str(s), tiny_member(), s)

    ev = PipelinedEvaluator(compile_workers=1, train_workers=1)
    try:
        out = {job.key: r for job, r in ev.evaluate_many(jobs(), None, CONFIG)}
    finally:
        ev.close()
    assert sorted(out) == ["0", "1", "2", "3", "4"]
    # one job per pool thread (two) in flight: job i is drawn once i - 1 have finished
    assert finished_when_drawn[:2] == [0, 0]
    assert all(n >= i - 1 for i, n in enumerate(finished_when_drawn)), finished_when_drawn


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
    from nas.run_summary import member_costs, members_line

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
    # whole-program members that took an earlier member's programs, counted once each (older records lack it)
    copy = {**a, "key": "f", "programs_reused": True, "compile_s": 0.0}
    costs = member_costs([{"members": [a, copy]}, {"members": [copy, old]}])
    assert costs["programs_reused"] == 1 and "; 1 took an earlier member's programs" in members_line(costs)
    assert "earlier member's programs" not in members_line(member_costs([{"members": [a, old]}]))


def _stackable():
    """Members of the stacked backend's tests: two of one frame (24 px), one of another (14 px), and
    a Wide-ResNet, which has no frame."""
    from search_space.spec import Activation, WideResNetSpec
    from tests.trainer.test_padded import varied_member
    from tests.trainer.test_stacked import _two_block

    a = _two_block(tiny_member(res_index=2)).replace(activation=Activation.SWISH)
    b = _two_block(varied_member(width=0.25, resolution_index=2)).replace(activation=Activation.SWISH,
                                                                           head_filters=a.head_filters)
    c = _two_block(tiny_member(res_index=0)).replace(activation=Activation.SWISH)
    return [MemberJob("a", a, 0), MemberJob("wrn", WideResNetSpec(depth=10, width=1, resolution=28), 0),
            MemberJob("c", c, 2), MemberJob("b", b, 1)]


def test_the_stacked_backend_stacks_members_by_frame_as_they_come():
    ev = evaluators.StackedEvaluator(slots=2)
    try:
        drawn = []

        def jobs():  # records how far the evaluator has drawn
            for job in _stackable() + [MemberJob("a2", _stackable()[0].spec, 5)]:
                drawn.append(job.key)
                yield job

        formed = ev.stacks(jobs())
        wrn_job, wrn = next(formed)  # where it is drawn
        assert wrn_job.key == "wrn" and not wrn.ok and "MnasNet space" in wrn.reason and drawn == ["a", "wrn"]
        assert [j.key for j in next(formed)] == ["a", "b"] and drawn == ["a", "wrn", "c", "b"]  # a full stack
        assert [[j.key for j in s] for s in formed] == [["c"], ["a2"]]  # the rest, frames in order of arrival
    finally:
        ev.close()
    with pytest.raises(UserError, match="needs trainer.compile_unit=stacked"):
        next(iter(make_evaluator("stacked").evaluate_many(_stackable(), None, CONFIG)))


def test_the_stacked_backend_prepares_stacks_ahead_side_by_side(monkeypatch):
    # Building and training stand in: with ahead=2 the first two stacks are prepared at once (each
    # preparation waits at a barrier for the other), the third while the first trains; results come
    # stack by stack in the order the stacks formed, each member its own.
    import threading

    import trainer.stacked as stacked

    barrier, prepared, trained = threading.Barrier(2, timeout=10), [], []
    a, wrn, c, b = _stackable()

    def prepare_stack(specs, split, config, seeds, slots):
        prepared.append(tuple(seeds))
        if len(prepared) <= 2:
            barrier.wait()  # broken (an error) unless two preparations run side by side
        return tuple(seeds)  # a list would be failed results

    def run_stacked(seeds, progress=None):
        trained.append(tuple(seeds))
        return [MemberResult(f"seed {s}", "ok", val_accuracy=0.5) for s in seeds]

    monkeypatch.setattr(stacked, "prepare_stack", prepare_stack)
    monkeypatch.setattr(stacked, "run_stacked", run_stacked)
    jobs = [a, MemberJob("a2", a.spec, 5), c, MemberJob("c2", c.spec, 6), b]
    ev = evaluators.StackedEvaluator(slots=2, ahead=2)
    try:
        got = [(job.key, r.status, r.spec_id) for job, r in ev.evaluate_many(jobs, None, CONFIG.replace(
            compile_unit="stacked"))]
    finally:
        ev.close()
    assert got == [("a", "ok", "seed 0"), ("a2", "ok", "seed 5"), ("c", "ok", "seed 2"), ("c2", "ok", "seed 6"),
                   ("b", "ok", "seed 1")]
    assert trained == [(0, 5), (2, 6), (1,)] and sorted(prepared) == sorted(trained)
    assert evaluators.StackedEvaluator(ahead=None).ahead == evaluators.default_stack_ahead()
    with pytest.raises(ValueError):
        evaluators.StackedEvaluator(ahead=0)


def test_a_frame_that_runs_out_of_memory_gets_stacks_of_fewer_slots(monkeypatch):
    # Stand-ins: frame A's stacks run out of memory above one slot (seed 7 even at one); frame C's
    # 4-slot program plans more memory than the device holds and 1 slot would fit. A's three members
    # go 4 slots -> 2 -> 1 and train, seed 7's out-of-memory result at one slot is its result; C's
    # go to 1 slot at once; every member has one result.
    import trainer.stacked as stacked

    a, wrn, c, b = _stackable()
    prepared = []

    def prepare_stack(specs, split, config, seeds, slots):
        prepared.append((specs[0].resolution, tuple(seeds), slots))
        oom = [MemberResult(f"seed {s}", "failed", "out of memory: RESOURCE_EXHAUSTED: 81.2 GiB") for s in seeds]
        if specs[0].resolution == a.spec.resolution and (slots > 1 or 7 in seeds):
            return oom
        if specs[0].resolution == c.spec.resolution and slots > 1:
            return stacked.OversizedStack(oom, fit=1)
        return tuple(seeds)

    monkeypatch.setattr(stacked, "prepare_stack", prepare_stack)
    monkeypatch.setattr(stacked, "run_stacked",
                        lambda seeds, progress=None: [MemberResult(f"seed {s}", "ok", val_accuracy=0.5) for s in seeds])
    jobs = [a, MemberJob("a2", a.spec, 5), c, MemberJob("a3", a.spec, 7), MemberJob("c2", c.spec, 6)]
    ev = evaluators.StackedEvaluator(slots=4, ahead=1)
    try:
        got = {job.key: (r.status, r.spec_id) for job, r in ev.evaluate_many(jobs, None, CONFIG.replace(
            compile_unit="stacked"))}
    finally:
        ev.close()
    assert got == {"a": ("ok", "seed 0"), "a2": ("ok", "seed 5"), "a3": ("failed", "seed 7"), "c": ("ok", "seed 2"),
                   "c2": ("ok", "seed 6")}
    r_a, r_c = a.spec.resolution, c.spec.resolution
    assert prepared == [(r_a, (0, 5, 7), 4), (r_c, (2, 6), 4), (r_a, (0, 5), 2), (r_a, (7,), 2), (r_a, (0,), 1),
                        (r_a, (5,), 1), (r_a, (7,), 1), (r_c, (2,), 1), (r_c, (6,), 1)]
    assert list(ev.frame_slots.values()) == [1, 1]


def test_a_stack_planning_more_memory_than_the_device_holds_is_out_of_memory(monkeypatch):
    # XLA's memory analysis of the compiled epoch program against the device's limit, before training.
    from types import SimpleNamespace

    import trainer.stacked as stacked

    gib = 2**30
    analysis = SimpleNamespace(temp_size_in_bytes=9 * gib, argument_size_in_bytes=gib // 2,
                               output_size_in_bytes=gib // 2, alias_size_in_bytes=gib // 2)

    class Planned:
        def __init__(self, specs, split, config, seeds, slots):
            self.slots, self.resolution = slots, specs[0].resolution
            self._epoch = SimpleNamespace(memory_analysis=lambda: analysis)

        def compile(self):
            return 0.0

    monkeypatch.setattr(stacked, "StackedTrainer", Planned)
    specs = [job.spec for job in _stackable()[:1]]
    monkeypatch.setattr(stacked, "device_memory_limit", lambda: 12 * gib)  # 9.5 GiB fits 85% of 12
    assert isinstance(stacked.prepare_stack(specs, None, CONFIG, [0], 8), Planned)
    monkeypatch.setattr(stacked, "device_memory_limit", lambda: 11 * gib)
    oversized = stacked.prepare_stack(specs, None, CONFIG, [0], 8)
    (r,) = oversized
    assert not r.ok and r.reason.startswith("out of memory") and "plans 9.5 GiB" in r.reason and "11.0 GiB" in r.reason
    assert oversized.fit == 7  # 85% of 11 GiB over 9.5 / 8 GiB a slot
    monkeypatch.setattr(stacked, "device_memory_limit", lambda: None)  # the CPU: no limit known, no check
    assert isinstance(stacked.prepare_stack(specs, None, CONFIG, [0], 8), Planned)


@pytest.mark.slow
def test_the_stacked_backend_trains_each_member_as_alone(fashion):  # noqa: F811
    # Stacks of two ([a, b], then [c] with a copy in the empty slot) against each member alone in
    # its frame (the sequential backend: a stack of one); the Wide-ResNet is a failed result. About
    # two minutes on the 2-core CPU (three frame programs).
    split = _small_split(fashion, 128)
    config = CONFIG.replace(compile_unit="stacked", precise_bn_images=64)
    ev = make_evaluator("stacked", slots=2)
    try:
        got = {job.key: r for job, r in ev.evaluate_many(_stackable(), split, config)}
    finally:
        ev.close()
    assert sorted(got) == ["a", "b", "c", "wrn"] and not got["wrn"].ok
    assert [got[k].stacked for k in "abc"] == [2, 2, 1] and all(got[k].ok for k in "abc")
    _, alone = next(iter(SequentialEvaluator().evaluate_many([_stackable()[2]], split, config)))
    assert alone.ok and alone.stacked == 1
    np.testing.assert_allclose(got["c"].loss_curve, alone.loss_curve, rtol=1e-5)
    np.testing.assert_allclose(got["c"].val_logits, alone.val_logits, atol=1e-4)


def test_the_stacked_backends_options_reach_it():
    import argparse

    from nas.cli import add_backend_arguments, evaluator_from_args

    p = argparse.ArgumentParser()
    add_backend_arguments(p)
    for argv, slots, ahead in [(["--stack-slots", "3", "--stack-ahead", "2"], 3, 2),
                               ([], 8, evaluators.default_stack_ahead())]:
        ev = evaluator_from_args(p.parse_args(["--backend", "stacked", *argv]))
        try:
            assert isinstance(ev, evaluators.StackedEvaluator) and (ev.slots, ev.ahead) == (slots, ahead)
        finally:
            ev.close()
