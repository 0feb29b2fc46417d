"""Search configuration: configs are code (``experiments/*.py`` define ``get_config()``), overridden
on the command line with ``--set a.b=c``; unknown keys and bad values are one clear error."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import typing
from pathlib import Path
from typing import Any

from controller.evolution import EvolutionConfig
from controller.reinforce import ReinforceConfig
from nas.words import counted
from search_space.errors import UserError, check_seed
from trainer.config import TrainConfig, batch_and_steps, learning_rate_for_batch
from trainer.data import Dataset, check_image_size


@dataclasses.dataclass(frozen=True)
class SpaceConfig:
    """The MnasNet space; ``width_multiplier`` < 1 shrinks every member (CPU demos), 1.0 is the paper's."""

    width_multiplier: float = 1.0
    head_filters: int = 1280


@dataclasses.dataclass(frozen=True)
class RewardConfig:
    """MnasNet reward ACC x (LAT / T)^w, w = alpha if LAT <= T else beta, LAT = max member latency (ms).

    Soft constraint alpha = beta = -0.07; hard constraint alpha = 0, beta = -1. T = 75 ms is the
    paper's ImageNet-scale target; small inputs (CIFAR 32 px, MNIST 28 px) run about 50x fewer
    multiply-adds at the same widths, so their configs set a proportionally smaller T.
    """

    target_ms: float = 75.0
    alpha: float = -0.07
    beta: float = -0.07
    device: str = "pixel1"


# reinforce: the paper's LSTM policy; random: the baseline; evolution: regularized evolution
# (nas.search.make_controller builds them)
CONTROLLERS = ("reinforce", "random", "evolution")


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    dataset: str = "fashion_mnist"
    data_dir: str | None = None  # TFDS data_dir (tfds:NAME)
    manual_dir: str | None = None  # TFDS manual_dir: downloaded archives to prepare a set from (ImageNet)
    image_size: int | None = None  # px: every image cropped to its central square and resized (ImageNet)
    val_size: int = 5000
    train_examples: int | None = None
    sizes: tuple[int, ...] = (1, 2, 3)
    samples_per_size: int = 30
    batch: int = 5  # samples per controller update
    controller: str = "reinforce"  # one of CONTROLLERS
    seed: int = 0
    space: SpaceConfig = SpaceConfig()
    reward: RewardConfig = RewardConfig()
    trainer: TrainConfig = TrainConfig()
    policy: ReinforceConfig = ReinforceConfig()  # controller="reinforce"
    evolution: EvolutionConfig = EvolutionConfig()  # controller="evolution"

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes", tuple(int(s) for s in self.sizes))
        if not self.sizes or any(not 1 <= s <= 8 for s in self.sizes):
            raise UserError(f"sizes: must be ensemble sizes in 1..8, got {self.sizes!r}")
        if len(set(self.sizes)) != len(self.sizes):
            raise UserError(f"sizes: each size once, got {self.sizes!r}")
        if self.samples_per_size < 1 or self.batch < 1:
            raise UserError("samples_per_size and batch: must be positive")
        if self.controller not in CONTROLLERS:
            raise UserError(f"controller: must be one of {', '.join(CONTROLLERS)}, got {self.controller!r}")
        if not 0 < self.space.width_multiplier <= 4:
            raise UserError(f"space.width_multiplier: must be in (0, 4], got {self.space.width_multiplier!r}")
        if self.reward.target_ms <= 0:
            raise UserError(f"reward.target_ms: must be > 0, got {self.reward.target_ms!r}")
        for name in ("alpha", "beta"):  # exponents of LAT / T: above 0 a slower ensemble would score higher
            if getattr(self.reward, name) > 0:
                raise UserError(f"reward.{name}: must be <= 0 (soft constraint -0.07, hard alpha 0 and beta -1), "
                                f"got {getattr(self.reward, name)!r}")
        check_image_size(self.image_size)
        check_seed(self.seed)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def from_dict(d: dict[str, Any], cls: type = SearchConfig, prefix: str = "") -> Any:
    """Rebuild a (nested) config from ``to_dict`` output, rejecting unknown keys. A field the
    class lists in ``ADDED_LATER`` and ``d`` lacks (a config stored before the field existed) gets
    the value listed there, the behaviour of the code that stored it."""
    if not isinstance(d, dict):
        raise UserError(f"{prefix or 'config'}: expected an object")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for k, v in {**getattr(cls, "ADDED_LATER", {}), **d}.items():
        if k not in fields:
            raise UserError(f"{prefix}{k}: unknown config key; known: {', '.join(sorted(fields))}")
        t = hints[k]
        if dataclasses.is_dataclass(t):
            kwargs[k] = from_dict(v, t, f"{prefix}{k}.")
        elif isinstance(v, list):
            kwargs[k] = tuple(v)
        else:
            kwargs[k] = v
    return cls(**kwargs)


def _coerce(text: str, current: Any, key: str) -> Any:
    if isinstance(current, bool):
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise UserError(f"--set {key}: expected true or false, got {text!r}")
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = text
    if current is None or isinstance(current, str):
        return None if value is None else (text if isinstance(current, str) or not isinstance(value, (int, float))
                                           else value)
    if isinstance(current, tuple):
        if not isinstance(value, list) and "," in text:
            try:  # sizes=1,2,3 as well as sizes=[1,2,3]
                value = json.loads(f"[{text}]")
            except json.JSONDecodeError:
                pass
        if not isinstance(value, list):
            value = [value]
        kind = type(current[0]) if current else None
        if kind in (int, float) and not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                            and (kind is float or isinstance(v, int)) for v in value):
            raise UserError(f"--set {key}: expected a list of {kind.__name__}s such as [1,2,3], got {text!r}")
        return tuple(value)
    if isinstance(current, float) and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):  # json reads 1e309 as inf ('inf' and 'nan' it does not read)
            raise UserError(f"--set {key}: expected a finite float, got {text!r}")
        return float(value)
    if isinstance(current, int) and isinstance(value, int) and not isinstance(value, bool):
        return value
    name = type(current).__name__
    raise UserError(f"--set {key}: expected {'an' if name[0] in 'aeiou' else 'a'} {name}, got {text!r}")


def apply_overrides(config: Any, overrides: list[str]) -> Any:
    """``--set a.b=c`` on any frozen config dataclass (SearchConfig, StudyConfig).

    All overrides apply before the result is validated, so ``trainer.epochs=1`` followed by
    ``trainer.warmup_epochs=0.2`` is fine in either order."""
    tree = dataclasses.asdict(config)
    for item in overrides:
        if "=" not in item:
            raise UserError(f"--set {item!r}: expected KEY=VALUE, e.g. trainer.epochs=3")
        key, text = item.split("=", 1)
        key = key.strip()
        _set(type(config), tree, key.split("."), text, key)
    try:
        return from_dict(tree, type(config))
    except (TypeError, ValueError) as e:
        if isinstance(e, UserError):
            raise
        raise UserError(f"--set: {e}") from None


def _set(cls: type, tree: dict[str, Any], path: list[str], text: str, full: str) -> None:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    if path[0] not in names:
        raise UserError(f"--set {full}: unknown key {path[0]!r}; known: {', '.join(sorted(names))}")
    sub = hints[path[0]]
    if len(path) > 1:
        if not dataclasses.is_dataclass(sub):
            raise UserError(f"--set {full}: {path[0]!r} has no sub-keys")
        _set(sub, tree[path[0]], path[1:], text, full)
    elif dataclasses.is_dataclass(sub):
        raise UserError(f"--set {full}: {path[0]!r} is a group; set one of its keys")
    else:
        tree[path[0]] = _coerce(text, tree[path[0]], full)


@dataclasses.dataclass(frozen=True)
class _TrainerSettings:
    """What ``nas train --set`` (and ``retrain-spec``, ``retrain``) overrides, named as in a search
    config (``trainer.crop_pad=2``)."""
    trainer: TrainConfig


def with_trainer_settings(config: TrainConfig, items: list[str] | tuple[str, ...]) -> TrainConfig:
    """``config`` with ``--set`` items, each ``trainer.KEY=VALUE`` or ``KEY=VALUE``; a bad one is a
    UserError."""
    items = [i if i.startswith("trainer.") or "=" not in i else f"trainer.{i}" for i in items]
    return apply_overrides(_TrainerSettings(config), items).trainer


def batch_without_lr_note(before: TrainConfig, items: list[str] | tuple[str, ...], prefix: str = "") -> str | None:
    """A line for ``--set`` items that change the batch of ``before`` but not its learning rate,
    which was set for the old batch (``--set batch_size=64`` on the fast recipe keeps its 0.2 at
    256: four times the rate per image), naming the rate that keeps it per image; else None. A
    note, not a change: a recipe label ``fast+batch_size=64`` must rebuild the config it trained
    with. ``prefix``: how the note names the keys (``trainer.`` for a search's or study's)."""
    keys = {i.split("=", 1)[0].strip().removeprefix("trainer.") for i in items}
    after = with_trainer_settings(before, items)
    if after.batch_size == before.batch_size or "learning_rate" in keys:
        return None
    scaled = learning_rate_for_batch(before, after.batch_size)
    return (f"note: --set {prefix}batch_size={after.batch_size} keeps the learning rate {before.learning_rate:g} set "
            f"for batch {before.batch_size}; --set {prefix}learning_rate={scaled:g} keeps its rate per image")


def config_batch_note(before: Any, items: list[str] | tuple[str, ...]) -> str | None:
    """``batch_without_lr_note`` for a search's or study's ``--set`` items (its ``trainer.KEY``
    ones) on ``before``, the config they apply to."""
    trainer_items = [i.strip() for i in items if i.strip().startswith("trainer.")]
    return batch_without_lr_note(before.trainer, trainer_items, "trainer.")


# Fewer optimizer steps in all than this and `nas train` / `nas retrain` suggest a smaller batch: the proxy
# recipe takes 175 an epoch on CIFAR-10's 45,000 training images. Measured (2-core CPU, 2026-12-06):
# a quarter-width MobileNetV2 on 1,000 Fashion-MNIST images for 3 epochs scored 14% at batch 256
# (9 steps; chance is 10%, its loss 4.2, 8.6, 5.4) and 67% at batch 32 with the lr scaled to 0.025
# (93 steps); WRN-16-2 on 2,000 images for an epoch 44% at batch 256 (7 steps), 59% at 32 (62).
FEW_STEPS = 50
# the proxy recipe's steps an epoch on CIFAR-10's 45,000 training images, which the note names
RECIPE_STEPS = batch_and_steps(45_000, TrainConfig().batch_size)[1]


def _steps(train_examples: int, batch_size: int, epochs: int) -> int:
    return batch_and_steps(train_examples, batch_size)[1] * epochs


def few_steps_note(train_examples: int, batch_size: int, epochs: int, recipe: TrainConfig | None = None,
                   ) -> str | None:
    """A line for a run of fewer than FEW_STEPS optimizer steps in all, naming a batch that gives
    enough (the largest of 128, 64, 32, 16 that does, else 16), else None: as `nas train
    --batch-size B` (whose default rate scales with it), or, for a retraining ``recipe``, as --set
    items with the recipe's rate per image."""
    steps = _steps(train_examples, batch_size, epochs)
    smaller = [b for b in (128, 64, 32, 16) if b < batch_size]
    if steps >= FEW_STEPS or not smaller:
        return None
    batch = next((b for b in smaller if _steps(train_examples, b, epochs) >= FEW_STEPS), smaller[-1])
    if recipe is None:
        where = f"the recipe takes {RECIPE_STEPS} an epoch on CIFAR-10"
        fix = f"--batch-size {batch} gives {_steps(train_examples, batch, epochs)} (the default lr scales with it)"
    else:  # a retraining recipe trains on the whole training split: CIFAR-10's 50,000 images
        where = f"the recipe takes {batch_and_steps(50_000, recipe.batch_size)[1]} an epoch on CIFAR-10"
        fix = (f"--set batch_size={batch} --set learning_rate={learning_rate_for_batch(recipe, batch):g} gives "
               f"{_steps(train_examples, batch, epochs)} (the recipe's rate per image)")
    return (f"note: {counted(steps, 'optimizer step')} in all ({train_examples:,} images at batch "
            f"{batch_and_steps(train_examples, batch_size)[0]}, {counted(epochs, 'epoch')}), where {where}: {fix}")


# What `nas search --resume --set KEY=VALUE` may change: a run can take more samples per size, or
# more ensemble sizes. Any other key would change what its recorded samples mean (their data,
# training, reward or controller), so it needs a run of its own.
EXTENSIBLE = ("samples_per_size", "sizes")


def extend_config(current: SearchConfig, overrides: list[str]) -> SearchConfig:
    """``current`` with more samples per size and/or more ensemble sizes, for a resumed search
    (``--set samples_per_size=60``, ``--set sizes=[1,2,3,4]``).

    Each size has its own controller, seeded by the search seed and the size, and its rounds take
    ``batch`` samples whatever the budget, so the extended run goes on to record what a run
    launched with the larger budget would have (tests/nas/test_search_controllers.py checks this
    for each controller). That holds where the samples per size so far fill whole rounds; a run
    whose last round was a part one (7 samples at batch 5) cannot take more samples."""
    for item in overrides:
        key = item.split("=", 1)[0].strip()
        if key not in EXTENSIBLE:
            raise UserError(f"--set {key}: a resumed run keeps its config except for more samples_per_size or "
                            f"more sizes; start a new run (--config ... --set {key}=...) to change {key}")
    new = apply_overrides(current, overrides)
    had, want = current.samples_per_size, new.samples_per_size
    if want < had:
        raise UserError(f"--set samples_per_size={want}: the run already takes {had} samples per size; "
                        "it can take more, not fewer")
    if want > had and had % current.batch:
        raise UserError(f"--set samples_per_size={want}: the run's {had} samples per size end in a part round "
                        f"(batch {current.batch}), which more samples would not follow on from; only a run whose "
                        "samples per size are a multiple of batch can take more")
    dropped = sorted(set(current.sizes) - set(new.sizes))
    if dropped:
        raise UserError(f"--set sizes={list(new.sizes)}: the run searches sizes {list(current.sizes)}; it can "
                        f"add sizes, not drop {dropped}")
    return new


def load_config_dataset(config: Any) -> Dataset:
    """The data set a search or study config names: its source, TFDS folders and image size,
    decoded at most once (``trainer.data.load_dataset``, looked up when called: one place for tests
    to stand in for every command's data)."""
    from trainer.data import load_dataset

    return load_dataset(config.dataset, tfds_data_dir=config.data_dir, manual_dir=config.manual_dir,
                        image_size=config.image_size)


def load_config(path: str, cls: type = SearchConfig) -> Any:
    """Run ``experiments/X.py`` and call its ``get_config()``, which must return a ``cls``."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"--config: no such file: {path}")
    spec = importlib.util.spec_from_file_location(f"nas_config_{p.stem}", p)
    if spec is None:  # not a .py file: nothing to import
        raise UserError(f"--config {path}: not a Python file; a config is a .py file defining get_config() "
                        "(experiments/demo.py)")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - a broken config file is a user error
        raise UserError(f"--config {path}: {type(e).__name__}: {e}") from None
    if not hasattr(module, "get_config"):
        raise UserError(f"--config {path}: defines no get_config()")
    try:
        cfg = module.get_config()
    except UserError:  # a bad value the config's own checks caught: already one line
        raise
    except Exception as e:  # noqa: BLE001 - as for the file's own code above
        raise UserError(f"--config {path}: get_config() raised {type(e).__name__}: {e}") from None
    if not isinstance(cfg, cls):
        raise UserError(f"--config {path}: get_config() must return a {cls.__name__}")
    return cfg
