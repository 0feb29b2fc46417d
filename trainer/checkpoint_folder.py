"""A training run's checkpoint folder: Orbax checkpoints of a member's training state after chosen
epochs, the run the folder belongs to, and restoring the latest into a trainer.

Used by retraining to convergence (trainer/retrain.py, `nas retrain`, `nas retrain-spec`) and by a
proxy run of `nas train --checkpoint-dir` (trainer/resumable.py). Epoch e's randomness is
``fold_in(seed, e)`` (``MemberTrainer.run_epoch``), so a run resumed from the checkpoint after epoch e
continues exactly as an uninterrupted run would.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import jax
import numpy as np
import orbax.checkpoint as ocp

from search_space.errors import DamagedCheckpoint, UserError
from trainer.train import MemberTrainer, TrainState

# What the folder's one run trains (``run_identity``), written before its first checkpoint; a call for
# another run is refused before anything is read or written there, so that a mistyped
# --checkpoint-dir neither resumes another member's weights nor returns its saved logits. (The name
# is from when only retraining kept checkpoints; folders written since then keep it.)
RUN_FILE = "retraining.json"


def run_identity(spec_dict: dict[str, Any], training_data: str, seed: int, trainer: dict[str, Any],
                 **more: Any) -> dict[str, Any]:
    """What a folder's run is: the member (``ArchSpec.to_dict()``), its training data by content
    (a fingerprint, not the name or path it was loaded by), the seed, the trainer's settings that
    must match to resume (a dict), and any ``more`` fields. JSON-normalized, as it is stored."""
    return json.loads(json.dumps({"spec": spec_dict, "training_data": training_data, "seed": int(seed),
                                  "trainer": trainer, **more}))


def check_run(path: Path, identity: dict[str, Any], what: str = "retraining") -> bool:
    """Raise UserError when ``path`` holds another run; True when it names this run, False when it
    names none (a new folder). ``what`` names the kind of run in the error ("retraining", "training")."""
    try:
        stored = json.loads((path / RUN_FILE).read_text())
    except FileNotFoundError:
        return False
    except (OSError, ValueError) as e:
        raise UserError(f"{path / RUN_FILE}: unreadable ({e}); choose another --checkpoint-dir") from None
    if stored == identity:
        return True
    differs = [k for k in identity if k != "trainer" and stored.get(k) != identity[k]]
    differs += [k for k in stored if k not in identity and k != "trainer"]
    old_trainer = stored.get("trainer") or {}
    new_trainer = identity["trainer"]  # a field at its old value is left out of either (TrainConfig.key)
    differs += [f"trainer.{k}" for k in sorted(set(new_trainer) | set(old_trainer))
                if old_trainer.get(k) != new_trainer.get(k)]
    raise UserError(f"{path}: holds the {what} of another member or setting ({', '.join(differs) or 'fields'} "
                    "differ); choose another --checkpoint-dir, or the same member and settings to resume it")


def write_run(path: Path, identity: dict[str, Any]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / (RUN_FILE + ".tmp")
    tmp.write_text(json.dumps(identity, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path / RUN_FILE)


def _to_saveable(tree: Any) -> Any:
    """Typed PRNG keys (dropout streams) become their raw uint32 data for the checkpoint."""
    return jax.tree_util.tree_map(
        lambda x: jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else np.asarray(x),
        tree)


def _from_saved(saved: Any, like: Any) -> Any:
    return jax.tree_util.tree_map(
        lambda s, l: jax.random.wrap_key_data(s) if jax.dtypes.issubdtype(l.dtype, jax.dtypes.prng_key) else s,
        saved, like)


def _orbax_reason(e: Exception) -> str:
    """The first line of an Orbax or TensorStore error without TensorStore's spec, a JSON object of
    over 1,000 characters appended as ``[tensorstore_spec='...']`` (a truncated array file: 2,300
    characters in all, jax 0.10.2 / orbax 2026-12). What is left still names the array and the
    file and ends with the cause ("Requested byte range [0, 6865) is not valid for value of size 50")."""
    return str(e).splitlines()[0].split(" [tensorstore_spec")[0].rstrip(":")


def _is_closed_loop_callback(unraisable: Any) -> bool:
    """asyncio's RuntimeError for a callback posted to a closed loop (raised in ``_check_closed``)."""
    exc, tb = unraisable.exc_value, unraisable.exc_traceback
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return (isinstance(exc, RuntimeError) and str(exc) == "Event loop is closed" and tb is not None
            and tb.tb_frame.f_code.co_name == "_check_closed")


def _quiet_closed_loop_callbacks() -> None:
    """After a failed restore, TensorStore's reads still in flight complete on its own threads and
    post to the asyncio loop Orbax ran the restore in and has closed since; each post raises
    RuntimeError("Event loop is closed"), which Python prints as an unraisable exception: 2 to 14
    tracebacks below `nas retrain`'s one error line (2-core CPU, 2026-12-06). They say nothing the
    error does not, so from the first failed restore on those are dropped; every other unraisable
    exception reaches the hook that was in place."""
    previous = sys.unraisablehook
    if getattr(previous, "drops_closed_loop_callbacks", False):
        return

    def hook(unraisable: Any) -> None:
        if not _is_closed_loop_callback(unraisable):
            previous(unraisable)

    hook.drops_closed_loop_callbacks = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


def restore(mngr: ocp.CheckpointManager, step: int, trainer: MemberTrainer, named: bool = False) -> list[float]:
    """Load checkpoint ``step`` into ``trainer``'s state; returns the loss curve up to it. A
    checkpoint of another network (a folder from before RUN_FILE) is one UserError; one that fails
    to load in a folder that names this run (``named``) was damaged: ``DamagedCheckpoint``."""
    template = {"state": _to_saveable(trainer.state), "curve": np.zeros(step, np.float64)}
    try:
        restored = mngr.restore(step, args=ocp.args.StandardRestore(template))
    except Exception as e:  # noqa: BLE001 - a damaged file fails in Orbax's or TensorStore's own ways
        _quiet_closed_loop_callbacks()
        why = _orbax_reason(e)
        if named:
            raise DamagedCheckpoint(f"{mngr.directory}: the checkpoint after epoch {step} is unreadable ({why})") from None
        if not isinstance(e, ValueError):
            raise
        raise UserError(f"{mngr.directory}: its checkpoint does not fit this member ({why}); "
                        "choose another --checkpoint-dir") from None
    trainer.state = TrainState(*_from_saved(tuple(restored["state"]), tuple(trainer.state)))
    return [float(x) for x in restored["curve"]]


def restore_latest(mngr: ocp.CheckpointManager, trainer: MemberTrainer, named: bool) -> tuple[int, list[float]]:
    """Load the folder's latest checkpoint into ``trainer``: (the epoch it was taken after, the loss
    curve up to it); (0, []) for a folder without one. A damaged one is one UserError that says what
    to remove: it is not removed here (the user decides), and an earlier checkpoint (or the start)
    then trains its epochs again."""
    latest = mngr.latest_step()
    if latest is None:
        return 0, []
    try:
        return latest, restore(mngr, latest, trainer, named)
    except DamagedCheckpoint as e:
        # Damaged after it was written (Orbax commits a checkpoint whole). (Going on in this process
        # after the failed read floods stderr with TensorStore's "Event loop is closed" callbacks,
        # jax 0.10.2 / orbax on the CPU, 2026-12-06.)
        earlier = [t for t in mngr.all_steps() if t < latest]
        raise UserError(f"{e}; remove {Path(mngr.directory) / str(latest)} to resume from "
                        + (f"the checkpoint after epoch {max(earlier)}" if earlier else "the start")) from None


def save(mngr: ocp.CheckpointManager, epoch: int, trainer: MemberTrainer, curve: list[float]) -> None:
    """Checkpoint ``trainer``'s state and loss curve after ``epoch`` and wait until it is committed."""
    mngr.save(epoch, args=ocp.args.StandardSave({"state": _to_saveable(trainer.state),
                                                 "curve": np.asarray(curve, np.float64)}))
    mngr.wait_until_finished()


def manager(path: str | Path) -> ocp.CheckpointManager:
    """The folder's checkpoint manager, keeping the latest two."""
    options = ocp.CheckpointManagerOptions(max_to_keep=2, save_interval_steps=1)
    return ocp.CheckpointManager(Path(path).absolute(), options=options)


def epoch_saver(mngr: ocp.CheckpointManager, trainer: MemberTrainer, epochs: int, every: int,
                deadline: float | None) -> Callable[[int, list[float]], bool]:
    """What to do after each epoch of a checkpointed run, as ``f(epochs_done, loss_curve)``: save
    every ``every`` epochs and after the last, and at the first epoch that ends past ``deadline``
    (a ``time.time()``) whatever ``every`` says; returns True there, where the run stops."""
    def after_epoch(done: int, curve: list[float]) -> bool:
        out_of_time = deadline is not None and time.time() > deadline and done < epochs
        if done % every == 0 or done == epochs or out_of_time:
            save(mngr, done, trainer, curve)
        return out_of_time

    return after_epoch
