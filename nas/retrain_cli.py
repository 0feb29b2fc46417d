"""`nas retrain`: a run's best ensembles (the top by reward, every Pareto point, a chosen sample, or
the member pool's recombinations) retrained with a full recipe and scored on the test split.

Each distinct member is retrained once per command, with the seed it was searched with (or, with
``--reseed K``, that seed + K * 1000, a setting of its own), in a checkpoint folder of its own per
retraining setting (recipe, epochs, training subset: nas/retrained.py), here or in worker
processes (nas/retrain_workers.py); a finished member keeps its test logits, so ensembles sharing
it, and later commands, score it without retraining. One row per ensemble is appended to
RUN/retrain.jsonl, which `nas show` and `nas plot` read (nas/retrained_cli.py). `--max-minutes`
stops between epochs with a checkpoint; the same command resumes.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import sys
import time
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from nas.config import batch_without_lr_note, few_steps_note, from_dict, load_config_dataset, with_trainer_settings
from nas.pareto import fronts
from nas.retrained import (changed_settings, member_retraining, recipe_label, reseed_items, retrain_seed, row_setting,
                           setting_label, setting_slug)
from nas.retrained_cli import print_agreement
from nas.store import RunDir, member_seed
from nas.words import counted
from search_space.errors import UserError

if TYPE_CHECKING:  # JAX, loaded only once the command's input is checked
    from search_space.spec import ArchSpec
    from trainer.config import TrainConfig
    from trainer.retrain import RetrainResult


def pool_choices(run: RunDir, ds: Any, size: int | None, pareto: bool, top: int) -> list[dict[str, Any]]:
    """Ensembles of the member pool's fronts (nas/pool.py; ``ds`` the run's data set), shaped as the
    records `nas retrain` reads: with ``pareto`` every front point, else the ``top`` by the run's
    reward, as for searched samples; ``sample`` is "pool". Sizes: ``size``, else those `nas pool` last
    wrote fronts for (RUN/pool_fronts.csv; `nas pool --sizes 1,2,3` on a search of single models),
    else the run's."""
    from nas.pool import pool_fronts
    from nas.pool_cli import validation_labels

    cfg = run.read_search_config()
    sizes = [size] if size is not None else cfg["sizes"]
    written = run.path / "pool_fronts.csv"
    if size is None and written.is_file():
        try:
            found = {int(n) for n in pd.read_csv(written, usecols=["size"])["size"]}
        except (ValueError, OSError) as e:  # pandas' parser errors and a blank size are ValueErrors
            raise UserError(f"{written}: unreadable ({e}); write it again with `nas pool {run.path}`, "
                            "or give --size") from None
        sizes = sorted(found) or sizes
    front, _ = pool_fronts(run, validation_labels(run, ds), sizes, from_dict(cfg).reward)
    rows = front.to_dict("records")
    if not pareto:
        rows = top_per_size(rows, top)
    return [{"ensemble_id": r["ensemble_id"], "size": int(r["size"]), "sample": "pool", "accuracy": r["accuracy"],
             "latency_max_ms": r["latency_max_ms"], "members": r["members"]} for r in rows]


def searched_choices(records: list[dict[str, Any]], where: Path, size: int | None, samples: list[int] | None,
                     pareto: bool, top: int) -> list[dict[str, Any]]:
    """The searched samples `nas retrain` retrains (of ``size`` members, or any): ``samples`` (in
    their order, each once), every Pareto point, or the ``top`` by reward. Raises UserError when there
    is none to retrain."""
    records = [r for r in records if r["status"] == "ok" and (size is None or r["size"] == size)]
    if not records:
        raise UserError(f"{where}: no successful samples{f' of size {size}' if size else ''} to retrain")
    if samples:  # chosen points, e.g. numbered on Figure 3 / in `nas show --front`
        by_number = {r["sample"]: r for r in records}
        missing = [s for s in samples if s not in by_number]
        if missing:
            raise UserError(f"--sample {', '.join(map(str, missing))}: no successful sample of that number of size "
                            f"{size} (samples {', '.join(str(r['sample']) for r in records)})")
        return [by_number[s] for s in dict.fromkeys(samples)]
    if pareto:
        ids = set(fronts(records)["ensemble_id"])
        return [r for r in records if r["ensemble_id"] in ids]
    return top_per_size(records, top)


def top_per_size(rows: list[dict[str, Any]], top: int) -> list[dict[str, Any]]:
    """The ``top`` rows of highest reward of each ensemble size, by size, then reward (ties: in
    their order)."""
    ranked = sorted(rows, key=lambda r: (r["size"], -r["reward"]))
    return [r for _, same in itertools.groupby(ranked, key=lambda r: r["size"]) for r in list(same)[:top]]


class _OutOfTime(Exception):
    """`nas retrain --max-minutes` stopped a member, or kept one from starting."""


class _MemberRetrains:
    """The distinct members of the ensembles to retrain, each retrained (or restored and scored) once
    per command: in the worker processes once ``submit_to`` has handed them over, else here when an
    ensemble first needs it. ``deadline`` (wall-clock seconds, which worker processes read too):
    --max-minutes; the command's first member (each worker's first) starts whatever the time, so
    every call moves on."""

    def __init__(self, run_path: Path, search_seed: int, setting: tuple[str, int, int], ds: Any, recipe: TrainConfig,
                 every: int, deadline: float | None):
        self.run_path, self.search_seed, self.setting = run_path, search_seed, setting
        self.slug = setting_slug(*setting)
        self.ds, self.recipe, self.every, self.deadline = ds, recipe, every, deadline
        self.members: dict[Path, tuple[int, ArchSpec, dict[str, Any]]] = {}  # checkpoint folder: (seed, spec, record)
        self.scored: dict[Path, RetrainResult] = {}
        self.pending: dict[Path, Future[RetrainResult | None]] = {}
        self.trained_here: list[Path] = []  # trained by this call (not read back from saved test logits)
        self.start = time.perf_counter()

    def folder(self, pos: int, member: dict[str, Any]) -> tuple[int, ArchSpec, Path]:
        """(the seed the member is retrained with: the one it was searched with, moved by --reseed; the
        spec to retrain; its checkpoint folder for this setting: nas.retrained.member_retraining)."""
        from search_space.spec import from_dict as spec_from_dict

        seed = retrain_seed(member_seed(member, self.search_seed, pos), self.setting[0])
        return seed, *member_retraining(self.run_path, spec_from_dict(member["spec"]), member["id"], seed, self.slug)

    def add(self, ensembles: list[dict[str, Any]]) -> None:
        """Each distinct member of ``ensembles``, in the order they need them."""
        for r in ensembles:
            for pos, m in enumerate(r["members"]):
                seed, spec, ckpt = self.folder(pos, m)
                self.members.setdefault(ckpt, (seed, spec, m))

    def submit_to(self, workers: Any, n_workers: int) -> None:
        """Every member handed to ``workers`` (nas.retrain_workers.RetrainWorkers) at once, in order;
        the first ``n_workers`` start whatever the deadline."""
        for i, (ckpt, (seed, spec, m)) in enumerate(self.members.items()):
            print(f"retraining {m['id'][:12]} -> {ckpt}", file=sys.stderr)
            self.pending[ckpt] = workers.submit(spec, self.recipe, seed, ckpt, self.every, m["id"][:12], self.deadline,
                                                must_start=i < n_workers)

    def result(self, pos: int, member: dict[str, Any]) -> RetrainResult:
        """The member's retraining: from the workers where they have it, else here. Raises _OutOfTime
        where --max-minutes stopped it or kept it from starting."""
        from nas.search import progress_prefix
        from trainer.retrain import retrain

        seed, spec, ckpt = self.folder(pos, member)
        if ckpt in self.scored:
            return self.scored[ckpt]
        if ckpt in self.pending:
            try:
                res = self.pending[ckpt].result()
            except BrokenProcessPool as e:
                raise UserError(f"a retraining worker died ({e}); rerun the command: the ensembles finished are "
                                "kept, and the other members resume from their checkpoints") from None
        else:
            if self.deadline is not None and self.trained_here and time.time() > self.deadline:
                raise _OutOfTime
            print(f"retraining {member['id'][:12]} -> {ckpt}", file=sys.stderr)
            res = retrain(
                spec, self.ds, self.recipe, seed, ckpt, every=self.every,
                deadline=self.deadline,
                progress=lambda e, n, l: print(f"  epoch {e}/{n} loss {l:.4f}", file=sys.stderr, flush=True))
        if res is None:
            raise _OutOfTime
        self.scored[ckpt] = res
        if not res.from_saved_logits:
            self.trained_here.append(ckpt)
        # members train one after another (or N at a time), each with its own compile: the mean pace,
        # not the pace after the first (which suits a pipelined search round)
        print(f"  {progress_prefix(len(self.scored), len(self.members), time.perf_counter() - self.start)}member "
              f"{member['id'][:12]} seed {seed}: test {res.test_accuracy:.4f}"
              + (" (trained earlier: its saved test logits)" if res.from_saved_logits else ""),
              file=sys.stderr, flush=True)
        return res


def _check_choice_options(args: argparse.Namespace) -> None:
    if args.sample is not None and (args.size is None or args.pool or args.pareto):
        raise UserError("--sample: give it with --size, for a searched sample (not with --pool or --pareto)")
    if args.top is not None and (args.sample is not None or args.pareto):  # each chooses instead of --top
        raise UserError(f"--top: not with {'--sample' if args.sample is not None else '--pareto'}, "
                        "which chooses the ensembles instead")


def _recipe(args: argparse.Namespace) -> tuple[TrainConfig, list[str]]:
    """The recipe with --epochs and --set, and the --set items that change it (a bad item fails here,
    before any data loads)."""
    from trainer.retrain import RECIPES, with_epochs

    recipe = with_trainer_settings(with_epochs(RECIPES[args.recipe], args.epochs), args.set)
    changed = changed_settings(with_epochs(RECIPES[args.recipe], recipe.epochs), recipe)
    if args.set and not changed:
        print(f"--set: {' '.join(args.set)} changes nothing in the {args.recipe} recipe", file=sys.stderr)
    return recipe, changed


def _result_row(r: dict[str, Any], metrics: Any, recipe_name: str, changed: list[str], reseed: int, epochs: int,
                subset: int | None) -> dict[str, Any]:
    """retrain.jsonl's row of ensemble ``r`` scored as ``metrics`` (nas.ensemble.EnsembleMetrics)."""
    return {"ensemble_id": r["ensemble_id"], "size": r["size"], "sample": r["sample"], "recipe": recipe_name,
            **({"set": changed} if changed else {}), **({"reseed": reseed} if reseed else {}),
            "epochs": epochs, "train_examples": subset, "proxy_val_accuracy": r["accuracy"],
            "test_accuracy": metrics.accuracy, "test_member_accuracies": list(metrics.member_accuracies),
            "latency_max_ms": r["latency_max_ms"],
            # each member's proxy accuracy next to its test accuracy (nas/retrained.py ranks them)
            "members": [{"id": m["id"], "seed": m.get("seed"), "val_accuracy": m.get("val_accuracy"),
                         "latency_ms": m.get("latency_ms")} for m in r["members"]]}


def run_retrain_cmd(args: argparse.Namespace) -> int:
    """Retrain the chosen ensembles (the top K by reward, the Pareto points, a sample, or the pool's)
    with a full recipe; one retrain.jsonl row each."""
    from nas.ensemble import evaluate_ensemble
    from nas.retrain_workers import RetrainWorkers
    from trainer.data import with_training_subset
    from trainer.retrain import RECIPES

    run = RunDir(args.run)
    cfg = from_dict(run.read_search_config())
    run.check_writable("retrain")
    _check_choice_options(args)
    top = args.top or 1
    recipe, changed = _recipe(args)
    if args.pool:  # the data set is loaded once, for the validation labels and for retraining
        ds = load_config_dataset(cfg)
        chosen = pool_choices(run, ds, args.size, args.pareto, top)
    else:
        chosen = searched_choices(run.records(), run.path, args.size, args.sample, args.pareto, top)
        ds = load_config_dataset(cfg)
    subset = args.train_examples
    ds = with_training_subset(ds, cfg.seed, subset)  # a class-balanced subset, for quick checks
    out_path = run.path / "retrain.jsonl"
    # as nas/retrained.py groups retrains (row_setting)
    setting = (recipe_label(args.recipe, changed + reseed_items(args.reseed)), recipe.epochs, subset or 0)
    finished = {(x["ensemble_id"], *row_setting(x)): x for x in run.retrains()}
    todo = [r for r in chosen if (r["ensemble_id"], *setting) not in finished]
    deadline = time.time() + 60 * args.max_minutes if args.max_minutes else None
    members = _MemberRetrains(run.path, cfg.seed, setting, ds, recipe, args.every, deadline)
    members.add(todo)
    if todo:
        print(f"retraining {counted(len(todo), 'ensemble')}: {counted(len(members.members), 'distinct member')} "
              f"({setting_label(*setting)})", file=sys.stderr)
        for note in (batch_without_lr_note(RECIPES[args.recipe], args.set),  # once the choices are checked
                     few_steps_note(len(ds.y_train), recipe.batch_size, recipe.epochs, recipe)):
            if note:
                print(note, file=sys.stderr)
    appended, stopped = 0, False
    with contextlib.ExitStack() as stack:
        n_workers = min(args.workers, len(members.members))
        if n_workers > 1:
            workers = stack.enter_context(RetrainWorkers(ds, n_workers))
            print(f"retraining in {n_workers} worker processes", file=sys.stderr)
            members.submit_to(workers, n_workers)
        for r in chosen:
            prior = finished.get((r["ensemble_id"], *setting))
            if prior is not None:  # a rerun after completion reports, it does not retrain or duplicate
                print(f"size {r['size']} #{r['sample']}: proxy val {r['accuracy']:.4f} -> test "
                      f"{prior['test_accuracy']:.4f} (retrained earlier)")
                continue
            try:
                logits = [members.result(pos, m).test_logits for pos, m in enumerate(r["members"])]
            except _OutOfTime:
                stopped = True
                print(f"time limit ({args.max_minutes:g} min): stopping with {len(todo) - appended} of {len(todo)} "
                      "ensembles left; members stopped mid-way keep a checkpoint of their last epoch, and the same "
                      "command resumes", file=sys.stderr)
                break
            metrics = evaluate_ensemble(logits, ds.y_test)
            run.append_retrain(_result_row(r, metrics, args.recipe, changed, args.reseed, recipe.epochs, subset))
            appended += 1
            print(f"size {r['size']} #{r['sample']}: proxy val {r['accuracy']:.4f} -> test {metrics.accuracy:.4f} "
                  f"(members {', '.join(f'{a:.4f}' for a in metrics.member_accuracies)})")
    if appended or stopped:
        print(f"{counted(appended, 'result')} appended to {out_path}")
    else:
        print(f"every chosen ensemble was retrained earlier; results in {out_path}")
    print_agreement(run, setting)
    return 0
