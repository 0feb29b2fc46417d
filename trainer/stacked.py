"""Stacked members: several members of one resolution trained side by side as one vmapped program.

``trainer.compile_unit="stacked"`` trains a member inside its *frame*: one network that every member
of the MnasNet space at that input resolution fits in. Each layer position of the frame (block b,
layer j, up to the space's most layers in that block) holds one padded layer per operation (mbconv,
sepconv, conv: trainer/padded.py's ``PaddedMobileLayer`` at the envelope's widths, kernel 5,
squeeze-excite, pooled projection shortcut on a block's first layer), and two switches held as state
(``PadGate``): which operation's output the position passes on, and, after a block's first layer,
whether the position is there at all (an absent layer passes its input on: the member's block is
shorter). The member's own weights sit in its operation's branch of its positions (padded as
trainer/padded.py pads them); every other branch and every absent position holds zeros.

So the frame's programs depend only on the resolution (and the data set, the trainer settings and
how many members train together), never on the member: the MnasNet space at CIFAR-10's 32 px has 4
frames, a search's every member trains with one of 4 compiled programs, and ``StackedTrainer`` trains
K members of one frame at once, ``jax.vmap`` over their weights, optimizer states, data orders and
augmentation draws, one program step for all K. Where a small member leaves the GPU mostly idle (a
10-epoch proxy of a search member ran at about 1% of an H100's peak, ../shared/PERF_NOTES.md; the
step's fixed cost dominates), K members take about one member's step time.

Why a member in its frame computes that member and nothing else, beyond trainer/padded.py's reasons
(checked against the member's own trainer in tests/trainer/test_stacked.py):
* a branch the member does not use has zero weights, so its output is zero; the position's
  operation switch selects the member's branch with ``jnp.where`` (exact), so the other branches'
  gradients are zero and their weights, momentum and weight decay stay zero;
* an absent position returns its input (``jnp.where`` again); its branches' gradients are zero;
* the K members of a stack share nothing but the program: vmap keeps each member's batch norm,
  data order, augmentation and optimizer state its own, and a diverged member's NaNs stay in its lanes.
Sums run over more (zero) terms in another order, so a stacked member agrees with the member
trained alone to rounding, not bit for bit; ``compile_unit`` is part of the trainer config's key.

The price is arithmetic: every position computes all three operations at the envelope's widths,
and absent positions compute too: 8.3-9.7x a random member's multiply-adds (the median by
resolution over 200 random CIFAR-10 members, 3.6-32x in all; the frames' projection shortcuts
not counted). On the CPU, where
arithmetic is the cost, that makes stacking slower than training members one by one; it is built
for the GPU, where compilation, not arithmetic, bounds a search's pace (docs/gpu.md).
"""

from __future__ import annotations

import dataclasses
import functools
import time
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from search_space.layers import Layer, layer_plan
from search_space.models import _ACTIVATIONS, Classifier, ConvBN, MobileNet, conv_mode, depthwise_mode, init_model, \
    program_backend, set_conv_lowering
from search_space.space import EXPANDS, LAYER_DELTAS, MOBILENETV2_BLOCKS
from search_space.spec import ArchSpec, ConvOp, MobileNetSpec, SkipOp, spec_id
from trainer.augment import crop_padding
from trainer.config import (TrainConfig, batch_and_steps, compute_dtype, epoch_learning_rates, init_optimizer_state,
                            make_optimizer, program_config)
from trainer.data import Split
from trainer.padded import PaddedMobileLayer, PadGate, embed_padded, envelope_spec, layer_gates
from trainer.train import (MemberPrograms, MemberResult, ProgramCache, ProgressFn, TrainState, compile_programs,
                           device_data, is_oom, oom_result, precise_bn_indices, views_by_image)

OPS = (ConvOp.MBCONV, ConvOp.SEPCONV, ConvOp.CONV)


def frame_specs(spec: ArchSpec) -> tuple[MobileNetSpec, ...]:
    """The frame ``spec`` trains in, as one spec per operation (mbconv, sepconv, conv): ``spec``
    with every block that operation at the space's most layers (MobileNetV2's n + 1, or the member's
    own if more) and the envelope's widths (``envelope_spec``). Members with equal frame specs share
    a frame (same resolution, stem, head, activation, block strides). Only MobileNet-family members
    of the MnasNet space's blocks (its seven, or the first few: what the tests train) have one:
    anything else is a ``ValueError``."""
    if not isinstance(spec, MobileNetSpec) or not 0 < len(spec.blocks) <= len(MOBILENETV2_BLOCKS):
        raise ValueError("compile_unit=stacked: only members of the MnasNet space (a MobileNet spec with at "
                         f"most {len(MOBILENETV2_BLOCKS)} blocks) have a frame")
    out = []
    for op in OPS:
        blocks = tuple(dataclasses.replace(blk, conv_op=op, repeats=max(blk.repeats, n + max(LAYER_DELTAS)),
                                           expand=max(EXPANDS) if op == ConvOp.MBCONV else 1,
                                           skip=SkipOp.NONE)  # shortcuts are switches (PadGate)
                       for blk, (_, _, n, _) in zip(spec.blocks, MOBILENETV2_BLOCKS))
        out.append(envelope_spec(spec.replace(blocks=blocks)))
    return tuple(out)


class GatedPosition(nnx.Module):
    """One layer position of a frame: a padded layer per operation, the member's chosen by ``op``
    (one-hot over ``OPS``) and, unless it is a block's first layer, skipped when ``active`` is 0."""

    def __init__(self, envs: Sequence[Layer], first: bool, act: Callable, rngs: nnx.Rngs, dtype: Any):
        self.first = first
        self.mbconv, self.sepconv, self.conv = (PaddedMobileLayer(e, first, act, rngs, dtype) for e in envs)
        self.op = PadGate(jnp.asarray([1.0, 0.0, 0.0], jnp.float32))
        self.active = PadGate(jnp.ones((), jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        op = self.op[...]
        y = jnp.where(op[0] > 0, self.mbconv(x), jnp.where(op[1] > 0, self.sepconv(x), self.conv(x)))
        if self.first:  # a block's first layer is always there (stride, channels)
            return y
        return jnp.where(self.active[...] > 0, y, x)


class FrameNet(nnx.Module):
    """A frame (``frame_specs``) as a network: stem, every position, head, classifier."""

    def __init__(self, frames: tuple[MobileNetSpec, ...], num_classes: int, *, rngs: nnx.Rngs, dtype: Any):
        spec = frames[0]
        act = _ACTIVATIONS[spec.activation]
        plans = [[l for l in layer_plan(f, num_classes) if l.op in ("mbconv", "sepconv", "conv")] for f in frames]
        stem = layer_plan(spec, num_classes)[0]
        self.stem = ConvBN(3, stem.cout, 3, stem.stride, act, rngs, dtype)
        self.names = tuple(l.name for l in plans[0])
        self.positions = nnx.List([GatedPosition(envs, envs[0].name.endswith(".0"), act, rngs, dtype)
                                   for envs in zip(*plans)])
        last = plans[0][-1].cout
        self.head = ConvBN(last, spec.head_filters, 1, 1, act, rngs, dtype) if spec.head_filters else None
        self.classifier = Classifier(spec.head_filters or last, num_classes, spec.dropout, rngs, dtype)
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        x = self.stem(x.astype(self.dtype))
        for position in self.positions:
            x = position(x)
        if self.head is not None:
            x = self.head(x)
        return self.classifier(x)


@functools.lru_cache(maxsize=16)
def _abstract_frame(frames: tuple[MobileNetSpec, ...], num_classes: int, dtype: Any) -> tuple[Any, Any]:
    return nnx.split(nnx.eval_shape(lambda: FrameNet(frames, num_classes, rngs=nnx.Rngs(0), dtype=dtype)))


def frame_state(member: MobileNet, spec: MobileNetSpec, num_classes: int, dtype: Any) -> Any:
    """The frame's state (numpy leaves) holding ``member`` (``spec``'s model): its weights in its
    operation's branch of its positions, padded (trainer/padded.py's ``embed_padded``: batch-norm scales
    and variances one, everything else zero), every other branch and absent position blank, and the
    switches set for it."""
    frames = frame_specs(spec)
    _, state = _abstract_frame(frames, num_classes, dtype)
    have = {tuple(str(k) for k in path): var.get_value()
            for path, var in nnx.to_flat_state(nnx.state(member))}
    real = {l.name: (i, l) for i, l in enumerate(l for l in layer_plan(spec, num_classes)
                                                 if l.op in ("mbconv", "sepconv", "conv"))}
    layers = [l for l in layer_plan(frames[0], num_classes) if l.op in ("mbconv", "sepconv", "conv")]
    names, kernel = [l.name for l in layers], max(l.kernel for l in layers)

    def fill(path: tuple, var: Any) -> Any:
        key = tuple(str(k) for k in path)
        name, shape = key[-1], var.get_value().shape
        base = 1.0 if name in ("scale", "var") else 0.0
        dtype_ = var.get_value().dtype
        if isinstance(var, (nnx.RngKey, nnx.RngCount)):
            return var.replace(have[key])  # the classifier's dropout stream (same path in the member)
        if key[0] == "positions":
            hit = real.get(names[int(key[1])])
            if key[2] == "op":
                return var.replace(np.eye(len(OPS), dtype=np.float32)[OPS.index(ConvOp(hit[1].op)) if hit else 0])
            if key[2] == "active":
                return var.replace(np.float32(hit is not None))
            mine = hit is not None and hit[1].op == key[2]
            if isinstance(var, PadGate):
                value = layer_gates(hit[1], kernel)[name] if mine else np.zeros(shape, np.float32)
                return var.replace(np.asarray(value, np.float32))
            member_key = ("layers", str(hit[0]), *key[3:]) if mine else None
            if member_key in have:
                return var.replace(embed_padded(np.asarray(have[member_key]), shape, base, name).astype(dtype_))
            return var.replace(np.full(shape, base, dtype_))
        if key in have:
            return var.replace(embed_padded(np.asarray(have[key]), shape, base, name).astype(dtype_))
        return var.replace(np.full(shape, base, dtype_))

    return nnx.map_state(fill, state)


def _stack(trees: Sequence[Any]) -> Any:
    return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *trees)


PROGRAMS = ProgramCache()
PROGRAMS.KEEP = 8  # a frame per resolution (4 in the MnasNet space), two stack sizes each


class StackedTrainer(MemberPrograms):
    """Trains ``slots`` members of one frame as one vmapped program (the module docstring).

    ``specs`` and ``seeds``: the members (at most ``slots``; the empty slots train copies of the
    last member, whose results are dropped, so that every stack of a frame uses one program).
    """

    def __init__(self, specs: Sequence[ArchSpec], split: Split, config: TrainConfig, seeds: Sequence[int],
                 slots: int | None = None):
        start = time.perf_counter()
        if not specs or len(specs) != len(seeds):
            raise ValueError("StackedTrainer: give one seed per member, at least one member")
        slots = slots or len(specs)
        if len(specs) > slots:
            raise ValueError(f"StackedTrainer: {len(specs)} members do not fit {slots} slots")
        frames = {frame_specs(s) for s in specs}
        if len(frames) > 1:
            raise ValueError("StackedTrainer: members of one stack must share a frame (resolution, stem, head)")
        self.frames = frames.pop()
        self.specs, self.seeds, self.split, self.config = list(specs), list(seeds), split, config
        self.members = len(specs)
        self.slots = slots
        self.dtype = compute_dtype(config)
        n = len(split.y_train)
        self.batch_size, self.steps_per_epoch = batch_and_steps(n, config.batch_size)
        self.conv_lowering = conv_mode(train_images=config.epochs * n)
        self.lowering = f"conv={self.conv_lowering},depthwise={depthwise_mode()}"
        self.resolution = self.frames[0].resolution
        self.slot_seeds = self.seeds + [self.seeds[-1]] * (slots - len(specs))  # the empty slots: the last member's
        states = []
        for spec, seed in zip(self.specs, self.seeds):
            member = init_model(spec, split.num_classes, seed=seed, dtype=self.dtype, scheme=config.init,
                                zero_residual=config.zero_init_residual)
            states.append(frame_state(member, spec, split.num_classes, self.dtype))
        states += [states[-1]] * (slots - len(specs))  # the empty slots: copies of the last member
        graphdef, _ = _abstract_frame(self.frames, split.num_classes, self.dtype)
        model = nnx.merge(graphdef, states[0])
        set_conv_lowering(model, self.conv_lowering)
        model.train()
        self.graphdef_train = nnx.split(model, nnx.Param, ...)[0]
        model.eval()
        self.graphdef_eval = nnx.split(model, nnx.Param, ...)[0]
        per_member = [nnx.split(nnx.merge(graphdef, s), nnx.Param, ...)[1:] for s in states]
        params = _stack([p for p, _ in per_member])
        rest = _stack([r for _, r in per_member])
        self.tx = make_optimizer(config, self.steps_per_epoch)
        opt_state = _stack([init_optimizer_state(self.tx, p) for p, _ in per_member])
        self.state = TrainState(params, rest, opt_state)
        self.data = device_data(split)
        self.pad = crop_padding(split.native_resolution, config.crop_pad)
        bn = [precise_bn_indices(n, config, s) for s in self.slot_seeds]
        self.precise_bn_idx = None if bn[0] is None else jnp.stack(bn)
        self._epoch = jax.jit(self._epoch_fn, donate_argnums=(0,))
        self._eval = jax.jit(self._eval_fn)
        self.compile_s = self.trace_s = 0.0
        self.programs_reused = self.programs_loaded = False
        self.setup_s = time.perf_counter() - start

    # -- the programs: MemberPrograms' step and scoring, vmapped over the stack ------------------

    def _epoch_fn(self, state: TrainState, keys: jax.Array, data: tuple[jax.Array, ...],
                  lrs: jax.Array) -> tuple[TrainState, jax.Array]:
        """One epoch of every member: ``keys`` (slots,) each member's epoch key (its own
        ``MemberTrainer`` would draw the same permutation and augmentation from it); returns the
        losses, float32 (steps, slots)."""
        bs, steps = self.batch_size, self.steps_per_epoch
        n = data[0].shape[0]

        def plan(key: jax.Array) -> tuple[jax.Array, jax.Array]:
            pkey, akey = jax.random.split(key)
            return (jax.random.permutation(pkey, n)[: steps * bs].reshape(steps, bs), jax.random.split(akey, steps))

        order, akeys = jax.vmap(plan)(keys)  # (slots, steps, bs), (slots, steps)
        step_all = jax.vmap(self._step, in_axes=(0, 0, 0, 0, 0, None, None))

        def step(carry: TrainState, inp: tuple[jax.Array, jax.Array, jax.Array]) -> tuple[TrainState, jax.Array]:
            idx, k, lr = inp
            params, rest, opt_state, loss = step_all(carry.params, carry.rest, carry.opt_state, idx, k, lr, data)
            return TrainState(params, rest, opt_state), loss

        return jax.lax.scan(step, state, (order.swapaxes(0, 1), akeys.swapaxes(0, 1), lrs))

    def _eval_fn(self, params: Any, rest: Any, x: jax.Array, data: tuple[jax.Array, ...],
                 precise_bn_idx: jax.Array | None) -> jax.Array:
        """Every member's logits of a padded (batches, eval_bs, H, W, C) uint8 array: (slots,
        batches, views, eval_bs, classes), as ``MemberTrainer`` scores one member."""
        axis = None if precise_bn_idx is None else 0
        return jax.vmap(self._views, in_axes=(0, 0, None, None, axis))(params, rest, x, data, precise_bn_idx)

    # -- driving them -------------------------------------------------------------------------

    def program_key(self) -> tuple:
        x, y = self.split.x_train, self.split.x_val
        bn = None if self.precise_bn_idx is None else tuple(self.precise_bn_idx.shape)
        return (self.frames, self.slots, program_config(self.config).key(), self.split.num_classes, x.shape,
                str(x.dtype), y.shape, self.lowering, bn, program_backend())

    def compile(self) -> float:
        """Compile both programs ahead of time, or take them from an earlier stack of this frame and size."""
        return compile_programs(self, jax.ShapeDtypeStruct((self.slots,), jax.random.key(0).dtype), PROGRAMS,
                                STACK_COMPILER_OPTIONS)

    def run_epoch(self, epoch: int) -> np.ndarray:
        """float32 (slots, steps): each member's losses in epoch ``epoch`` (0-based)."""
        keys = jnp.stack([jax.random.fold_in(jax.random.key(s), epoch) for s in self.slot_seeds])
        lrs = epoch_learning_rates(self.config, self.steps_per_epoch, epoch)
        self.state, losses = self._epoch(self.state, keys, self.data, lrs)
        return np.asarray(losses).T

    def view_logits(self, x: np.ndarray) -> np.ndarray:
        """float32 (members, views, N, classes): ``x`` scored by each member (the filled slots' dropped)."""
        out = self._eval(self.scoring_params(), self.state.rest, self._eval_batches(x), self.data, self.precise_bn_idx)
        return views_by_image(out, len(x))[: self.members]


class StackedMember(StackedTrainer):
    """One member in its frame behind ``MemberTrainer``'s interface (``trainer.train.run_member``
    drives it): what ``make_trainer`` gives for ``compile_unit="stacked"`` where members come one at
    a time (``nas train``, the sequential and worker-process evaluators)."""

    stages = stages_compiled = stages_loaded = 0
    stacked = 1

    def __init__(self, spec: ArchSpec, split: Split, config: TrainConfig, seed: int):
        super().__init__([spec], split, config, [seed])
        self.spec, self.seed = spec, seed

    def run_epoch(self, epoch: int) -> np.ndarray:
        return super().run_epoch(epoch)[0]

    def view_logits(self, x: np.ndarray) -> np.ndarray:
        return super().view_logits(x)[0]

    def logits(self, x: np.ndarray) -> np.ndarray:
        return self.view_logits(x).mean(0)


# The share of the device allocator's memory that a stack's compiled epoch program may plan to use
# (XLA's memory analysis: temporaries, arguments, outputs); the rest is headroom for the stacks built
# ahead (their weights and optimizer states: 1.2 GiB for 8 slots) and the allocator's fragmentation.
# Frames need far more than their members: XLA's plan for an H100 (compiled on the CPU without a GPU,
# experiments/check_gpu_plan.py; jax 0.11.2, bf16, batch 256, dense convolutions as matrix products;
# 2026-12-08) gives 8 slots of the 32 px CIFAR-10 frame 54.5 GiB, 6.8 a slot, against 1.7 GiB for a
# member alone, and that after XLA recomputes to fit (below).
MEMORY_SHARE = 0.85

# What XLA's GPU compiler lets a program plan: it schedules and rematerializes (recomputes values
# rather than keeping them) to fit slop/100 of the device memory it is given, less the program's
# arguments and outputs, and JAX gives it the allocator's limit (jaxlib passes the device's
# bytes_limit as the build's device memory size). At XLA's default slop of 95 a frame may plan up to
# about 95% of the limit, which ``prepare_stack``'s check above rejects, then rejects again at the
# fewer slots it asks for while XLA still fills 95%, a compile each time (two minutes for a frame);
# at 80 XLA fits a stack under the check by recomputing, and the check is left to what XLA cannot
# fit. Compiled without a GPU (jax 0.10.2, an earlier build of the frame with more to fit), the 32 px
# frame's 8 slots, 82.8 GiB of temporaries as written, planned 59.8 GiB at the default slop and 51.0
# GiB at 80, for 33 more kernels (experiments/results/gpu_plan_cpu_2026-12-08). The option is a GPU
# one; other backends ignore it.
STACK_COMPILER_OPTIONS: dict[str, Any] = {"xla_gpu_memory_limit_slop_factor": 80}


def program_memory(trainer: StackedTrainer) -> int | None:
    """Bytes a compiled stack's epoch program plans to use (temporaries, arguments and outputs,
    less what they share), or None where XLA does not say."""
    try:
        m = trainer._epoch.memory_analysis()
    except Exception:  # noqa: BLE001 - a backend without the analysis
        return None
    return None if m is None else planned_bytes(m)


def planned_bytes(analysis: Any) -> int:
    """A compiled program's memory analysis as the bytes it plans to hold at once: temporaries,
    arguments and outputs, less what outputs share with (donated) arguments."""
    m = analysis
    return int(m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes)


def device_memory_limit() -> int | None:
    """Bytes the default device's allocator may hold (None where JAX does not say: the CPU)."""
    stats = jax.devices()[0].memory_stats()
    return int(stats["bytes_limit"]) if stats and "bytes_limit" in stats else None


class OversizedStack(list):
    """The out-of-memory results of a stack whose compiled program plans more memory than the
    device holds (``prepare_stack``), and how many slots of its frame would fit (``fit``, 0 when
    not even one would), taking a program's memory to grow in proportion to its slots (vmap; XLA's
    recomputing to fit makes the largest stacks' grow less, experiments/results/gpu_plan_cpu_2026-12-08)."""

    def __init__(self, results: list[MemberResult], fit: int):
        super().__init__(results)
        self.fit = fit


def prepare_stack(specs: Sequence[ArchSpec], split: Split, config: TrainConfig, seeds: Sequence[int],
                  slots: int | None = None) -> StackedTrainer | list[MemberResult]:
    """Build and compile a stack (the part that can run ahead on another thread). A stack that runs
    out of memory comes back as an out-of-memory failed result per member; one whose compiled
    program plans more than ``MEMORY_SHARE`` of the device's memory (checked before it trains,
    where the device says how much it has) as such results in an ``OversizedStack``, which says
    how many slots would fit: ``nas.evaluators.StackedEvaluator`` then tries them in stacks that
    size."""
    try:
        trainer = StackedTrainer(specs, split, config, seeds, slots)
        trainer.compile()
    except Exception as e:  # noqa: BLE001 - a failing member is a result, the search goes on
        if is_oom(e):
            return [oom_result(spec_id(s), e, stacked=len(specs)) for s in specs]
        raise
    need, limit = program_memory(trainer), device_memory_limit()
    if need is None or limit is None or need <= MEMORY_SHARE * limit:
        return trainer
    fit = int(MEMORY_SHARE * limit // (need / trainer.slots))
    e = MemoryError(f"RESOURCE_EXHAUSTED: a stack of {trainer.slots} slots at {trainer.resolution} px plans "
                    f"{need / 2**30:.1f} GiB, over {MEMORY_SHARE:.0%} of the device's {limit / 2**30:.1f} GiB "
                    f"({fit} would fit)")
    return OversizedStack([oom_result(spec_id(s), e, stacked=len(specs)) for s in specs], fit)


def train_stacked(specs: Sequence[ArchSpec], split: Split, config: TrainConfig, seeds: Sequence[int],
                  slots: int | None = None, progress: ProgressFn | None = None) -> list[MemberResult]:
    """Train members of one frame together and score each on the validation split (``prepare_stack``
    then ``run_stacked``): one ``MemberResult`` per member, in order."""
    prepared = prepare_stack(specs, split, config, seeds, slots)
    return prepared if isinstance(prepared, list) else run_stacked(prepared, progress)


def run_stacked(trainer: StackedTrainer, progress: ProgressFn | None = None) -> list[MemberResult]:
    """Train a compiled stack for ``config.epochs`` and score each member: one ``MemberResult`` per
    member, in order. A member whose loss goes non-finite is a failed result from that epoch on
    while the others train on; an out-of-memory stack fails every member. Each result's
    ``setup_s``, ``compile_s``, ``train_s`` and ``eval_s`` are its share (1 / members) of the
    stack's; ``stacked`` says how many members trained together. ``progress`` reports the members'
    mean loss after each epoch."""
    split, config = trainer.split, trainer.config
    ids = [spec_id(s) for s in trainer.specs]
    k = trainer.members
    shared = {"lowering": trainer.lowering, "setup_s": trainer.setup_s / k, "compile_s": trainer.compile_s / k,
              "trace_s": trainer.trace_s / k, "programs_reused": trainer.programs_reused,
              "programs_loaded": trainer.programs_loaded, "stacked": k}
    curves: list[list[float]] = [[] for _ in range(k)]
    failed: dict[int, MemberResult] = {}
    times: list[float] = []
    try:
        start = time.perf_counter()
        for epoch in range(config.epochs):
            losses = trainer.run_epoch(epoch)[:k]
            times.append((time.perf_counter() - start - sum(t * k for t in times)) / k)
            for m in range(k):
                if m in failed:
                    continue
                curves[m].append(float(losses[m].mean()))
                if not np.all(np.isfinite(losses[m])):
                    failed[m] = MemberResult(ids[m], "failed", f"diverged: non-finite loss in epoch {epoch + 1}",
                                             loss_curve=tuple(curves[m]), epoch_s=tuple(times), **shared,
                                             train_s=sum(times), epochs=epoch + 1)
            if progress is not None:
                alive = [curves[m][-1] for m in range(k) if m not in failed]
                progress(epoch + 1, config.epochs, float(np.mean(alive)) if alive else float("nan"))
            if len(failed) == k:
                break
        train_s = (time.perf_counter() - start) / k
        start = time.perf_counter()
        views = trainer.view_logits(split.x_val) if len(failed) < k else None
        eval_s = (time.perf_counter() - start) / k
    except Exception as e:  # noqa: BLE001
        if is_oom(e):
            return [failed.get(m) or oom_result(ids[m], e, loss_curve=tuple(curves[m]), **shared) for m in range(k)]
        raise
    results = []
    for m in range(k):
        if m in failed:
            results.append(failed[m])
            continue
        logits = views[m].mean(0)
        common = dict(loss_curve=tuple(curves[m]), epoch_s=tuple(times), **shared, train_s=train_s,
                      epochs=config.epochs)
        if not np.all(np.isfinite(logits)):
            results.append(MemberResult(ids[m], "failed", "diverged: non-finite validation logits", **common))
            continue
        acc = float((logits.argmax(-1) == split.y_val).mean())
        view_accs = tuple(float((v.argmax(-1) == split.y_val).mean()) for v in views[m]) if views.shape[1] > 1 else ()
        results.append(MemberResult(ids[m], "ok", val_accuracy=acc, val_logits=logits, view_accuracies=view_accs,
                                    eval_s=eval_s, steps=config.epochs * trainer.steps_per_epoch, **common))
    return results
