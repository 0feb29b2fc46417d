"""`nas train` and `nas retrain-spec`: one member, proxy or full schedule."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

from nas.config import batch_without_lr_note, few_steps_note, with_trainer_settings
from nas.evaluators import EpochPace
from nas.words import counted
from search_space.errors import UserError
from search_space.space import adapt_for_small_input, SMALL_INPUT_MAX
from search_space.spec import AnySpec, ArchSpec, EnsembleSpec, MobileNetSpec, spec_id
from trainer.config import TrainConfig, learning_rate_for_batch
from trainer.data import Dataset, load_dataset, resizes_as_it_loads, validation_split


def _one_member(spec: AnySpec, member: int | None = None) -> ArchSpec:
    """The one architecture to train: a one-member ensemble's member (what `nas show --front
    --export` writes for a size-1 front point, or an exported one-member folder holds), an
    ensemble's ``member`` (--member, from 0), or ``spec`` itself. Checked before any data loads."""
    if isinstance(spec, EnsembleSpec):
        n = len(spec.members)
        if member is None and n != 1:
            raise UserError(f"SPEC: an ensemble of {n} members; give --member 0..{n - 1} for one of them (`nas "
                            "retrain RUN` retrains a search's ensembles)")
        if member is not None and member >= n:
            raise UserError(f"--member {member}: SPEC is an ensemble of {n} members (--member 0..{n - 1})")
        return spec.members[member or 0]
    if member is not None:
        raise UserError(f"--member {member}: SPEC is one architecture, not an ensemble")
    return spec


def _member_for_data(spec: ArchSpec, native: int, keep_resolution: bool) -> ArchSpec:
    """``spec`` (one architecture, ``_one_member``'s) at the data set's native size unless
    ``keep_resolution`` (a JSON spec file or an exported folder, whose resolution is part of the
    architecture, as a searched member's is, or --resolution); named ImageNet nets on small inputs
    get the small-input rule."""
    if not keep_resolution:
        spec = spec.replace(resolution=native)
    if isinstance(spec, MobileNetSpec) and native <= SMALL_INPUT_MAX and spec.stem_stride == 2:
        spec = adapt_for_small_input(spec)
    return spec


def _keeps_resolution(args: argparse.Namespace) -> bool:
    """--resolution, or a JSON spec file or an exported folder (SPEC was read from it)."""
    return args.resolution is not None or os.path.exists(args.spec)


class EpochLines:
    """The line `nas train` and `nas retrain-spec` print after each epoch: its mean loss and its
    ``EpochPace`` (a CPU epoch of a larger member can take minutes). Start it just before training."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter):
        self._clock = clock
        self._pace = EpochPace(clock())

    def line(self, epoch: int, epochs: int, loss: float) -> str:
        return f"  epoch {epoch}/{epochs}  loss {loss:.4f}  ({self._pace.text(epoch, epochs, self._clock())})"

    def __call__(self, epoch: int, epochs: int, loss: float) -> None:
        print(self.line(epoch, epochs, loss), file=sys.stderr, flush=True)


def default_learning_rate(batch_size: int) -> float:
    """The proxy recipe's peak learning rate (TrainConfig: 0.2 at batch 256) scaled linearly with
    the batch, as its CIFAR recipes scale (0.1 at 128, 0.05 at 64): the same rate per image."""
    return learning_rate_for_batch(TrainConfig(), batch_size)


def load_data(args: argparse.Namespace) -> Dataset:
    """The data set of --dataset; without it, the one an exported ensemble's folder (SPEC) was
    trained on, at the image size its manifest records. Raises UserError (one line) when neither
    names one."""
    from nas.manifest import is_exported, read_manifest

    def load(name: str, image_size: int | None) -> Dataset:
        return load_dataset(name, tfds_data_dir=args.data_dir, manual_dir=args.manual_dir, image_size=image_size)

    if args.dataset is not None:
        return load(args.dataset, args.image_size)
    if not is_exported(args.spec):
        raise UserError("--dataset: required (only an exported ensemble's folder as SPEC names its own)")
    manifest = read_manifest(args.spec)[0]
    name, size = manifest.get("dataset"), int(manifest["image_size"])
    if not isinstance(name, str) or not name:
        raise UserError(f"--dataset: required ({args.spec}'s manifest names no data set)")
    try:
        # sets of mixed image sizes load at the exported size; others as they are, resized only if
        # the export was (--image-size), which its images' size tells
        ds = load(name, args.image_size or (size if resizes_as_it_loads(name) else None))
        if args.image_size is None and ds.x_train.shape[1] != size:
            ds = load(name, size)
    except UserError as e:
        raise UserError(f"{e} (the data set {args.spec} was exported from; --dataset names another)") from None
    return ds


def _with_settings(config: TrainConfig, items: list[str]) -> tuple[TrainConfig, list[str]]:
    """``config`` with the ``--set`` items, and the notes to print with the command's first line
    (once the input is checked: a refusal is one line): a batch changed without its rate."""
    note = batch_without_lr_note(config, items)
    return with_trainer_settings(config, items), [note] if note else []


def run_train(args: argparse.Namespace, spec: AnySpec) -> int:
    from trainer.train import train_member

    lr = args.lr if args.lr is not None else default_learning_rate(args.batch_size)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, learning_rate=lr, dtype=args.dtype,
                         warmup_epochs=min(1.0, 0.1 * args.epochs), init=args.init,
                         tta_flip=args.tta_flip)
    config, notes = _with_settings(config, args.set)  # before the data loads: a bad setting fails at once
    one = _one_member(spec, args.member)  # and a bad --member
    if args.checkpoint_dir is None and args.max_minutes is not None:
        raise UserError("--max-minutes: needs --checkpoint-dir (where the stopped run's checkpoint goes)")
    if args.checkpoint_dir is None and args.every is not None:
        raise UserError("--every: needs --checkpoint-dir (where the checkpoints go)")
    if args.checkpoint_dir is not None:
        from nas.search_cli import check_writable
        from trainer.resumable import check_checkpointable

        check_checkpointable(config)
        check_writable(Path(args.checkpoint_dir), "--checkpoint-dir")  # not after loading the data
    ds = load_data(args)
    split = validation_split(ds, args.val_size, seed=args.seed, train_examples=args.train_examples,
                             names=("--val-size", "--train-examples"))
    member = _member_for_data(one, ds.native_resolution, _keeps_resolution(args))
    notes.append(few_steps_note(len(split.y_train), config.batch_size, config.epochs))
    resumed_from = 0

    def started(epoch: int = 0) -> None:  # with a folder: once it is checked, a refused one the error line alone
        nonlocal resumed_from
        resumed_from = epoch
        where = (f", checkpoints in {args.checkpoint_dir}{f', resumed after epoch {epoch}' if epoch else ''}"
                 if args.checkpoint_dir else "")
        print(f"training {spec_id(member)[:12]} on {ds.name}: {len(split.y_train)} train / {len(split.y_val)} val, "
              f"{member.resolution}px, {counted(config.epochs, 'epoch')}, batch {config.batch_size}, "
              f"lr {config.learning_rate:g}{where}", file=sys.stderr)
        for note in filter(None, notes):
            print(note, file=sys.stderr)

    if args.checkpoint_dir is None:
        started()
        r = train_member(member, split, config, seed=args.seed, progress=EpochLines())
    else:
        from trainer.resumable import train_resumable

        deadline = time.time() + 60 * args.max_minutes if args.max_minutes else None
        r = train_resumable(member, split, config, args.seed, args.checkpoint_dir, every=args.every or 1,
                            deadline=deadline, progress=EpochLines(), started=started)
        if r is None:
            return _stopped(args, config.epochs)
    out = {**r.summary(), "val_accuracy": r.val_accuracy, "dataset": ds.name, "spec": member.to_dict(),
           "trainer": config.to_dict(),
           "train_examples": int(len(split.y_train)), "val_examples": int(len(split.y_val))}
    if args.checkpoint_dir is not None:
        out.update(checkpoint_dir=str(args.checkpoint_dir), resumed_from_epoch=resumed_from)
    if args.json:
        print(json.dumps(out))
    else:
        views = f" (as is {r.view_accuracies[0]:.4f}, mirrored {r.view_accuracies[1]:.4f})" if r.view_accuracies else ""
        print(f"{r.status}{': ' + r.reason if r.reason else ''}  val accuracy {r.val_accuracy:.4f}{views}  "
              f"compile {r.compile_s:.1f}s  train {r.train_s:.1f}s  eval {r.eval_s:.1f}s"
              + (f"  (resumed after epoch {resumed_from})" if resumed_from else ""))
    return 0 if r.ok else 1


def _stopped(args: argparse.Namespace, epochs: int) -> int:
    """What `nas train` and `nas retrain-spec` say when --max-minutes stopped the run: where its
    checkpoint is, and that the same command resumes it."""
    from trainer.checkpoints import checkpoint_steps

    done = max(checkpoint_steps(args.checkpoint_dir))
    print(f"time limit ({args.max_minutes:g} min): stopped after epoch {done} of {epochs}, with a "
          f"checkpoint in {args.checkpoint_dir}; the same command resumes"
          + (" (and then exports)" if getattr(args, "export", None) else ""), file=sys.stderr)
    if args.json:
        print(json.dumps({"stopped_after_epoch": done, "epochs": epochs, "checkpoint_dir": str(args.checkpoint_dir)}))
    return 0


def run_retrain_spec(args: argparse.Namespace, spec: AnySpec) -> int:
    from nas.export import check_out_folder
    from nas.search_cli import check_writable
    from trainer.retrain import RECIPES, retrain, with_epochs

    deadline = time.time() + 60 * args.max_minutes if args.max_minutes else None
    if args.export:
        check_out_folder(Path(args.export), "--export")  # before hours of training, not after
    config, notes = _with_settings(with_epochs(RECIPES[args.recipe], args.epochs), args.set)  # before the data loads
    one = _one_member(spec, args.member)
    ds = load_data(args)
    check_writable(Path(args.checkpoint_dir), "--checkpoint-dir")  # not after building and compiling the member
    member = _member_for_data(one, ds.native_resolution, _keeps_resolution(args))

    def started(epoch: int) -> None:  # once the folder is checked: a refused one is the error line alone
        print(f"retraining {spec_id(member)[:12]} on {ds.name}: {len(ds.y_train)} train / {len(ds.y_test)} test, "
              f"{member.resolution}px, {counted(config.epochs, 'epoch')}, batch {config.batch_size}, "
              f"lr {config.learning_rate:g} ({args.recipe} recipe{' with --set' if args.set else ''}), "
              f"checkpoints in {args.checkpoint_dir}{f', resumed after epoch {epoch}' if epoch else ''}",
              file=sys.stderr)
        for note in [*notes, few_steps_note(len(ds.y_train), config.batch_size, config.epochs, config)]:
            if note:
                print(note, file=sys.stderr)

    r = retrain(member, ds, config, args.seed, args.checkpoint_dir, every=args.every, progress=EpochLines(),
                deadline=deadline, started=started)
    if r is None:
        return _stopped(args, config.epochs)
    out = {"test_accuracy": r.test_accuracy, "epochs": r.epochs, "resumed_from_epoch": r.resumed_from_epoch,
           "loss_curve": list(r.loss_curve), "compile_s": r.compile_s, "train_s": r.train_s,
           "from_saved_logits": r.from_saved_logits,
           "spec": member.to_dict(), "dataset": ds.name, "recipe": args.recipe, "set": args.set,
           "trainer": config.to_dict()}
    if args.export:
        out["export"] = _export_member(Path(args.export), member, ds, config, args, r.test_accuracy)
    print(json.dumps(out) if args.json else f"test accuracy {r.test_accuracy:.4f} after {counted(r.epochs, 'epoch')}"
                                             + _retrain_origin(r.resumed_from_epoch, r.from_saved_logits))
    return 0


def _retrain_origin(resumed_from_epoch: int, from_saved_logits: bool) -> str:
    """What the result line of `retrain-spec` adds on where its accuracy came from: nothing for a
    run trained from its start."""
    if from_saved_logits:
        return " (a finished run: its saved test logits)"
    return f" (resumed after epoch {resumed_from_epoch})" if resumed_from_epoch else ""


def _export_member(out: Path, member: ArchSpec, ds: Dataset, config: TrainConfig, args: argparse.Namespace,
                   test_accuracy: float) -> dict[str, Any]:
    """The retrained member as an exported one-member ensemble (the folder `nas export` writes for a
    search's ensembles, which `nas predict` and nas.export.load_ensemble read); returns what the
    command reports of it."""
    from latency.estimator import get_estimator
    from nas.export import data_manifest, member_arrays, read_back_note, write_ensemble
    from trainer.retrain import restore_retrained

    model = restore_retrained(member, ds, config, args.seed, args.checkpoint_dir)
    latency = get_estimator("pixel1").estimate(member, num_classes=len(ds.class_names)).total_ms
    manifest = {
        **data_manifest(ds, ds.x_train, config.tta_flip),
        "members": [{"id": spec_id(member), "seed": args.seed, "resolution": member.resolution,
                     "spec": member.to_dict(), "latency_ms": latency, "test_accuracy": test_accuracy}],
        "size": 1, "latency_max_ms": latency, "test_accuracy": test_accuracy,
        "retrain": {"recipe": args.recipe, "set": args.set, "epochs": config.epochs, "train_examples": None,
                    "checkpoint_dir": str(Path(args.checkpoint_dir).resolve())},
    }
    manifest = write_ensemble(out, manifest, [member_arrays(model)], ds.x_test, ds.y_test, "--export")
    got = manifest["test_accuracy_exported"]
    print(f"wrote {out}: its weights read back give test accuracy {got:.4f} (retraining measured "
          f"{test_accuracy:.4f})", file=sys.stderr)
    note = read_back_note(out, got, test_accuracy)
    if note:
        print(note, file=sys.stderr)
    return {"folder": str(out), "test_accuracy_exported": got}
