"""Training configuration (a frozen value: it is part of every member-cache key) and the optimizer."""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any, ClassVar, NamedTuple

import jax.numpy as jnp
import numpy as np
import optax

from search_space.errors import UserError

OPTIMIZERS = ("sgd", "rmsprop")
SCHEDULES = ("cosine", "onecycle", "step")
DTYPES = ("auto", "float32", "bfloat16")
# search_space.models.INIT_SCHEMES, named here too so that configs load without importing flax
# (tests/trainer/test_config.py keeps the two equal)
INIT_SCHEMES = ("he_fan_out", "tf_reference", "pytorch_default")
COMPILE_UNITS = ("program", "layer", "padded", "stacked")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Defaults are the 10-epoch proxy of the paper's NAS experiment.

    SGD with Nesterov momentum 0.9, cosine decay after one warm-up epoch, label smoothing 0.1 and
    decoupled-from-BN weight decay 5e-4 (kernels only) follow the fast CIFAR recipes (airbench,
    the WRN recipe's optimizer); lr 0.2 at batch 256 was chosen for 10-epoch runs.
    """

    epochs: int = 10
    batch_size: int = 256
    optimizer: str = "sgd"
    learning_rate: float = 0.2
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    step_epochs: tuple[int, ...] = ()  # for schedule="step": multiply by step_factor at these epochs
    step_factor: float = 0.2
    label_smoothing: float = 0.1
    dtype: str = "auto"  # auto: bfloat16 on GPU/TPU, float32 on CPU
    augment: bool = True  # random crop (pad crop_pad px at 32 px, scaled) and horizontal flip, on the device
    flip: bool = True
    # The random crop's zero padding in pixels at a 32 px native size, scaled with the data set's
    # native size (trainer.augment.crop_padding): 4, the CIFAR recipe's translation by up to 4 px;
    # airbench translates by 2 in its 10-epoch runs; 0 leaves the flip alone.
    crop_pad: int = 4
    # Score each validation (or test) image and its mirror image and average the two logits: the
    # softmax of that mean is the renormalized geometric mean of the two views' softmaxes, the
    # ensembles' own rule. Test-time flips as airbench's 94% recipe; it doubles scoring, not training.
    tta_flip: bool = False
    eval_batch_size: int = 1000
    # Before evaluation, batch-norm statistics are recomputed with the weights scored (the last, or
    # their average: ema_decay) over this many training images (no augmentation), in batches of
    # eval_batch_size; 0 keeps the moving averages.
    # Why: trainer/precise_bn.py (a short run's moving averages can be far off; measured 10.9% vs 61.1%).
    precise_bn_images: int = 2000
    # How the member's weights are drawn (search_space.models.INIT_SCHEMES): he_fan_out, the
    # modules' own initializers (torchvision's convention); tf_reference, the MnasNet/EfficientNet
    # reference code's, whose depthwise kernels start 24x wider at 576 channels (6-10 points worse
    # in a short CPU run); or pytorch_default, PyTorch's layer defaults, about 10x wider (no clear
    # difference from he_fan_out yet: search_space/models.py has the runs).
    init: str = "he_fan_out"
    # Start each residual layer as its shortcut: the last batch-norm scale of its branch (a WRN
    # block's last kernel) at zero (search_space.models.residual_zero_paths; Goyal et al. 2017). A
    # lever for short runs, which start training the network as a shallower one.
    zero_init_residual: bool = False
    # How a member's training compiles (trainer/layerwise.py): "program", its whole epoch as one XLA
    # program; "layer", one small program per layer, reused by every later member with that layer;
    # "padded", per-layer programs at the search space's widest layer of each position, shared by
    # every member with that position's operation at that resolution (trainer/padded.py);
    # "stacked", one program per input resolution that any member of the MnasNet space trains in,
    # several members at once (trainer/stacked.py).
    compile_unit: str = "program"
    # Score the member with an exponential moving average of its weights (Polyak averaging) rather
    # than its last weights: after each step avg <- d * avg + (1 - d) * weights, with d =
    # min(ema_decay, n / (n + 9)) after n earlier steps (TensorFlow's ExponentialMovingAverage with
    # num_updates, as the MnasNet and EfficientNet reference trainers use it at 0.9999), so that the
    # first step copies the weights and a short run's average is not pinned to its start. 0: off.
    # Batch-norm statistics are recomputed for the averaged weights (precise_bn_images > 0, checked).
    ema_decay: float = 0.0

    # Fields added after runs were stored, each with the value that reproduces those runs: a stored
    # config without the field gets that value (nas.config.from_dict, so a resumed run keeps
    # behaving as it did), and key() leaves the field out while it has that value (so members
    # cached before the field existed are still found).
    ADDED_LATER: ClassVar[dict[str, Any]] = {"precise_bn_images": 0, "init": "he_fan_out",
                                             "compile_unit": "program", "crop_pad": 4, "tta_flip": False,
                                             "zero_init_residual": False, "ema_decay": 0.0}

    def __post_init__(self) -> None:
        object.__setattr__(self, "step_epochs", tuple(int(e) for e in self.step_epochs))
        checks = [
            (isinstance(self.epochs, int) and self.epochs >= 1, "epochs", "a positive int"),
            (isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size", "a positive int"),
            (self.optimizer in OPTIMIZERS, "optimizer", f"one of {OPTIMIZERS}"),
            (self.learning_rate > 0, "learning_rate", "> 0"),
            (0 <= self.momentum < 1, "momentum", "in [0, 1)"),
            (self.weight_decay >= 0, "weight_decay", ">= 0"),
            (self.schedule in SCHEDULES, "schedule", f"one of {SCHEDULES}"),
            (0 <= self.warmup_epochs <= self.epochs, "warmup_epochs", "in [0, epochs]"),
            (0 <= self.label_smoothing < 1, "label_smoothing", "in [0, 1)"),
            (self.dtype in DTYPES, "dtype", f"one of {DTYPES}"),
            (isinstance(self.eval_batch_size, int) and self.eval_batch_size >= 1, "eval_batch_size", "a positive int"),
            (isinstance(self.precise_bn_images, int) and self.precise_bn_images >= 0, "precise_bn_images", "an int >= 0"),
            (self.init in INIT_SCHEMES, "init", f"one of {INIT_SCHEMES}"),
            (self.compile_unit in COMPILE_UNITS, "compile_unit", f"one of {COMPILE_UNITS}"),
            (isinstance(self.crop_pad, int) and 0 <= self.crop_pad <= 16, "crop_pad", "an int in [0, 16]"),
            (isinstance(self.tta_flip, bool), "tta_flip", "true or false"),
            (isinstance(self.zero_init_residual, bool), "zero_init_residual", "true or false"),
            (isinstance(self.ema_decay, (int, float)) and 0 <= self.ema_decay < 1, "ema_decay", "in [0, 1)"),
            # boundaries past the last epoch do nothing (with_epochs drops them); before epoch 1 none exists
            (all(e >= 1 for e in self.step_epochs), "step_epochs", "epochs >= 1"),
            (self.step_factor > 0, "step_factor", "> 0"),
        ]
        for ok, field, what in checks:
            if not ok:
                raise UserError(f"trainer.{field}: must be {what}, got {getattr(self, field)!r}")
        if self.ema_decay > 0 and self.precise_bn_images == 0:
            raise UserError("trainer.ema_decay: needs trainer.precise_bn_images > 0 (the moving batch-norm "
                            "statistics belong to the last weights, not to their average)")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def key(self) -> str:
        """The member-cache text of this config (fields in ADDED_LATER at their old value left out)."""
        d = {k: v for k, v in self.to_dict().items() if k not in self.ADDED_LATER or v != self.ADDED_LATER[k]}
        return json.dumps(d, sort_keys=True, separators=(",", ":"))

    def replace(self, **changes: Any) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def learning_rate_for_batch(config: TrainConfig, batch_size: int) -> float:
    """``config``'s peak learning rate scaled linearly from its batch to ``batch_size``: the same
    rate per image (the CIFAR recipes here: 0.2 at 256, 0.1 at 128, 0.05 at 64)."""
    return config.learning_rate * batch_size / config.batch_size


def batch_and_steps(train_examples: int, batch_size: int) -> tuple[int, int]:
    """(the batch a member trains with, its optimizer steps an epoch) on ``train_examples`` images:
    the batch at most the training set, the last partial batch of an epoch dropped."""
    batch = min(batch_size, train_examples)
    return batch, max(1, train_examples // batch)


def compute_dtype(config: TrainConfig) -> Any:
    from search_space.models import program_backend

    if config.dtype == "auto":
        return jnp.bfloat16 if program_backend() in ("gpu", "tpu") else jnp.float32
    return jnp.bfloat16 if config.dtype == "bfloat16" else jnp.float32


def learning_rate_schedule(config: TrainConfig, steps_per_epoch: int) -> optax.Schedule:
    total = config.epochs * steps_per_epoch
    warmup = int(config.warmup_epochs * steps_per_epoch)
    lr = config.learning_rate
    if config.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(0.0, lr, max(warmup, 0), max(total, warmup + 1), end_value=0.0)
    if config.schedule == "onecycle":
        return optax.cosine_onecycle_schedule(max(total, 1), lr, pct_start=max(warmup, 1) / max(total, 1))
    boundaries = {e * steps_per_epoch: config.step_factor for e in config.step_epochs}
    step = optax.piecewise_constant_schedule(lr, boundaries)
    if warmup == 0:
        return step
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), lambda s: step(s + warmup)], [warmup])


# The fields that make the learning-rate schedule. The compiled training programs take each step's
# learning rate as an argument (``epoch_learning_rates``, ``optimizer_with``) rather than computing
# it from these as constants, so configs that differ only here share their programs
# (``program_config``): a retraining for more epochs, another learning rate or warm-up, and the
# test suite's many short schedules compile once per member, data size and batch size (a searched
# member's compile: 20-60 s on a 2-core CPU, 45-55 s on a GPU, trainer/layerwise.py;
# tests/trainer/test_train.py and test_layerwise.py check the sharing).
# Each field with the value ``program_config`` gives it.
SCHEDULE_FIELDS: dict[str, Any] = {"epochs": 1, "learning_rate": 1.0, "schedule": "cosine", "warmup_epochs": 0.0,
                                   "step_epochs": (), "step_factor": 1.0}


def program_config(config: TrainConfig) -> TrainConfig:
    """``config`` as the compiled training programs depend on it: the ``SCHEDULE_FIELDS`` at fixed
    values (for the keys of the processes' program caches)."""
    return config.replace(**SCHEDULE_FIELDS)


def epoch_learning_rates(config: TrainConfig, steps_per_epoch: int, epoch: int) -> np.ndarray:
    """float32 (steps_per_epoch,): the learning rate of each step of epoch ``epoch`` (0-based), the
    schedule at step counts ``epoch * steps_per_epoch + i``, as the optimizer's own step count
    would give it in an uninterrupted run (and in one resumed from a checkpoint after an epoch)."""
    counts = np.arange(epoch * steps_per_epoch, (epoch + 1) * steps_per_epoch, dtype=np.int32)
    return np.asarray(_compiled_schedule(config, steps_per_epoch)(counts), np.float32)


@functools.lru_cache(maxsize=64)
def _compiled_schedule(config: TrainConfig, steps_per_epoch: int) -> Any:
    """The schedule over an array of step counts, compiled: its rates equal, bit for bit, those the
    training programs computed from their step count before the rates became their arguments (on
    the CPU: cosine, one-cycle and step schedules of 62-1,750 steps, 2026-12-06; the README demo's
    records came out the same to the digit). Evaluated op by op instead, 1 in 9 of a cosine's rates
    differed by an ulp, and the demo's first two members scored 52.6% and 40.0% instead of 54.7%
    and 29.2%: a one-epoch member is that sensitive."""
    import jax

    return jax.jit(jax.vmap(learning_rate_schedule(config, steps_per_epoch)))


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    """Weight decay on kernels only (not BN scales/offsets or biases), added to the gradient; with
    ``config.ema_decay``, the weights' moving average last (``weight_average``); the learning rate
    from ``learning_rate_schedule``."""
    return optimizer_with(config, learning_rate_schedule(config, steps_per_epoch))


def optimizer_with(config: TrainConfig, sched: optax.Schedule) -> optax.GradientTransformation:
    """``make_optimizer``'s optimizer with the learning rate ``sched(step count)``. Inside a compiled
    training step it is ``lambda _: lr``, ``lr`` the step's rate passed in (``epoch_learning_rates``):
    the state keeps the same structure (the schedule's step count included), the program no
    schedule constants."""
    decay = optax.add_decayed_weights(config.weight_decay, mask=lambda p: _kernel_mask(p))
    if config.optimizer == "sgd":
        opt = optax.sgd(sched, momentum=config.momentum, nesterov=config.nesterov)
    else:  # MnasNet's RMSProp: decay 0.9, momentum 0.9, eps 1e-3
        opt = optax.rmsprop(sched, decay=0.9, eps=1e-3, momentum=config.momentum)
    if config.ema_decay > 0:
        return optax.chain(decay, opt, weight_average(config.ema_decay))
    return optax.chain(decay, opt)


class WeightAverageState(NamedTuple):
    count: Any  # int32 scalar: updates so far
    average: Any  # the parameters' moving average, their tree and dtypes


def weight_average(decay: float) -> optax.GradientTransformation:
    """The parameters' exponential moving average, kept in the optimizer state (the last
    transformation of a chain: it sees the final updates and leaves them as they are). After n
    earlier updates the new weights count 1 - d, d = min(decay, n / (n + 9)): the first update
    copies them, so the average starts from zeros (``init_optimizer_state``) without a bias.
    ``averaged_params`` reads it back; an optimizer, and so each stage of a layer-wise member,
    keeps its own average leaf by leaf."""
    import jax

    def init(params: Any) -> WeightAverageState:
        return WeightAverageState(jnp.zeros([], jnp.int32), jax.tree_util.tree_map(jnp.zeros_like, params))

    def update(updates: Any, state: WeightAverageState, params: Any = None) -> tuple[Any, WeightAverageState]:
        if params is None:
            raise ValueError("weight_average needs the parameters: tx.update(grads, state, params)")
        n = state.count.astype(jnp.float32)
        d = jnp.minimum(decay, n / (n + 9.0))
        new = optax.apply_updates(params, updates)
        average = jax.tree_util.tree_map(lambda a, p: (d * a + (1.0 - d) * p).astype(a.dtype), state.average, new)
        return updates, WeightAverageState(state.count + 1, average)

    return optax.GradientTransformation(init, update)


def averaged_params(opt_state: Any) -> Any:
    """The weights' moving average in a ``make_optimizer`` state with ``ema_decay``; None without."""
    last = opt_state[-1] if isinstance(opt_state, tuple) and opt_state else None
    return last.average if isinstance(last, WeightAverageState) else None


def init_optimizer_state(tx: optax.GradientTransformation, params: Any) -> Any:
    """``tx.init(params)`` for an optimizer of ``make_optimizer``, as host zeros of its abstract shapes.

    Every state those optimizers keep (momentum traces, RMSProp's second moments, schedule step
    counts) starts at zero (tests/trainer/test_config.py checks it for each optimizer and schedule).
    Eager ``tx.init`` dispatches one small XLA program per parameter: 1.5-2.7 s per sampled
    CIFAR-10 member on this project's 2-core CPU machines, against 0.05-0.3 s this way.
    """
    import jax

    shapes = jax.eval_shape(tx.init, params)
    return jax.device_put(jax.tree_util.tree_map(lambda a: np.zeros(a.shape, a.dtype), shapes))


def _kernel_mask(params: Any) -> Any:
    import jax

    return jax.tree_util.tree_map(lambda x: x.ndim > 1, params)
