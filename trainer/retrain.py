"""Retraining to convergence: full schedules, Orbax checkpoints every N epochs, resume after a kill.

A retrain trains on the whole training split and reports test accuracy (the split a search never
sees). Epoch e's randomness is ``fold_in(seed, e)``, so a run resumed from the checkpoint after
epoch e continues exactly as an uninterrupted run would.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from search_space.errors import UserError
from search_space.spec import ArchSpec
from trainer.checkpoint_folder import (check_run, epoch_saver, manager, restore, restore_latest, run_identity,
                                       write_run)
from trainer.checkpoints import checkpoint_steps
from trainer.config import TrainConfig
from trainer.data import Dataset, Split
from trainer.train import MemberTrainer

# Zagoruyko & Komodakis 2016: 200 epochs, Nesterov 0.9, lr 0.1 x0.2 at 60/120/160, wd 5e-4, batch 128.
WRN_RECIPE = TrainConfig(epochs=200, batch_size=128, optimizer="sgd", learning_rate=0.1, momentum=0.9, nesterov=True,
                         weight_decay=5e-4, schedule="step", warmup_epochs=0.0, step_epochs=(60, 120, 160),
                         step_factor=0.2, label_smoothing=0.0)
# A faster modern recipe: one-cycle-like warm-up + cosine, label smoothing, larger batch (airbench-style).
FAST_RECIPE = TrainConfig(epochs=40, batch_size=256, optimizer="sgd", learning_rate=0.2, momentum=0.9, nesterov=True,
                          weight_decay=5e-4, schedule="cosine", warmup_epochs=2.0, label_smoothing=0.1)
RECIPES = {"wrn": WRN_RECIPE, "fast": FAST_RECIPE}


def describe_recipe(recipe: TrainConfig) -> str:
    """A recipe's schedule in words, as `nas retrain --help` lists it, e.g. "40 epochs at batch 256,
    SGD with Nesterov momentum 0.9, lr 0.2 after 2 warm-up epochs, cosine to 0, ..."."""
    momentum = f"{'Nesterov ' if recipe.nesterov else ''}momentum {recipe.momentum:g}"
    parts = [f"{recipe.epochs} epochs at batch {recipe.batch_size}", f"{recipe.optimizer.upper()} with {momentum}"]
    rate = f"lr {recipe.learning_rate:g}"
    if recipe.warmup_epochs:
        rate += f" after {recipe.warmup_epochs:g} warm-up epochs"
    if recipe.schedule == "step":
        rate += f" x{recipe.step_factor:g} at epochs {', '.join(str(e) for e in recipe.step_epochs)}"
    else:
        rate += ", cosine to 0" if recipe.schedule == "cosine" else f", {recipe.schedule}"
    parts += [rate, f"weight decay {recipe.weight_decay:g}", f"label smoothing {recipe.label_smoothing:g}"]
    return ", ".join(parts)


def with_epochs(recipe: TrainConfig, epochs: int | None) -> TrainConfig:
    """A recipe shortened (or lengthened) to ``epochs``: warm-up and step boundaries kept inside it."""
    if not epochs:
        return recipe
    return recipe.replace(epochs=epochs, warmup_epochs=min(recipe.warmup_epochs, epochs),
                          step_epochs=tuple(e for e in recipe.step_epochs if e < epochs))


@dataclasses.dataclass(frozen=True)
class RetrainResult:
    test_accuracy: float
    test_logits: np.ndarray
    loss_curve: tuple[float, ...]
    epochs: int
    resumed_from_epoch: int  # 0 for a fresh run
    compile_s: float
    train_s: float
    from_saved_logits: bool = False  # a finished run's test logits read back: nothing built, compiled or scored


# A finished run keeps its test logits beside its checkpoints, so that a later command (another
# ensemble sharing the member, a rerun) reads them instead of rebuilding the model and compiling and
# running its scoring program (about 10 s a member on the 2-core CPU). Like the checkpoints, the file
# belongs to the folder's one run (spec, recipe, seed: `nas retrain` names the folder by them); it is
# keyed only by what can change under the same folder, the schedule's length and the test set.
SAVED_LOGITS = "test_logits.npz"


def _read_saved(path: Path, epochs: int, fingerprint: str, labels: np.ndarray) -> RetrainResult | None:
    try:
        with np.load(path) as z:
            if int(z["epochs"]) != epochs or str(z["fingerprint"]) != fingerprint:
                return None
            logits, curve = np.asarray(z["logits"]), tuple(float(x) for x in z["curve"])
    except (OSError, KeyError, ValueError):  # absent, or damaged by a kill mid-write: score again
        return None
    return RetrainResult(test_accuracy=float((logits.argmax(-1) == labels).mean()), test_logits=logits,
                         loss_curve=curve, epochs=epochs, resumed_from_epoch=epochs, compile_s=0.0, train_s=0.0,
                         from_saved_logits=True)


def saved_test_logits(checkpoint_dir: str | Path, epochs: int, dataset: Dataset) -> np.ndarray | None:
    """The test logits a finished retraining of ``epochs`` epochs saved in ``checkpoint_dir`` for
    ``dataset``'s test set; None where there are none (unfinished, another length or test set,
    damaged). The folder's own run is not checked: its caller names the folder by it (`nas retrain`)."""
    saved = _read_saved(Path(checkpoint_dir) / SAVED_LOGITS, epochs, dataset.test_fingerprint, dataset.y_test)
    return None if saved is None else saved.test_logits


# What the folder's one run retrains (checkpoint_folder.RUN_FILE): the member, the training data (by
# content), the seed and the recipe but its length (a later call may lengthen the schedule: epochs,
# and with them the warm-up and step boundaries, with_epochs). The recipe is the config's
# member-cache text (TrainConfig.key), which leaves out fields added later while they have their old
# value: a folder keeps naming its run as fields come.
_LENGTH_FIELDS = ("epochs", "warmup_epochs", "step_epochs")


def _run_identity(spec: ArchSpec, dataset: Dataset, config: TrainConfig, seed: int) -> dict[str, Any]:
    trainer = {k: v for k, v in json.loads(config.key()).items() if k not in _LENGTH_FIELDS}
    return run_identity(spec.to_dict(), dataset.train_fingerprint, seed, trainer)


def _write_saved(path: Path, r: RetrainResult, fingerprint: str) -> None:
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, logits=r.test_logits, curve=np.asarray(r.loss_curve, np.float64), epochs=r.epochs,
             fingerprint=fingerprint)
    os.replace(tmp, path)


def restore_retrained(spec: ArchSpec, dataset: Dataset, config: TrainConfig, seed: int,
                      checkpoint_dir: str | Path) -> nnx.Module:
    """A finished retraining's member as it was scored: its last checkpoint's weights, the batch-norm
    statistics recomputed over ``dataset``'s training images as for scoring, evaluation mode. The
    arguments are those ``retrain`` was given. Raises UserError when the run is missing or unfinished."""
    path = Path(checkpoint_dir).absolute()
    steps = checkpoint_steps(path)
    if not steps:
        raise UserError(f"{path}: no retraining checkpoint there")
    check_run(path, _run_identity(spec, dataset, config, seed))
    if max(steps) != config.epochs:
        raise UserError(f"{path}: retraining unfinished (last checkpoint after epoch {max(steps)} of {config.epochs}; "
                        f"`nas retrain` again resumes it)")
    split = Split(dataset.name, dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test, dataset.class_names)
    trainer = MemberTrainer(spec, split, config, seed)
    with ocp.CheckpointManager(path) as mngr:
        restore(mngr, config.epochs, trainer, named=True)  # check_run passed: a failure is damage
    return trainer.scoring_model()


def retrain(spec: ArchSpec, dataset: Dataset, config: TrainConfig, seed: int, checkpoint_dir: str | Path,
            every: int = 5, progress: Callable[[int, int, float], None] | None = None,
            stop_after: int | None = None, deadline: float | None = None,
            started: Callable[[int], None] | None = None) -> RetrainResult | None:
    """Train ``spec`` on all of ``dataset``'s training split, checkpointing every ``every`` epochs.

    If ``checkpoint_dir`` holds a checkpoint, training resumes after its epoch. ``stop_after``
    ends the run after that many epochs (returning None), as an interruption would. ``deadline``
    (a ``time.time()``): the first epoch that ends after it is checkpointed, whatever ``every`` says,
    and the run stops there (returning None); a later call resumes it exactly. A finished run's
    test logits are saved there too, and a later call on the same test set returns them as they are.
    ``started(epoch)`` is told the epoch training starts after (0, or the checkpoint's) once the
    folder is checked and its checkpoint restored, before compiling.
    """
    identity = _run_identity(spec, dataset, config, seed)
    named = check_run(Path(checkpoint_dir), identity)
    fingerprint = dataset.test_fingerprint  # saved logits serve the same test set only
    saved = _read_saved(Path(checkpoint_dir) / SAVED_LOGITS, config.epochs, fingerprint, dataset.y_test)
    if saved is not None and named:
        return saved
    split = Split(dataset.name, dataset.x_train, dataset.y_train, dataset.x_test, dataset.y_test, dataset.class_names)
    trainer = MemberTrainer(spec, split, config, seed)
    with manager(checkpoint_dir) as mngr:
        start_epoch, curve = restore_latest(mngr, trainer, named)
        if not named:  # a new folder, or one from before RUN_FILE whose checkpoint fitted
            write_run(Path(checkpoint_dir).absolute(), identity)
        if started is not None:
            started(start_epoch)
        # A finished run (a member shared by two retrained ensembles, a rerun) only scores: its training
        # program is not compiled, and the scoring program compiles on first use.
        compile_s = trainer.compile() if start_epoch < config.epochs else 0.0
        after_epoch = epoch_saver(mngr, trainer, config.epochs, every, deadline)
        t0 = time.perf_counter()
        for epoch in range(start_epoch, config.epochs):
            losses = trainer.run_epoch(epoch)
            curve.append(float(losses.mean()))
            if progress is not None:
                progress(epoch + 1, config.epochs, curve[-1])
            done = epoch + 1
            if after_epoch(done, curve) or (stop_after is not None and done >= stop_after):
                return None
        train_s = time.perf_counter() - t0
    logits = trainer.logits(dataset.x_test)
    result = RetrainResult(test_accuracy=float((logits.argmax(-1) == dataset.y_test).mean()), test_logits=logits,
                           loss_curve=tuple(curve), epochs=config.epochs, resumed_from_epoch=start_epoch,
                           compile_s=compile_s, train_s=train_s)
    _write_saved(Path(checkpoint_dir) / SAVED_LOGITS, result, fingerprint)
    return result
