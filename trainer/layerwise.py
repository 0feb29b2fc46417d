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
    backward: (vjp, dy, params, opt_state) -> (params', opt_state', dx), the optimizer step fused in

plus the stage's precise-batch-norm and evaluation forwards. A training step dispatches the input
program (gather, crop, flip, resize), every stage's forward, the loss, and every stage's backward,
asynchronously: there is still no host sync inside an epoch. Per-stage optimizer state is exact:
every optimizer of trainer/config.py acts leaf by leaf, and each stage's step count advances with
the others.

The same computation as the whole-program trainer, from the same initial weights, data order and
augmentation draws; only XLA's fusion across layer boundaries and the order of floating-point sums
differ (tests/trainer/test_layerwise.py compares the two).
"""

from __future__ import annotations

import collections
import functools
import threading
import time
from typing import Any, Callable, Hashable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from search_space.errors import UserError
from search_space.models import MobileNet, WideResNet, conv_mode, depthwise_mode, init_model, set_conv_lowering
from search_space.spec import ArchSpec
from trainer.augment import crop_padding, random_crop_flip, to_model_input
from trainer.config import TrainConfig, compute_dtype, init_optimizer_state, make_optimizer
from trainer.data import Split
from trainer.precise_bn import forward_batch_statistics, pooled_statistics, set_statistics

# Compiled stage programs kept per process, least recently used dropped first. A CPU search of 120
# members meets about 1,000 distinct convolution shapes (experiments/results/shape_reuse), each
# stage two training and two evaluation programs.
CACHE_ENTRIES = 4096


class _ProgramCache:
    """key -> compiled programs, built once even when two threads ask at the same time."""

    def __init__(self, capacity: int):
        self.capacity = capacity
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
                while len(self._entries) > self.capacity:
                    self._entries.popitem(last=False)
            return value, True

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


PROGRAMS = _ProgramCache(CACHE_ENTRIES)


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


def _signature(tree: Any) -> Hashable:
    leaves, treedef = jax.tree_util.tree_flatten(tree)
    return treedef, tuple((tuple(a.shape), str(a.dtype)) for a in leaves)


def _abstract(tree: Any) -> Any:
    return jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), tree)


def _train_programs(graphdef: Any, params: Any, rest: Any, x: jax.ShapeDtypeStruct, needs_dx: bool,
                    tx: optax.GradientTransformation, opt_state: Any) -> tuple[Any, Any, float]:
    """Compile one stage's forward and backward-plus-optimizer programs; returns (forward,
    backward, seconds spent tracing and lowering)."""

    def forward(p: Any, r: Any, x: jax.Array) -> tuple[jax.Array, Any, Any]:
        def apply(p: Any, x: jax.Array) -> tuple[jax.Array, Any]:
            m = nnx.merge(graphdef, p, r, copy=True)  # Variables of this trace level
            y = m(x)
            return y, nnx.state(m, nnx.Not(nnx.Param))

        if needs_dx:
            y, vjp, r2 = jax.vjp(apply, p, x, has_aux=True)
        else:
            y, vjp, r2 = jax.vjp(lambda p: apply(p, x), p, has_aux=True)
        return y, vjp, r2

    def backward(vjp: Any, dy: jax.Array, p: Any, o: Any) -> tuple[Any, Any, jax.Array | None]:
        grads = vjp(dy)
        dx = grads[1] if needs_dx else None
        updates, o = tx.update(grads[0], o, p)
        return optax.apply_updates(p, updates), o, dx

    start = time.perf_counter()
    fwd_lowered = jax.jit(forward).lower(params, rest, x)
    y, vjp, _ = fwd_lowered.out_info
    bwd_lowered = jax.jit(backward, donate_argnums=(2, 3)).lower(
        vjp, jax.ShapeDtypeStruct(y.shape, y.dtype), params, opt_state)
    trace_s = time.perf_counter() - start
    return fwd_lowered.compile(), bwd_lowered.compile(), trace_s


def _eval_programs(graphdef_train: Any, graphdef_eval: Any, params: Any, rest: Any, x: jax.ShapeDtypeStruct,
                   x_stats: jax.ShapeDtypeStruct | None) -> tuple[Any, Any, float]:
    """One stage's precise-batch-norm forward on batches like ``x_stats`` (None without precise
    BN) and its evaluation forward on batches like ``x``."""

    def stats(p: Any, r: Any, x: jax.Array) -> tuple[jax.Array, Any]:
        return forward_batch_statistics(nnx.merge(graphdef_train, p, r, copy=True), x)

    def evaluate(p: Any, r: Any, s: Any, x: jax.Array) -> jax.Array:
        m = nnx.merge(graphdef_eval, p, r, copy=True)
        if s is not None:
            set_statistics(m, s)
        return m(x)

    start = time.perf_counter()
    stats_lowered = jax.jit(stats).lower(params, rest, x_stats) if x_stats is not None else None
    s = stats_lowered.out_info[1] if stats_lowered is not None else None
    eval_lowered = jax.jit(evaluate).lower(params, rest, s, x)
    trace_s = time.perf_counter() - start
    return (stats_lowered.compile() if stats_lowered is not None else None), eval_lowered.compile(), trace_s


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


@jax.jit
def _pool(per_batch: list[Any]) -> Any:
    """One stage's statistics of equally sized batches (a list over batches of per-layer (mean,
    var)) pooled over all of them."""
    layers = range(len(per_batch[0]))
    return pooled_statistics([(jnp.stack([b[j][0] for b in per_batch]), jnp.stack([b[j][1] for b in per_batch]))
                              for j in layers])


class LayerwiseTrainer:
    """``MemberTrainer``'s interface (compile, run_epoch, logits) over per-stage programs."""

    def __init__(self, spec: ArchSpec, split: Split, config: TrainConfig, seed: int):
        from trainer.train import device_data, precise_bn_indices

        start = time.perf_counter()
        self.spec, self.split, self.config, self.seed = spec, split, config, seed
        self.dtype = compute_dtype(config)
        n = len(split.y_train)
        self.batch_size = min(config.batch_size, n)
        self.steps_per_epoch = max(1, n // self.batch_size)
        model = init_model(spec, split.num_classes, seed=seed, dtype=self.dtype, scheme=config.init)
        self.conv_lowering = conv_mode(train_images=config.epochs * n)
        set_conv_lowering(model, self.conv_lowering)
        self.lowering = f"conv={self.conv_lowering},depthwise={depthwise_mode()},unit=layer"
        stages = model_stages(model)
        model.train()
        split_train = [nnx.split(s, nnx.Param, ...) for s in stages]
        model.eval()
        self.graphdefs_eval = [nnx.split(s, nnx.Param, ...)[0] for s in stages]
        self.graphdefs_train = [g for g, _, _ in split_train]
        self.params = [p for _, p, _ in split_train]
        self.rest = [r for _, _, r in split_train]
        self.tx = make_optimizer(config, self.steps_per_epoch)
        self.opt_state = [init_optimizer_state(self.tx, p) for p in self.params]
        self.data = device_data(split)
        self.pad = crop_padding(split.native_resolution)
        self.precise_bn_idx = precise_bn_indices(n, config, seed)
        self.eval_batch = min(config.eval_batch_size, len(split.x_val))
        self.compile_s = self.trace_s = 0.0
        self.stages_compiled = 0
        self._train: list[tuple[Any, Any]] = []
        self._eval: list[tuple[Any, Any]] = []
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
        new to this process."""
        start = time.perf_counter()
        optimizer = (self.config, self.steps_per_epoch, depthwise_mode())
        x_train, x_eval = self._input_aval(self.batch_size), self._input_aval(self.eval_batch)
        x_stats = None if self.precise_bn_idx is None else self._input_aval(self.precise_bn_idx.shape[1])
        self._train, self._eval, built, trace_s = [], [], 0, 0.0
        for i in range(self.stages):
            gd, p, r, o = self.graphdefs_train[i], self.params[i], self.rest[i], self.opt_state[i]
            key = ("train", gd, _signature(p), _signature(r), x_train, i > 0, optimizer)
            progs, new = PROGRAMS.get(key, lambda: _train_programs(gd, _abstract(p), _abstract(r), x_train,
                                                                   i > 0, self.tx, _abstract(o)))
            fwd, bwd, t = progs
            built += new
            trace_s += t if new else 0.0
            self._train.append((fwd, bwd))
            gde = self.graphdefs_eval[i]
            ekey = ("eval", gd, gde, _signature(p), _signature(r), x_eval, x_stats, depthwise_mode())
            eprogs, enew = PROGRAMS.get(ekey, lambda: _eval_programs(gd, gde, _abstract(p), _abstract(r), x_eval,
                                                                     x_stats))
            self._eval.append(eprogs[:2])
            trace_s += eprogs[2] if enew else 0.0
            y_train = fwd.out_info[0]
            x_train = jax.ShapeDtypeStruct(y_train.shape, y_train.dtype)
            x_eval = _abstract(eprogs[1].out_info)
            x_stats = None if x_stats is None else _abstract(eprogs[0].out_info[0])
        self.stages_compiled = built
        self.trace_s = trace_s
        self.compile_s = time.perf_counter() - start
        return self.compile_s

    def run_epoch(self, epoch: int) -> np.ndarray:
        if not self._train:
            self.compile()
        key = jax.random.fold_in(jax.random.key(self.seed), epoch)
        order, keys = _epoch_plan(key, n=len(self.split.y_train), steps=self.steps_per_epoch, batch=self.batch_size)
        smoothing = jnp.float32(self.config.label_smoothing)
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
                                                                          self.opt_state[i])
        return np.asarray(jax.device_get(losses), np.float32)  # the one host sync of the epoch

    def _statistics(self) -> list[Any] | None:
        """Per stage, batch-norm statistics recomputed over the precise-BN training images."""
        if self.precise_bn_idx is None:
            return None
        x_train, _, mean, std = self.data
        per_stage: list[list[Any]] = [[] for _ in range(self.stages)]
        for idx in self.precise_bn_idx:
            x = _eval_input(x_train[idx], mean, std, resolution=self.spec.resolution, dtype=self.dtype)
            for i, (stats, _) in enumerate(self._eval):
                x, s = stats(self.params[i], self.rest[i], x)
                per_stage[i].append(s)
        return [_pool(batches) if batches[0] else [] for batches in per_stage]

    def logits(self, x: np.ndarray) -> np.ndarray:
        if not self._eval:
            self.compile()
        stats = self._statistics()
        _, _, mean, std = self.data
        bs = self.eval_batch
        nb = -(-len(x) // bs)
        pad = nb * bs - len(x)
        xp = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
        out = []
        for b in range(nb):
            h = _eval_input(jnp.asarray(xp[b * bs:(b + 1) * bs]), mean, std, resolution=self.spec.resolution,
                            dtype=self.dtype)
            for i, (_, evaluate) in enumerate(self._eval):
                h = evaluate(self.params[i], self.rest[i], None if stats is None else stats[i], h)
            out.append(h)
        return np.asarray(jax.device_get(jnp.concatenate(out)), np.float32)[: len(x)]
