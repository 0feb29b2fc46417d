"""Layer-wise compilation: a member's training step as one small program per layer, shared across members.

The default trainer (trainer/train.py) compiles a member's whole epoch as one program, which for a
searched member costs 20-60 s on a CPU and 45-55 s on a GPU, while its proxy training can take a
few seconds. Members of a search share most of their layers: a layer here is one stage of the
network (the stem, one mbconv / sepconv / conv layer, the head, the classifier), and after the
first few dozen members most of a new member's layers have the exact shape and configuration of a
layer some earlier member had (experiments/results/shape_reuse: 85% of a random search's
convolution shapes from the 61st member on, 97% under evolution). So here each stage gets its own
programs, compiled once per (stage configuration, input shape, optimizer) in this process and
reused by every later member that has that stage:

    forward:  (params, rest, x) -> (y, vjp, rest')      rest: batch-norm statistics, RNG state
    backward: (vjp, dy, params, opt_state, lr) -> (params', opt_state', dx), the optimizer step fused in

(each state a flat list of arrays, its tree rebuilt inside the program: ``_StageDefs``)

plus the stage's evaluation forward. Precise batch norm (trainer/precise_bn.py) runs the training
forward on batches of the training batch size, so a stage has three programs. A training step
dispatches the input program (gather, crop, flip, resize), every stage's forward, the loss, and
every stage's backward, asynchronously: there is still no host sync inside an epoch. Per-stage optimizer state is exact:
every optimizer of trainer/config.py acts leaf by leaf, and each stage's step count advances with
the others.

The same computation as the whole-program trainer, from the same initial weights, data order and
augmentation draws; only XLA's fusion across layer boundaries and the order of floating-point sums
differ (tests/trainer/test_layerwise.py compares the two).

``trainer.compile_unit="padded"`` runs the same programs over the stages of trainer/padded.py:
each mobile layer widened to its position's envelope in the search space, so that a stage's
programs depend on its block, operation and input size only and a search's members share them
whatever their widths, kernels, squeeze-excite and shortcuts.

Measured on a 2-core CPU (experiments/results/cpu_search_layer_2026-12-02): the CPU search of 30
ensembles per size in 28.2 min instead of 59.0; evolution's children reuse up to 93% of their
layers. Without reuse it costs more than it saves (six random members at two epochs: 0.85x).
"""

from __future__ import annotations

import collections
import functools
import gc
import threading
import time
from typing import Any, Callable, Hashable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from search_space.errors import UserError
from search_space.models import MobileNet, WideResNet, depthwise_mode
from search_space.spec import ArchSpec
from trainer.augment import crop_padding, random_crop_flip, scoring_views, to_model_input
from trainer.config import (TrainConfig, averaged_params, epoch_learning_rates, init_optimizer_state, make_optimizer,
                            optimizer_with, program_config)
from trainer.data import Split
from trainer.precise_bn import pooled_statistics
from trainer.train import device_data, member_model, precise_bn_indices

# Compiled stage programs kept per process, least recently used dropped first, at most this many
# (a CPU search of 120 members meets about 1,000 distinct convolution shapes,
# experiments/results/shape_reuse; a stage has two cache entries) and within MAP_BUDGET.
CACHE_ENTRIES = 4096
# On Linux every compiled CPU program maps its code into memory in many small regions (measured
# here: 60-70 regions a stage program, about 140 a cache entry), and a process may hold at most
# vm.max_map_count of them (65,530 by default): past it LLVM fails with "Cannot allocate memory"
# and the process dies (it did, 22 members into a 30-member benchmark). So the cache drops its
# oldest entries while the process maps more than this fraction of that limit. At half of it, a
# first try of the CPU search (experiments/results/cpu_search_layer_2026-12-02) slowed in its
# second round of random members, which compiled for 55-73 s once the process reached the budget;
# three quarters leaves about 16,000 regions for everything else (a new stage adds about 200).
MAP_BUDGET = 0.75


def _mapped_regions() -> int | None:
    """Memory regions this process maps (Linux), None where that cannot be read."""
    try:
        with open("/proc/self/maps", "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return None


def _max_map_count() -> int | None:
    try:
        with open("/proc/sys/vm/max_map_count") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


class _ProgramCache:
    """key -> compiled programs, built once even when two threads ask at the same time."""

    def __init__(self, capacity: int, max_regions: int | None):
        self.capacity, self.max_regions = capacity, max_regions
        self.evicted = 0
        self._entries: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()
        self._building: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], Any]) -> tuple[Any, bool]:
        """(the programs, whether they were built by this call)."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key], False
            lock = self._building.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                if key in self._entries:
                    return self._entries[key], False
            value = build()
            with self._lock:
                self._entries[key] = value
                self._building.pop(key, None)
                self._shrink()
            return value, True

    def _shrink(self) -> None:
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
            self.evicted += 1
        if self.max_regions is None:
            return
        regions = _mapped_regions()
        while regions is not None and regions > self.max_regions and len(self._entries) > 1:
            for _ in range(max(1, len(self._entries) // 4)):  # a quarter at a time: fewer collections
                self._entries.popitem(last=False)
                self.evicted += 1
            gc.collect()  # a dropped program unmaps its code when its last reference goes
            regions = _mapped_regions()

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


_limit = _max_map_count()
PROGRAMS = _ProgramCache(CACHE_ENTRIES, None if _limit is None else int(MAP_BUDGET * _limit))

# Programs this thread found in XLA's persistent compilation cache (jax records an event per hit, in
# the thread that compiles): a stage new to this process whose programs all came from there was
# loaded, not compiled (nas/precompile.py fills the cache for a search's workers).
_thread = threading.local()


def _count_cache_hit(event: str, **_: Any) -> None:
    if event == "/jax/compilation_cache/cache_hits":
        _thread.hits = getattr(_thread, "hits", 0) + 1


if hasattr(jax, "monitoring") and hasattr(jax.monitoring, "register_event_listener"):  # else stages_loaded stays 0
    jax.monitoring.register_event_listener(_count_cache_hit)


def _cache_hits() -> int:
    return getattr(_thread, "hits", 0)


class _Tail(nnx.Module):
    """WRN's last stage: batch norm, ReLU, classifier (the parts WideResNet.__call__ ends with)."""

    def __init__(self, bn: nnx.Module, classifier: nnx.Module):
        self.bn, self.classifier = bn, classifier

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.classifier(jax.nn.relu(self.bn(x)))


def model_stages(model: nnx.Module) -> list[nnx.Module]:
    """The model as a chain of stages whose composition is ``model(x)`` for x already in the
    model's compute dtype."""
    if isinstance(model, MobileNet):
        head = [model.head] if model.head is not None else []
        return [model.stem, *model.layers, *head, model.classifier]
    if isinstance(model, WideResNet):
        return [model.stem, *model.blocks, _Tail(model.bn, model.classifier)]
    raise UserError(f"trainer.compile_unit='layer': no stages defined for {type(model).__name__}")


def _shapes(leaves: list) -> Hashable:
    return tuple((tuple(a.shape), str(a.dtype)) for a in leaves)


def _abstract(tree: Any) -> Any:
    return jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), tree)


class _StageDefs(NamedTuple):
    """A stage's state structures. Its programs take and return flat lists of arrays, rebuilt into
    these trees inside the traced functions: flattening flax's state trees on every call costs
    host time in Python (measured on the 2-core CPU, batch 2 so that compute is negligible: 8.5 ms
    a step for a 15-stage member with the trees, 5.5 ms with flat lists, 1.7 ms for the
    whole-program trainer; the README demo 328-349 s against 304 s and the CPU search 37.6 against
    28.2 min, the same records)."""
    params: Any
    rest: Any
    opt_state: Any


def _train_programs(graphdef: Any, defs: _StageDefs, params: list, rest: list, x: jax.ShapeDtypeStruct,
                    needs_dx: bool, config: TrainConfig, opt_state: list) -> tuple[Any, Any, float]:
    """Compile one stage's forward and backward-plus-optimizer programs over flat leaf lists (see
    ``_StageDefs``), the optimizer ``config``'s at the learning rate the backward is given;
    returns (forward, backward, seconds spent tracing and lowering)."""
    residuals: list[Any] = []  # the forward's vjp treedef, known once the forward is traced

    def forward(p: list, r: list, x: jax.Array) -> tuple[jax.Array, list, list]:
        p_tree, r_tree = defs.params.unflatten(p), defs.rest.unflatten(r)

        def apply(p: Any, x: jax.Array) -> tuple[jax.Array, Any]:
            m = nnx.merge(graphdef, p, r_tree, copy=True)  # Variables of this trace level
            y = m(x)
            return y, nnx.state(m, nnx.Not(nnx.Param))

        if needs_dx:
            y, vjp, r2 = jax.vjp(apply, p_tree, x, has_aux=True)
        else:
            y, vjp, r2 = jax.vjp(lambda p: apply(p, x), p_tree, has_aux=True)
        vjp_leaves, vjp_def = jax.tree_util.tree_flatten(vjp)
        residuals[:] = [vjp_def]
        return y, vjp_leaves, jax.tree_util.tree_leaves(r2)

    def backward(vjp: list, dy: jax.Array, p: list, o: list, lr: jax.Array) -> tuple[list, list, jax.Array | None]:
        grads = residuals[0].unflatten(vjp)(dy)
        dx = grads[1] if needs_dx else None
        p_tree = defs.params.unflatten(p)
        tx = optimizer_with(config, lambda _: lr)  # the trainer's optimizer, at this step's rate
        updates, o_tree = tx.update(grads[0], defs.opt_state.unflatten(o), p_tree)
        new_p = optax.apply_updates(p_tree, updates)
        return jax.tree_util.tree_leaves(new_p), jax.tree_util.tree_leaves(o_tree), dx

    start = time.perf_counter()
    fwd_lowered = jax.jit(forward).lower(params, rest, x)
    y, vjp, _ = fwd_lowered.out_info
    bwd_lowered = jax.jit(backward, donate_argnums=(2, 3)).lower(
        vjp, jax.ShapeDtypeStruct(y.shape, y.dtype), params, opt_state, jax.ShapeDtypeStruct((), jnp.float32))
    trace_s = time.perf_counter() - start
    return fwd_lowered.compile(), bwd_lowered.compile(), trace_s


def _eval_program(graphdef_eval: Any, defs: _StageDefs, params: list, rest: list,
                  x: jax.ShapeDtypeStruct) -> tuple[Any, float]:
    """One stage's evaluation forward (running statistics from ``rest``) and its tracing seconds."""

    def evaluate(p: list, r: list, x: jax.Array) -> jax.Array:
        return nnx.merge(graphdef_eval, defs.params.unflatten(p), defs.rest.unflatten(r), copy=True)(x)

    start = time.perf_counter()
    lowered = jax.jit(evaluate).lower(params, rest, x)
    trace_s = time.perf_counter() - start
    return lowered.compile(), trace_s


# Programs shared by every member: input pipeline, loss, epoch plan (jax.jit caches them by shape).

@jax.jit
def _loss_and_grad(logits: jax.Array, y: jax.Array, smoothing: jax.Array) -> tuple[jax.Array, jax.Array]:
    def loss(z: jax.Array) -> jax.Array:
        labels = optax.smooth_labels(jax.nn.one_hot(y, z.shape[-1]), smoothing)
        return optax.softmax_cross_entropy(z, labels).mean()

    return jax.value_and_grad(loss)(logits)


@functools.partial(jax.jit, static_argnames=("pad", "augment", "flip", "resolution", "dtype"))
def _train_input(order: jax.Array, keys: jax.Array, step: jax.Array, data: tuple[jax.Array, ...], *, pad: int,
                 augment: bool, flip: bool, resolution: int, dtype: Any) -> tuple[jax.Array, jax.Array]:
    """Step ``step``'s batch of an epoch plan, augmented and in the model's input form."""
    x_train, y_train, mean, std = data
    idx = order[step]
    x = x_train[idx]
    if augment:
        x = random_crop_flip(keys[step], x, pad, flip)
    return to_model_input(x, mean, std, resolution).astype(dtype), y_train[idx]


@functools.partial(jax.jit, static_argnames=("resolution", "dtype"))
def _eval_input(x_uint8: jax.Array, mean: jax.Array, std: jax.Array, *, resolution: int, dtype: Any) -> jax.Array:
    return to_model_input(x_uint8, mean, std, resolution).astype(dtype)


@functools.partial(jax.jit, static_argnames=("n", "steps", "batch"))
def _epoch_plan(key: jax.Array, *, n: int, steps: int, batch: int) -> tuple[jax.Array, jax.Array]:
    """The whole-program trainer's draws: batch order and one augmentation key per step."""
    pkey, akey = jax.random.split(key)
    order = jax.random.permutation(pkey, n)[: steps * batch].reshape(steps, batch)
    return order, jax.random.split(akey, steps)


class LayerwiseTrainer:
    """``MemberTrainer``'s interface (compile, run_epoch, logits) over per-stage programs."""

    programs_reused = False  # its reuse is per stage: ``stages_compiled`` of ``stages``

    def __init__(self, spec: ArchSpec, split: Split, config: TrainConfig, seed: int):
        start = time.perf_counter()
        model = member_model(self, spec, split, config, seed)
        n = len(split.y_train)
        if config.compile_unit == "padded" and isinstance(model, MobileNet):
            from trainer.padded import padded_stages

            stages = padded_stages(model, spec, split.num_classes, self.conv_lowering)
            self.lowering += ",unit=padded"
        else:  # "layer"; a padded WRN would gain nothing: its few layer shapes repeat already
            stages = model_stages(model)
            self.lowering += ",unit=layer"
        for s in stages:
            s.train()
        split_train = [nnx.split(s, nnx.Param, ...) for s in stages]
        for s in stages:
            s.eval()
        self.graphdefs_eval = [nnx.split(s, nnx.Param, ...)[0] for s in stages]
        self.graphdefs_train = [g for g, _, _ in split_train]
        self.tx = make_optimizer(config, self.steps_per_epoch)
        flat = jax.tree_util.tree_flatten
        self.defs = []
        # per stage, its state as flat lists of arrays (what its programs take; ``defs`` rebuild the trees)
        self.params, self.rest, self.opt_state = [], [], []
        for _, p, r in split_train:
            (p_leaves, p_def), (r_leaves, r_def) = flat(p), flat(r)
            o_leaves, o_def = flat(init_optimizer_state(self.tx, p))
            self.defs.append(_StageDefs(p_def, r_def, o_def))
            self.params.append(p_leaves)
            self.rest.append(r_leaves)
            self.opt_state.append(o_leaves)
        self.data = device_data(split)
        self.pad = crop_padding(split.native_resolution, config.crop_pad)
        self.precise_bn_idx = _precise_bn_batches(n, config, seed, self.batch_size)
        # per stage, each batch norm's (mean leaf, var leaf) in ``rest`` and its momentum (precise BN)
        self.bn_leaves = [_batch_norm_leaves(s, r) for s, (_, _, r) in zip(stages, split_train)]
        self.eval_batch = min(config.eval_batch_size, len(split.x_val))
        self.compile_s = self.trace_s = 0.0
        self.stages_compiled = self.stages_loaded = 0
        self._train: list[tuple[Any, Any]] = []
        self._eval: list[Any] = []
        self.setup_s = time.perf_counter() - start

    @property
    def stages(self) -> int:
        return len(self.params)

    def _input_aval(self, batch: int) -> jax.ShapeDtypeStruct:
        r = self.spec.resolution
        return jax.ShapeDtypeStruct((batch, r, r, 3), jnp.dtype(self.dtype))

    def compile(self) -> float:
        """Find or compile every stage's programs; returns seconds spent (``trace_s`` of them
        tracing and lowering). ``stages_compiled`` counts the stages whose training programs were
        new to this process, ``stages_loaded`` those of them whose two training programs came from
        the persistent compilation cache rather than XLA's compiler."""
        start = time.perf_counter()
        # what a stage's training programs depend on beyond the stage and its input: the optimizer
        # (but not its learning-rate schedule: the rates are arguments) and how depthwise
        # convolutions lower
        optimizer = program_config(self.config)
        shared = (optimizer, depthwise_mode())
        x_train, x_eval = self._input_aval(self.batch_size), self._input_aval(self.eval_batch)
        self._train, self._eval, built, loaded, trace_s = [], [], 0, 0, 0.0
        for i in range(self.stages):
            gd, p, r, o = self.graphdefs_train[i], self.params[i], self.rest[i], self.opt_state[i]
            defs = self.defs[i]
            # the stage's configuration and its state's structure and shapes
            signature = (defs.params, _shapes(p), defs.rest, _shapes(r))
            key = ("train", gd, *signature, x_train, i > 0, shared)
            hits = _cache_hits()
            progs, new = PROGRAMS.get(key, lambda: _train_programs(gd, defs, _abstract(p), _abstract(r), x_train,
                                                                   i > 0, optimizer, _abstract(o)))
            fwd, bwd, t = progs
            built += new
            loaded += new and _cache_hits() - hits == 2  # its forward and backward programs
            trace_s += t if new else 0.0
            self._train.append((fwd, bwd))
            gde = self.graphdefs_eval[i]
            ekey = ("eval", gde, *signature, x_eval, depthwise_mode())
            (evaluate, t), enew = PROGRAMS.get(ekey, lambda: _eval_program(gde, defs, _abstract(p), _abstract(r),
                                                                           x_eval))
            trace_s += t if enew else 0.0
            self._eval.append(evaluate)
            x_train = _abstract(fwd.out_info[0])
            x_eval = _abstract(evaluate.out_info)
        self.stages_compiled, self.stages_loaded = built, loaded
        self.trace_s = trace_s
        self.compile_s = time.perf_counter() - start
        return self.compile_s

    def run_epoch(self, epoch: int) -> np.ndarray:
        if not self._train:
            self.compile()
        key = jax.random.fold_in(jax.random.key(self.seed), epoch)
        order, keys = _epoch_plan(key, n=len(self.split.y_train), steps=self.steps_per_epoch, batch=self.batch_size)
        smoothing = jnp.float32(self.config.label_smoothing)
        lrs = jax.device_put(list(epoch_learning_rates(self.config, self.steps_per_epoch, epoch)))
        losses = []
        for step in range(self.steps_per_epoch):
            x, y = _train_input(order, keys, np.int32(step), self.data, pad=self.pad, augment=self.config.augment,
                                flip=self.config.flip, resolution=self.spec.resolution, dtype=self.dtype)
            vjps = []
            for i, (fwd, _) in enumerate(self._train):
                x, vjp, self.rest[i] = fwd(self.params[i], self.rest[i], x)
                vjps.append(vjp)
            loss, dy = _loss_and_grad(x, y, smoothing)
            losses.append(loss)
            for i in reversed(range(self.stages)):
                self.params[i], self.opt_state[i], dy = self._train[i][1](vjps[i], dy, self.params[i],
                                                                          self.opt_state[i], lrs[step])
        return np.asarray(jax.device_get(losses), np.float32)  # the one host sync of the epoch

    def _precise_rest(self, params: list[list[jax.Array]]) -> list[list[jax.Array]]:
        """Per stage, the non-parameter state (leaves) with batch-norm statistics recomputed for
        ``params`` (the weights scored) over the precise-BN training images (trainer/precise_bn.py),
        or as trained without precise BN.

        The training forward computes them, on batches of the training batch size, so that no
        program beyond the two training ones and the evaluation one is compiled per stage: from
        statistics zeroed, a batch norm of momentum m stores (1 - m) x its batch's mean and
        variance, and those batch statistics pool exactly as ``pooled_statistics`` pools them
        (equal batches: mean of the means; mean variance plus the variance of the means).
        """
        if self.precise_bn_idx is None:
            return self.rest
        x_train, _, mean, std = self.data
        zeroed = []
        for leaves, bns in zip(self.rest, self.bn_leaves):
            z = list(leaves)
            for m, v, _ in bns:
                z[m], z[v] = jnp.zeros_like(leaves[m]), jnp.zeros_like(leaves[v])
            zeroed.append(z)
        per_batch = []
        for idx in self.precise_bn_idx:
            x = _eval_input(x_train[idx], mean, std, resolution=self.spec.resolution, dtype=self.dtype)
            stored = []
            for i, (fwd, _) in enumerate(self._train):
                x, _, r = fwd(params[i], zeroed[i], x)
                stored.append(r)
            per_batch.append(stored)
        per_batch = jax.device_get(per_batch)
        rests = []
        for i, (leaves, bns) in enumerate(zip(self.rest, self.bn_leaves)):
            stored = [(np.stack([b[i][m] for b in per_batch]) / (1.0 - momentum),
                       np.stack([b[i][v] for b in per_batch]) / (1.0 - momentum)) for m, v, momentum in bns]
            pooled = list(leaves)
            for (m, v, _), (bn_mean, bn_var) in zip(bns, pooled_statistics(stored)):
                pooled[m], pooled[v] = bn_mean.astype(leaves[m].dtype), bn_var.astype(leaves[v].dtype)
            rests.append(pooled)
        return rests

    def scoring_params(self) -> list[list[jax.Array]]:
        """Per stage, the weights (leaves) the member is scored with: each stage optimizer's moving
        average with ``config.ema_decay`` (trainer.config.weight_average), else the last ones."""
        if self.config.ema_decay == 0:
            return self.params
        return [jax.tree_util.tree_leaves(averaged_params(defs.opt_state.unflatten(o)))
                for defs, o in zip(self.defs, self.opt_state)]

    def view_logits(self, x: np.ndarray) -> np.ndarray:
        """float32 (views, N, classes): ``x`` scored as it is, and mirrored with ``config.tta_flip``
        (as the whole-program trainer's)."""
        if not self._eval:
            self.compile()
        params = self.scoring_params()
        rest = self._precise_rest(params)
        _, _, mean, std = self.data
        bs = self.eval_batch
        nb = -(-len(x) // bs)
        pad = nb * bs - len(x)
        xp = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
        def member(h: jax.Array) -> jax.Array:  # the stages' evaluation programs, one after another
            for i, evaluate in enumerate(self._eval):
                h = evaluate(params[i], rest[i], h)
            return h

        out = [scoring_views(member, _eval_input(jnp.asarray(xp[b * bs:(b + 1) * bs]), mean, std,
                                                 resolution=self.spec.resolution, dtype=self.dtype),
                             self.config.tta_flip) for b in range(nb)]
        return np.asarray(jax.device_get(jnp.concatenate(out, axis=1)), np.float32)[:, : len(x)]

    def logits(self, x: np.ndarray) -> np.ndarray:
        """float32 (N, classes): the views' mean logits (``view_logits``)."""
        return self.view_logits(x).mean(0)


def _precise_bn_batches(n_train: int, config: TrainConfig, seed: int, batch: int) -> np.ndarray | None:
    """The precise-BN images as (batches, ``batch``) indices: those of the whole-program trainer
    (``precise_bn_indices``) cut to a multiple of the training batch, or one batch drawn with the
    same seed when they are fewer than a batch; None without precise BN."""
    idx = precise_bn_indices(n_train, config, seed)
    if idx is None:
        return None
    flat = np.asarray(idx).reshape(-1)
    if len(flat) < batch:
        flat = np.random.default_rng(seed).choice(n_train, batch, replace=False)
    return flat[: len(flat) // batch * batch].reshape(-1, batch).astype(np.int32)


def _key(path: tuple[Any, ...]) -> tuple[str, ...]:
    """A state leaf's path as names, without the trailing ``.value`` of its Variable."""
    names = tuple(str(getattr(k, "key", getattr(k, "name", k))) for k in path)
    return names[:-1] if names and names[-1] == "value" else names


def _batch_norm_leaves(stage: nnx.Module, rest: Any) -> list[tuple[int, int, float]]:
    """Each batch norm of ``stage`` as (index of its mean, index of its var, momentum) among the
    leaves of ``rest``, the stage's non-parameter state in ``jax.tree_util`` order."""
    index = {_key(path): j for j, (path, _) in enumerate(jax.tree_util.tree_flatten_with_path(rest)[0])}
    return [(index[(*map(str, path), "mean")], index[(*map(str, path), "var")], bn.momentum)
            for path, bn in nnx.iter_modules(stage) if isinstance(bn, nnx.BatchNorm)]
