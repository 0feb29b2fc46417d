"""Proxy training of one member: data on the device, one compiled program per epoch, no host sync inside.

``train_member(spec, split, config, seed)`` is a pure function of its arguments (what the member cache
and remote evaluators rely on). It returns a :class:`MemberResult`: validation logits and accuracy,
the loss curve, and wall time split into compile, training and evaluation. A diverged (NaN/inf) or
out-of-memory member comes back as ``status="failed"`` with its reason, never as an exception.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from typing import Any, Callable, Iterator, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from search_space.layers import count
from search_space.models import conv_mode, depthwise_mode, init_model, program_backend, set_conv_lowering
from search_space.spec import ArchSpec
from trainer.augment import crop_padding, random_crop_flip, scoring_views, to_model_input
from trainer.config import (TrainConfig, averaged_params, batch_and_steps, compute_dtype, epoch_learning_rates,
                            init_optimizer_state, make_optimizer, optimizer_with, program_config)
from trainer.data import Split
from trainer.precise_bn import batch_statistics, pooled_statistics, set_statistics

ProgressFn = Callable[[int, int, float], None]  # (epoch, epochs, mean loss)


@dataclasses.dataclass(frozen=True)
class MemberResult:
    spec_id: str
    status: str  # "ok" or "failed"
    reason: str = ""
    val_accuracy: float = float("nan")
    val_logits: np.ndarray | None = None  # float32 (N_val, classes)
    # With config.tta_flip: the accuracy of each view alone (as is, mirrored); val_accuracy and
    # val_logits are their mean logits'. Empty with one view.
    view_accuracies: tuple[float, ...] = ()
    loss_curve: tuple[float, ...] = ()  # mean training loss per epoch
    # Seconds per epoch (they sum to train_s). On a GPU the first can be far longer: 18.4 s against
    # 1.6 s for a MobileNetV2 on the H100 (2026-11-26), one-time costs at the program's first run.
    epoch_s: tuple[float, ...] = ()
    setup_s: float = 0.0  # building the model, its parameters and optimizer state (host)
    compile_s: float = 0.0  # tracing and lowering (host Python) plus XLA's compile of both programs
    trace_s: float = 0.0  # the tracing and lowering part of compile_s
    train_s: float = 0.0
    eval_s: float = 0.0
    epochs: int = 0
    steps: int = 0
    lowering: str = ""  # how convolutions ran, e.g. "conv=matmul,depthwise=shift" (speed, not the network)
    # compile_unit "layer" or "padded" only: the member's stages, and how many of them compiled new programs
    # (the others reused programs an earlier member of this process compiled)
    stages: int = 0
    stages_compiled: int = 0
    # of those, the stages whose programs came from the persistent compilation cache (another
    # process compiled them: a precompile, nas/precompile.py, or another worker) rather than XLA's compiler
    stages_loaded: int = 0
    # compile_unit "program": the member took an earlier member's compiled programs (PROGRAMS)
    programs_reused: bool = False
    # the member's (or its stack's) programs were loaded from the program store NAS_PROGRAM_STORE names
    # (trainer/program_store.py: compiled ahead, elsewhere), not compiled
    programs_loaded: bool = False
    # compile_unit "stacked" (trainer/stacked.py): how many members trained together in one program
    # (the times above are this member's share of the stack's)
    stacked: int = 0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def summary(self) -> dict[str, Any]:
        """Everything but the logits, JSON-ready."""
        d = dataclasses.asdict(self)
        d.pop("val_logits")
        d["loss_curve"] = list(self.loss_curve)
        d["epoch_s"] = list(self.epoch_s)
        d["view_accuracies"] = list(self.view_accuracies)
        return d


class TrainState(NamedTuple):
    """What changes during training, as pytrees: parameters, the rest of the model state, optimizer."""

    params: Any
    rest: Any
    opt_state: Any


_DEVICE_DATA: dict[tuple[int, str], tuple[Split, tuple[jax.Array, ...]]] = {}
_DEVICE_DATA_LOCK = threading.Lock()


def device_data(split: Split) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """The training split on the default device (uint8 images, int32 labels) and its per-channel
    mean and std, uploaded once per split and shared by every member trained on it (CIFAR-10's
    45k training images are 138 MB; members compiled ahead or trained side by side share one copy)."""
    key = (id(split), jax.default_backend())
    with _DEVICE_DATA_LOCK:
        hit = _DEVICE_DATA.get(key)
        if hit is not None and hit[0] is split:
            return hit[1]  # type: ignore[return-value]
        mean, std = normalization(split.x_train)
        data = (jnp.asarray(split.x_train), jnp.asarray(split.y_train, jnp.int32),
                jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32))
        if len(_DEVICE_DATA) >= 2:  # keep the latest splits only (a search uses one)
            _DEVICE_DATA.pop(next(iter(_DEVICE_DATA)))
        _DEVICE_DATA[key] = (split, data)  # holding the split keeps id(split) from being reused
        return data


def normalization(x_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The per-channel mean and std (float32, of pixels scaled to [0, 1]) that members normalize
    their inputs with: the training split's (an exported ensemble keeps them: nas/export.py)."""
    x = x_train.astype(np.float32) / 255.0
    return x.mean(axis=(0, 1, 2)), x.std(axis=(0, 1, 2)) + 1e-6


def is_oom(e: BaseException) -> bool:
    """Whether ``e`` is the device running out of memory (XLA's RESOURCE_EXHAUSTED, or its words)."""
    text = str(e)
    return "RESOURCE_EXHAUSTED" in text or "Out of memory" in text or "out of memory" in text


OOM_REASON = "out of memory: "  # how an out-of-memory failed result's reason starts (oom_result)


def oom_result(sid: str, e: BaseException, **fields: Any) -> MemberResult:
    """Member ``sid``'s failed result for out-of-memory error ``e`` (its first line, in the reason)."""
    return MemberResult(sid, "failed", OOM_REASON + str(e).splitlines()[0][:200], **fields)


def member_model(trainer: Any, spec: ArchSpec, split: Split, config: TrainConfig, seed: int) -> nnx.Module:
    """What every trainer of a member keeps (this module's and trainer/layerwise.py's): spec, split,
    config, seed, compute dtype, batch size, steps per epoch, convolution lowering (``lowering``
    names it); returns the member's freshly initialized model with that lowering."""
    trainer.spec, trainer.split, trainer.config, trainer.seed = spec, split, config, seed
    trainer.dtype = compute_dtype(config)
    n = len(split.y_train)
    trainer.batch_size, trainer.steps_per_epoch = batch_and_steps(n, config.batch_size)
    model = init_model(spec, split.num_classes, seed=seed, dtype=trainer.dtype, scheme=config.init,
                       zero_residual=config.zero_init_residual)
    # Per-layer programs (trainer/layerwise.py) serve a run's later members only in the lowering
    # they were compiled in, so there the run decides it (its images); a member's own program, the
    # member's work (its multiply-adds too).
    own = count(spec, split.num_classes).multiply_adds if config.compile_unit == "program" else None
    trainer.conv_lowering = conv_mode(train_images=config.epochs * n, multiply_adds=own)
    set_conv_lowering(model, trainer.conv_lowering)
    trainer.lowering = f"conv={trainer.conv_lowering},depthwise={depthwise_mode()}"
    return model


class ProgramCache:
    """The compiled epoch and scoring programs of the last few members of this process, by
    everything their trace depends on, so a member with the same architecture, data shapes and
    training config (another seed: weights, data order and the batch-norm sample are arguments)
    skips tracing and compiling.

    Copies of one architecture are common: ``nas study`` trains each architecture once per seed,
    ``nas seeds`` copies a searched member, the proxy-fidelity check retrains under other seeds, and
    a search trains an architecture again at another ensemble position. Tracing alone takes seconds
    however warm XLA's own cache is. On the 2-core CPU machines (2026-12-03, two sampled
    quarter-width Fashion-MNIST members, 500 images, one epoch, XLA's cache warm) tracing took 4.4
    and 8.4 s and fetching the programs from XLA's cache 1.2 and 4.0 s more; the next seeds of each
    took them from here and trained in 6.2 and 7.4 s in all, against 12.9 and 21.8 s.
    A few entries: a search rarely repeats an architecture soon, and each holds two executables.
    """

    KEEP = 4

    def __init__(self) -> None:
        self._programs: dict[tuple, tuple[Any, Any]] = {}  # insertion order = least recently used first
        self._lock = threading.Lock()
        self._compiling: dict[tuple, tuple[threading.Lock, int]] = {}  # key -> (its lock, threads using it)

    @contextlib.contextmanager
    def compiling(self, key: tuple) -> Iterator[None]:
        """Held while ``key``'s programs compile: a second thread after the same programs (stacks of
        one frame prepared side by side, seeds of one architecture compiled ahead) waits for the
        first and then finds them here, instead of compiling them again beside it."""
        with self._lock:
            lock, users = self._compiling.get(key, (threading.Lock(), 0))
            self._compiling[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._lock:
                lock, users = self._compiling[key]
                if users == 1:
                    del self._compiling[key]
                else:
                    self._compiling[key] = (lock, users - 1)

    def get(self, key: tuple) -> tuple[Any, Any] | None:
        with self._lock:
            programs = self._programs.pop(key, None)
            if programs is not None:
                self._programs[key] = programs
            return programs

    def put(self, key: tuple, programs: tuple[Any, Any]) -> None:
        with self._lock:
            self._programs.pop(key, None)
            self._programs[key] = programs
            while len(self._programs) > self.KEEP:
                del self._programs[next(iter(self._programs))]

    def clear(self) -> None:
        with self._lock:
            self._programs.clear()


PROGRAMS = ProgramCache()


class MemberPrograms:
    """The pure functions of one member's optimizer step and scoring, as traced into programs:
    ``MemberTrainer`` runs them for its member, and trainer/stacked.py's ``StackedTrainer`` vmaps
    them over a stack of members, so both train by one definition. They read ``config``,
    ``split``, ``graphdef_train``, ``graphdef_eval``, ``pad`` (the crop's) and ``resolution`` (the
    member's input size) from the trainer, and ``state`` for ``scoring_params``."""

    def _loss(self, model: nnx.Module, x: jax.Array, y: jax.Array) -> jax.Array:
        labels = optax.smooth_labels(jax.nn.one_hot(y, self.split.num_classes), self.config.label_smoothing)
        return optax.softmax_cross_entropy(model(x), labels).mean()

    def _step(self, params: Any, rest: Any, opt_state: Any, idx: jax.Array, key: jax.Array, lr: jax.Array,
              data: tuple[jax.Array, ...]) -> tuple[Any, Any, Any, jax.Array]:
        """One optimizer step on the training images ``idx`` (augmented with ``key``) at rate ``lr``:
        the new (params, rest, opt_state) and the batch's loss."""
        x_train, y_train, mean, std = data
        x = x_train[idx]
        if self.config.augment:
            x = random_crop_flip(key, x, self.pad, self.config.flip)
        x = to_model_input(x, mean, std, self.resolution)
        # nnx.value_and_grad (not jax's) so batch-norm statistics update across the trace levels.
        model = nnx.merge(self.graphdef_train, params, rest)
        loss, grads = nnx.value_and_grad(self._loss)(model, x, y_train[idx])
        rest = nnx.state(model, nnx.Not(nnx.Param))
        tx = optimizer_with(self.config, lambda _: lr)  # make_optimizer's, at this step's rate
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), rest, opt_state, loss

    def _views(self, params: Any, rest: Any, x: jax.Array, data: tuple[jax.Array, ...],
               precise_bn_idx: jax.Array | None) -> jax.Array:
        """Logits of a padded (batches, eval_bs, H, W, C) uint8 array, one batch at a time, per view:
        (batches, views, eval_bs, classes), the images as they are, then mirrored with
        ``config.tta_flip``. First, unless ``precise_bn_idx`` is None, batch-norm statistics
        recomputed over those training images (trainer/precise_bn.py)."""
        _, _, mean, std = data
        model, flip = self._scoring_model(params, rest, data, precise_bn_idx), self.config.tta_flip
        return jax.lax.map(lambda b: scoring_views(model, to_model_input(b, mean, std, self.resolution), flip), x)

    def _scoring_model(self, params: Any, rest: Any, data: tuple[jax.Array, ...],
                       precise_bn_idx: jax.Array | None) -> nnx.Module:
        """The member in evaluation mode with the batch-norm statistics it is scored with (traced)."""
        x_train, _, mean, std = data
        model = nnx.merge(self.graphdef_eval, params, rest)
        if precise_bn_idx is not None:
            def stats(idx: jax.Array) -> list[tuple[jax.Array, jax.Array]]:
                fresh = nnx.merge(self.graphdef_train, params, rest, copy=True)  # Variables of this trace level
                return batch_statistics(fresh, to_model_input(x_train[idx], mean, std, self.resolution))

            set_statistics(model, pooled_statistics(jax.lax.map(stats, precise_bn_idx)))
        return model

    def _eval_batches(self, x: np.ndarray) -> jax.Array:
        return eval_batches(x, self.config.eval_batch_size)

    def scoring_params(self) -> Any:
        """The weights the member is scored with: their moving average with ``config.ema_decay``
        (trainer.config.weight_average), else the last ones."""
        average = averaged_params(self.state.opt_state)
        return self.state.params if average is None else average


class MemberTrainer(MemberPrograms):
    """Compiles the epoch and evaluation programs of one architecture and runs them.

    The training split lives on the device as uint8; each epoch draws a permutation, gathers
    batches, crops, flips, resizes and normalizes on the device inside one ``lax.scan``. The
    evaluation program first recomputes batch-norm statistics for the weights it scores
    (``config.precise_bn_images``; trainer/precise_bn.py).
    """

    stages = stages_compiled = stages_loaded = 0  # one program for the whole member (per-layer: trainer/layerwise.py)
    programs_reused = False  # compile() took an earlier member's programs (PROGRAMS)
    programs_loaded = False  # compile() loaded them from the program store (trainer/program_store.py)

    def __init__(self, spec: ArchSpec, split: Split, config: TrainConfig, seed: int):
        start = time.perf_counter()
        model = member_model(self, spec, split, config, seed)
        n = len(split.y_train)
        self.resolution = spec.resolution
        model.train()
        self.graphdef_train, params, rest = nnx.split(model, nnx.Param, ...)
        model.eval()
        self.graphdef_eval = nnx.split(model, nnx.Param, ...)[0]
        self.tx = make_optimizer(config, self.steps_per_epoch)
        self.state = TrainState(params, rest, init_optimizer_state(self.tx, params))
        # Arrays go in as arguments, never as closed-over constants: a constant would be embedded in
        # the program (138 MB for CIFAR-10's training split) and in its compilation-cache key.
        self.data = device_data(split)
        self.pad = crop_padding(split.native_resolution, config.crop_pad)
        self.precise_bn_idx = precise_bn_indices(n, config, seed)
        self._epoch = jax.jit(self._epoch_fn, donate_argnums=(0,))
        self._eval = jax.jit(self._eval_fn)
        self.compile_s = self.trace_s = 0.0
        self.setup_s = time.perf_counter() - start

    # -- the programs -------------------------------------------------------------------------

    def _epoch_fn(self, state: TrainState, key: jax.Array, data: tuple[jax.Array, ...],
                  lrs: jax.Array) -> tuple[TrainState, jax.Array]:
        """One epoch: ``lrs`` float32 (steps,), each step's learning rate (``epoch_learning_rates``)."""
        bs, steps = self.batch_size, self.steps_per_epoch
        pkey, akey = jax.random.split(key)
        order = jax.random.permutation(pkey, data[0].shape[0])[: steps * bs].reshape(steps, bs)

        def step(carry: TrainState, inp: tuple[jax.Array, jax.Array, jax.Array]) -> tuple[TrainState, jax.Array]:
            idx, k, lr = inp
            params, rest, opt_state, loss = self._step(carry.params, carry.rest, carry.opt_state, idx, k, lr, data)
            return TrainState(params, rest, opt_state), loss

        return jax.lax.scan(step, state, (order, jax.random.split(akey, steps), lrs))

    def _eval_fn(self, params: Any, rest: Any, x: jax.Array, data: tuple[jax.Array, ...],
                 precise_bn_idx: jax.Array | None) -> jax.Array:
        """``_views``: (batches, views, eval_bs, classes)."""
        return self._views(params, rest, x, data, precise_bn_idx)

    def scoring_model(self) -> nnx.Module:
        """The member as ``logits`` scores it, for use outside this trainer (nas/export.py): the
        weights it scores (``scoring_params``), the batch-norm statistics recomputed as for
        scoring, evaluation mode."""
        def scoring_rest(params: Any, rest: Any, data: tuple[jax.Array, ...], idx: jax.Array | None) -> Any:
            return nnx.state(self._scoring_model(params, rest, data, idx), nnx.Not(nnx.Param))

        params = self.scoring_params()
        rest = jax.jit(scoring_rest)(params, self.state.rest, self.data, self.precise_bn_idx)
        return nnx.merge(self.graphdef_eval, params, rest)

    # -- driving them -------------------------------------------------------------------------

    def program_key(self) -> tuple:
        """What the two programs' traces depend on (``PROGRAMS``): not the seed, whose weights,
        data order and batch-norm sample reach them as arguments, nor the learning-rate schedule,
        whose rates do too (trainer.config.program_config). The backend is the one the programs are
        built for (``program_backend``), whose lowering and dtype they take."""
        from search_space.spec import spec_id

        x, y = self.split.x_train, self.split.x_val
        bn = None if self.precise_bn_idx is None else tuple(self.precise_bn_idx.shape)
        return (spec_id(self.spec), program_config(self.config).key(), self.split.num_classes, x.shape, str(x.dtype),
                y.shape, self.lowering, bn, program_backend())

    def compile(self) -> float:
        """Compile both programs ahead of time, or take them from a recent member with the same
        ``program_key``; returns seconds spent (``trace_s`` of them tracing and lowering in
        Python, the rest in XLA; both about 0 for taken programs, ``programs_reused`` then True)."""
        return compile_programs(self, jax.random.key(0), PROGRAMS)

    def run_epoch(self, epoch: int) -> np.ndarray:
        key = jax.random.fold_in(jax.random.key(self.seed), epoch)
        lrs = epoch_learning_rates(self.config, self.steps_per_epoch, epoch)
        self.state, losses = self._epoch(self.state, key, self.data, lrs)
        return np.asarray(losses)  # the one host sync of the epoch

    def view_logits(self, x: np.ndarray) -> np.ndarray:
        """float32 (views, N, classes): ``x`` scored as it is, and mirrored with ``config.tta_flip``."""
        return views_by_image(self._eval(self.scoring_params(), self.state.rest, self._eval_batches(x), self.data,
                                         self.precise_bn_idx), len(x))

    def logits(self, x: np.ndarray) -> np.ndarray:
        """float32 (N, classes): the views' mean logits (``view_logits``)."""
        return self.view_logits(x).mean(0)


def views_by_image(out: jax.Array, n: int) -> np.ndarray:
    """A scoring program's logits, (..., batches, views, eval_bs, classes), as float32 (..., views,
    n, classes): the batches joined and their padding past ``n`` images dropped."""
    out = np.swapaxes(np.asarray(out, np.float32), -4, -3)
    return out.reshape(*out.shape[:-3], -1, out.shape[-1])[..., :n, :]


def eval_batches(x: np.ndarray, batch_size: int) -> jax.Array:
    """``x`` zero-padded to whole batches of at most ``batch_size``: (batches, batch, ...) on the device."""
    bs = min(batch_size, len(x))
    nb = -(-len(x) // bs)
    pad = nb * bs - len(x)
    xp = np.concatenate([x, np.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
    return jnp.asarray(xp.reshape(nb, bs, *x.shape[1:]))


def program_arguments(trainer: Any, epoch_key: Any) -> dict[str, tuple]:
    """What a trainer's two programs take (name -> arguments, in order): the epoch program its state,
    ``epoch_key`` (an epoch's key argument, or its shape), its data and the epoch's learning rates;
    the scoring program the weights, the rest of the state, the validation images in batches, the
    data and the precise-batch-norm sample."""
    lrs = jax.ShapeDtypeStruct((trainer.steps_per_epoch,), jnp.float32)
    xb = trainer._eval_batches(trainer.split.x_val)
    return {"epoch": (trainer.state, epoch_key, trainer.data, lrs),
            "eval": (trainer.state.params, trainer.state.rest, xb, trainer.data, trainer.precise_bn_idx)}


def program_trees(trainer: Any, arguments: dict[str, tuple]) -> dict[str, tuple[Any, Any]]:
    """The argument and result structures of a trainer's programs (name -> (in_tree, out_tree)), as
    JAX's compiled programs hold them: the epoch returns the state and the losses, scoring one array."""
    results = {"epoch": (trainer.state, 0), "eval": 0}
    return {name: (jax.tree.structure((args, {})), jax.tree.structure(results[name]))
            for name, args in arguments.items()}


def compile_programs(trainer: Any, epoch_key: Any, cache: ProgramCache,
                     compiler_options: dict[str, Any] | None = None) -> float:
    """Compile a trainer's epoch and scoring programs ahead of time (``epoch_key``: what its epoch
    program takes as its key argument, or its shape; ``compiler_options``: XLA options for both),
    or take them from ``cache`` under the trainer's ``program_key()``, or load them from the program
    store ``NAS_PROGRAM_STORE`` names (trainer/program_store.py: programs compiled ahead, elsewhere);
    sets its ``trace_s``, ``compile_s``, ``programs_reused`` and ``programs_loaded`` and returns
    ``compile_s``. ``MemberTrainer``'s and trainer/stacked.py's ``StackedTrainer``'s."""
    from trainer.program_store import load_programs, store_dir

    start = time.perf_counter()
    key = trainer.program_key()
    with cache.compiling(key):  # a thread after programs another is compiling waits, then finds them
        programs = cache.get(key)
        if programs is None:
            arguments = program_arguments(trainer, epoch_key)
            root = store_dir()
            programs = None if root is None else load_programs(root, key, program_trees(trainer, arguments),
                                                                 arguments)
            trainer.programs_loaded = programs is not None
            if programs is None:
                lowered = [getattr(trainer, f"_{name}").lower(*args) for name, args in arguments.items()]
                trainer.trace_s = time.perf_counter() - start
                programs = tuple(p.compile(compiler_options) for p in lowered)
            cache.put(key, programs)
        else:
            trainer.programs_reused = True
    trainer._epoch, trainer._eval = programs
    trainer.compile_s = time.perf_counter() - start
    return trainer.compile_s


def precise_bn_indices(n_train: int, config: TrainConfig, seed: int) -> jax.Array | None:
    """Which training images recompute the batch-norm statistics before evaluation: a seeded
    sample of ``config.precise_bn_images`` (at most all ``n_train``), as (batches, eval batch size)
    int32 indices in random order (each batch a random draw, as in training); None when the config
    keeps the moving averages."""
    k = min(config.precise_bn_images, n_train)
    if k == 0:
        return None
    bs = min(config.eval_batch_size, k)
    chosen = np.random.default_rng(seed).choice(n_train, (k // bs) * bs, replace=False)
    return jnp.asarray(chosen.reshape(-1, bs), jnp.int32)


def make_trainer(spec: ArchSpec, split: Split, config: TrainConfig, seed: int) -> Any:
    """The trainer ``config.compile_unit`` names, built, not yet compiled: a ``MemberTrainer``
    (one program per member), a ``trainer.layerwise.LayerwiseTrainer`` (programs per layer) or a
    ``trainer.stacked.StackedMember`` (the member in its resolution's frame, a stack of one)."""
    if config.compile_unit == "stacked":
        from trainer.stacked import StackedMember

        return StackedMember(spec, split, config, seed)
    if config.compile_unit in ("layer", "padded"):
        from trainer.layerwise import LayerwiseTrainer

        return LayerwiseTrainer(spec, split, config, seed)
    return MemberTrainer(spec, split, config, seed)


def prepare_member(spec: ArchSpec, split: Split, config: TrainConfig = TrainConfig(), seed: int = 0,
                   ) -> Any:
    """Build (``make_trainer``) and compile one member (the part that can run ahead on another
    thread); an out-of-memory member comes back as a failed result."""
    from search_space.spec import spec_id

    try:
        trainer = make_trainer(spec, split, config, seed)
        trainer.compile()
        return trainer
    except Exception as e:  # noqa: BLE001 - a failing member is a result, the search goes on
        if is_oom(e):
            return oom_result(spec_id(spec), e)
        raise


def run_member(trainer: Any, progress: ProgressFn | None = None, done: tuple[int, list[float]] = (0, []),
               after_epoch: Callable[[int, list[float]], bool] | None = None) -> MemberResult | None:
    """Train a compiled member for ``config.epochs`` and score it on the validation split.

    ``done``: the epochs already trained (a restored checkpoint's) and their mean losses; training
    goes on from there. ``after_epoch(epochs_done, loss_curve)``, called after each finite epoch,
    returns True to stop there: then the result is None (trainer/resumable.py checkpoints through it).
    """
    from search_space.spec import spec_id

    spec, split, config = trainer.spec, trainer.split, trainer.config
    sid = spec_id(spec)
    # what every result of this trainer carries, failed or not
    known = {"lowering": trainer.lowering, "setup_s": trainer.setup_s, "compile_s": trainer.compile_s,
             "trace_s": trainer.trace_s, "stages": trainer.stages, "stages_compiled": trainer.stages_compiled,
             "stages_loaded": trainer.stages_loaded,
             "programs_reused": trainer.programs_reused,
             "programs_loaded": getattr(trainer, "programs_loaded", False), "stacked": getattr(trainer, "stacked", 0)}
    start_epoch, curve = done[0], list(done[1])
    times: list[float] = []  # of the epochs trained here
    try:
        start = time.perf_counter()
        for epoch in range(start_epoch, config.epochs):
            losses = trainer.run_epoch(epoch)  # returns after the epoch's one host sync
            times.append(time.perf_counter() - start - sum(times))
            mean = float(losses.mean())
            curve.append(mean)
            if progress is not None:
                progress(epoch + 1, config.epochs, mean)
            if not np.all(np.isfinite(losses)):
                return MemberResult(sid, "failed", f"diverged: non-finite loss in epoch {epoch + 1}",
                                    loss_curve=tuple(curve), epoch_s=tuple(times), **known,
                                    train_s=time.perf_counter() - start, epochs=epoch + 1)
            if after_epoch is not None and after_epoch(epoch + 1, curve):
                return None
        train_s = time.perf_counter() - start
        start = time.perf_counter()
        views = trainer.view_logits(split.x_val)
        logits = views.mean(0)
        eval_s = time.perf_counter() - start
    except Exception as e:  # noqa: BLE001 - a failing member is a result, the search goes on
        if is_oom(e):
            return oom_result(sid, e, loss_curve=tuple(curve), epoch_s=tuple(times), **known)
        raise
    if not np.all(np.isfinite(logits)):
        return MemberResult(sid, "failed", "diverged: non-finite validation logits", loss_curve=tuple(curve),
                            epoch_s=tuple(times), **known, train_s=train_s, epochs=config.epochs)
    acc = float((logits.argmax(-1) == split.y_val).mean())
    view_accs = tuple(float((v.argmax(-1) == split.y_val).mean()) for v in views) if len(views) > 1 else ()
    return MemberResult(sid, "ok", val_accuracy=acc, val_logits=logits, view_accuracies=view_accs,
                        loss_curve=tuple(curve),
                        epoch_s=tuple(times), **known,
                        train_s=train_s, eval_s=eval_s, epochs=config.epochs,
                        steps=config.epochs * trainer.steps_per_epoch)


def train_member(spec: ArchSpec, split: Split, config: TrainConfig = TrainConfig(), seed: int = 0,
                 progress: ProgressFn | None = None) -> MemberResult:
    """Train one member for ``config.epochs`` and score it on the validation split."""
    prepared = prepare_member(spec, split, config, seed)
    if isinstance(prepared, MemberResult):
        return prepared
    return run_member(prepared, progress)
