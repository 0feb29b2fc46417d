"""A proxy run (``train_member``: train on a split's training part, score on its validation part)
that keeps Orbax checkpoints and resumes after a kill or a time limit: `nas train --checkpoint-dir`.

A search's members are short and are not checkpointed (an interrupted search trains an unfinished
member again). A single run can be long: a full-width MobileNetV2's 10 proxy epochs took about 70
minutes at half width on the 2-core CPU (experiments/results/cpu_half_width_2026-12-06), a larger
network or data set far more, and such a run is worth resuming where it stopped. Epoch e's randomness
is ``fold_in(seed, e)``, so a resumed run gives the loss curve and validation logits an uninterrupted
one gives (tests/trainer/test_resumable.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from search_space.errors import UserError
from search_space.spec import ArchSpec, spec_id
from trainer.checkpoint_folder import check_run, epoch_saver, manager, restore_latest, run_identity, write_run
from trainer.config import TrainConfig
from trainer.data import Split
from trainer.train import MemberResult, MemberTrainer, ProgressFn, is_oom, oom_result, run_member


def _identity(spec: ArchSpec, split: Split, config: TrainConfig, seed: int) -> dict[str, Any]:
    """The folder's run: the member, the split by content (training and validation images), the seed
    and every trainer setting, its length included (the cosine schedule's rate at each epoch depends
    on it, so a run resumed at another length would not be the run the folder began)."""
    return run_identity(spec.to_dict(), split.fingerprint, seed, json.loads(config.key()), run="nas train")


def check_checkpointable(config: TrainConfig) -> None:
    """Checkpoints hold one program's training state (``MemberTrainer``); per-layer trainers keep
    theirs per stage and are refused with one UserError."""
    if config.compile_unit != "program":
        raise UserError(f"--checkpoint-dir: trains one program per member (trainer.compile_unit=program), "
                        f"not {config.compile_unit!r}")


def train_resumable(spec: ArchSpec, split: Split, config: TrainConfig, seed: int, checkpoint_dir: str | Path,
                    every: int = 1, deadline: float | None = None, progress: ProgressFn | None = None,
                    started: Callable[[int], None] | None = None) -> MemberResult | None:
    """``train_member`` with a checkpoint in ``checkpoint_dir`` every ``every`` epochs and after the
    last. A folder holding this run's checkpoint resumes after its epoch; one holding another run
    is refused (UserError) before anything there is read or written. ``deadline`` (a ``time.time()``):
    the first epoch that ends after it is checkpointed, whatever ``every`` says, and the run stops
    there, returning None; the same call resumes it. ``started(epoch)`` is told the epoch training
    starts after (0, or the checkpoint's) once the folder is checked, before compiling. A finished
    run's folder scores its last checkpoint again without compiling the training program."""
    check_checkpointable(config)
    path = Path(checkpoint_dir).absolute()
    identity = _identity(spec, split, config, seed)
    named = check_run(path, identity, what="training")
    try:
        trainer = MemberTrainer(spec, split, config, seed)
        with manager(path) as mngr:
            start_epoch, curve = restore_latest(mngr, trainer, named)
            if not named:
                write_run(path, identity)
            if started is not None:
                started(start_epoch)
            if start_epoch < config.epochs:
                trainer.compile()  # (a finished run's scoring program compiles on first use)
            return run_member(trainer, progress, done=(start_epoch, curve),
                              after_epoch=epoch_saver(mngr, trainer, config.epochs, every, deadline))
    except Exception as e:  # noqa: BLE001 - out of memory building or compiling is a failed result, as in train_member
        if is_oom(e):
            return oom_result(spec_id(spec), e)
        raise
