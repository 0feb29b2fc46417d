"""`nas search`, `nas plot`, `nas show`, `nas retrain`."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pandas as pd

from nas.config import (apply_overrides, batch_without_lr_note, config_batch_note, extend_config, from_dict,
                        load_config, load_config_dataset, with_trainer_settings)
from nas.diversity import diversity_frame, diversity_summary, summary_lines
from nas.pareto import fronts, write_fronts
from nas.retrained import (changed_settings, recipe_label, retrain_dir, row_setting, setting_label,
                           setting_slug)
from nas.retrained_cli import print_agreement, print_retrained, retrain_plots
from nas.run_summary import data_label, front_ensembles, in_progress_line, members_line, pace_line, summarize
from nas.store import RunDir, write_error
from nas.words import counted
from search_space.errors import UserError


def run_search_cmd(args: argparse.Namespace) -> int:
    from nas.cli import evaluator_from_args
    from nas.search import run_search, search_split

    run = RunDir(args.run_dir)
    dataset = None
    extended = False
    note = None
    if args.resume:
        if args.config:
            raise UserError("--resume: continues the run with its own config; drop --config (--set may give it "
                            "more samples_per_size or more sizes)")
        config = from_dict(run.read_search_config())
        if args.set:
            config, extended = extend_config(config, args.set), True
    else:
        if not args.config:
            raise UserError("--config: required for a new search (e.g. experiments/demo.py)")
        base = load_config(args.config)
        config = apply_overrides(base, args.set or [])
        note = config_batch_note(base, args.set or [])  # printed once the input is checked
        # Loaded and split before the run directory exists, so a missing data set or a split it
        # cannot give (val_size=100000 of 60,000 images) leaves nothing behind to block the
        # corrected command.
        dataset = load_config_dataset(config)
        search_split(config, dataset)
    if args.precompile and config.trainer.compile_unit != "padded":
        raise UserError(f"--precompile: only with trainer.compile_unit=padded (this run's is "
                        f"{config.trainer.compile_unit!r}): other programs depend on each member's own layers")
    if args.dry_run:  # what the search would do; nothing trained or written
        from nas.plan import plan_lines

        if not args.resume:
            run.check_new()
        lines = plan_lines(config, dataset or load_config_dataset(config), run.records() if args.resume else None)
        if note:
            print(note, file=sys.stderr)
        print(f"nas search --dry-run: {'resuming' if args.resume else 'a new run in'} {run.path}")
        print("\n".join(lines))
        return 0
    if args.member_cache:
        check_writable(Path(args.member_cache), "--member-cache")
    evaluator = evaluator_from_args(args)  # checked before the run directory is written
    try:
        if not args.resume:
            run.create(config.to_dict())
        run.records()  # a corrupt record line stops a resume here, before the launch is written
        with run.exclusive("search"):  # one search writes a run at a time
            if extended:
                run.write_config(config.to_dict())  # atomically: the run keeps one config, the extended one
            run.append_launch(getattr(args, "argv", []), args.resume)
            if note:
                print(note, file=sys.stderr)
            run_search(run, config, dataset=dataset, evaluator=evaluator, member_cache=args.member_cache,
                       max_minutes=args.max_minutes, precompile_workers=args.precompile or 0)
    finally:
        evaluator.close()
    from nas.report import write_report

    paths = make_plots(run)
    try:
        report = f"; report {write_report(run, plots=False)}"  # the figures just drawn
    except Exception as e:  # the search's records are whole: say so in one line and let `nas report` retry
        print(f"nas search: warning: report not written ({type(e).__name__}: {e}); `nas report {run.path}` "
              "writes it", file=sys.stderr)
        report = ""
    print(f"run {run.path}: {len(run.records())} samples; fronts {paths['fronts']}; plots {paths['figure3']}{report}")
    return 0


def check_writable(folder: Path, option: str) -> None:
    """Create ``folder`` if needed and write a file in it: one clear error now rather than a failed
    write after the first member has trained."""
    why = write_error(folder, create=True)
    if why is not None:
        raise UserError(f"{option} {folder}: cannot write: {why}")


def make_plots(run: RunDir) -> dict[str, Path]:
    from nas.plots import curves, diversity_figure, figure3

    records = run.records()
    if not records:
        raise UserError(f"{run.path}: no records yet")
    (run.path / "plots").mkdir(exist_ok=True)
    cfg = run.read_search_config()
    title = f"{cfg.get('dataset')}: {len(records)} samples, sizes {cfg.get('sizes')}"
    write_fronts(records, run.path / "fronts.csv")
    diverse = diversity_frame(records)
    return {"fronts": run.path / "fronts.csv",
            "figure3": figure3(records, run.path / "plots" / "figure3.png", title),
            "curves": curves(records, run.updates(), run.path / "plots" / "curves.png",
                             cfg.get("controller", "reinforce")),
            **({"diversity": diversity_figure(diverse, diversity_summary(diverse),
                                              run.path / "plots" / "diversity.png",
                                              f"{cfg.get('dataset')}: each ensemble's gain over its best member")}
               if len(diverse) else {}),
            **retrain_plots(run, records)}


def run_plot_cmd(args: argparse.Namespace) -> int:
    run = RunDir(args.run)
    run.read_search_config()  # a folder that is no run says so first
    run.check_writable("plot")
    paths = make_plots(run)
    for k, v in paths.items():
        print(f"{k}: {v}")
    return 0


def run_show_cmd(args: argparse.Namespace) -> int:
    run = RunDir(args.run)
    records = run.records()
    s = summarize(run, args.budgets, front=args.front, records=records)
    points = front_ensembles(records) if args.export else []
    exported = _export_front(points, Path(args.export)) if args.export else []
    if args.json:
        if args.export:
            s["exported"] = [str(p) for p in exported]
        print(json.dumps(s))
        return 0
    print(f"run {run.path}: {data_label(s)}, {s['controller']}, {s['samples']} samples of {s['samples_per_size']} "
          f"per size" + (f", on {'; '.join(s['devices'])}" if s["devices"] else ""))
    progress = in_progress_line(s["run"], s["in_progress"], time.time())
    if progress:
        print(progress)
    print(f"{'size':>4}{'samples':>9}{'failed':>8}{'best acc':>10}{'median acc':>12}{'median max ms':>15}"
          f"{'best reward':>13}{'front':>7}")
    for z in s["sizes"]:
        f = lambda x, p=4: "-" if x is None else f"{x:.{p}f}"  # noqa: E731
        print(f"{z['size']:>4}{z['samples']:>9}{z['failed']:>8}{f(z['best_accuracy']):>10}"
              f"{f(z['median_accuracy']):>12}{f(z['median_max_latency_ms'], 2):>15}{f(z['best_reward']):>13}"
              f"{z['front_points']:>7}")
    _print_within(pd.DataFrame(s["within_budget"]), s["target_ms"])
    if s["diversity"]:
        print("ensembles against their best member (geometric mean; gain and spread in accuracy points):")
        print("\n".join(summary_lines(pd.DataFrame(s["diversity"]))))
    if args.export:
        print(f"{len(exported)} front ensembles written to {args.export} as sizeN_sampleI.json")
    if args.front:
        _print_front(s["front"])
    print_retrained(s["retrained"])
    for u in s["retraining_unfinished"]:
        n = len(u["members"])
        print(f"retraining unfinished ({u['slug']}): {counted(n, 'member')} checkpointed mid-way, after "
              f"epoch{'s' if n != 1 else ''} {', '.join(str(m['epoch']) for m in u['members'])} of {u['epochs']} "
              f"(a `nas retrain` stopped, or still running); `nas retrain {run.path} {' '.join(u['options'])}` with "
              f"the same choice of ensembles resumes {'them' if n != 1 else 'it'}")
    if s["members"]["trained"]:
        print(members_line(s["members"]))
    pace = pace_line(s["pace"])
    if pace:
        print(pace)
    return 0


def _print_within(within: pd.DataFrame, target: float) -> None:
    """Figure 3 read across: the best accuracy per size within each max-latency budget."""
    if within.empty:
        return
    sizes = sorted(set(within["size"]))
    print(f"best accuracy within a max member latency (reward target {target:g} ms; sample in brackets):")
    print(f"{'budget ms':>10}" + "".join(f"{counted(n, 'member'):>18}" for n in sizes))
    for budget, d in within.groupby("budget_ms", sort=False):
        cells = []
        for n in sizes:
            row = d[d["size"] == n].iloc[0]
            cells.append("-" if pd.isna(row["accuracy"]) else f"{row['accuracy']:.4f} (#{int(row['sample'])})")
        print(f"{budget:>10.2f}" + "".join(f"{c:>18}" for c in cells))


def _print_front(points: list[dict[str, Any]]) -> None:
    for p in points:
        print(f"size {p['size']} sample {p['sample']}: accuracy {p['accuracy']:.4f}, max latency "
              f"{p['latency_max_ms']:.2f} ms, reward {p['reward']:.4f}, id {p['ensemble_id'][:12]}")
        for i, m in enumerate(p["members"], 1):
            acc = "" if m["val_accuracy"] is None else f", accuracy {m['val_accuracy']:.4f}"
            print(f"  member {i}: {m['resolution']} px, stem {m['stem_filters']}/s{m['stem_stride']}, head "
                  f"{m['head_filters']}, {m['latency_ms']:.2f} ms{acc}: {m['blocks']}")


def _export_front(points: list[tuple[dict[str, Any], Any]], out: Path) -> list[Path]:
    """One ensemble spec JSON per front point, DIR/sizeN_sampleI.json (for `nas describe`, `nas
    latency`); one clear error where DIR cannot be written, or where a file of that name holds
    another spec (another run's front exported there), which is left as it was: nothing is written."""
    from search_space.spec import to_json

    files = {out / f"size{rec['size']}_sample{rec['sample']}.json": to_json(ens) + "\n" for rec, ens in points}
    try:
        other = next((p for p, text in files.items() if p.is_file() and p.read_bytes() != text.encode()), None)
        if other is not None:
            raise UserError(f"--export {out}: {other.name} there holds another spec (another run's front?); "
                            "choose another folder")
        out.mkdir(parents=True, exist_ok=True)
        for path, text in files.items():
            path.write_text(text)
    except OSError as e:
        raise UserError(f"--export {out}: cannot write: {e.strerror}") from None
    return list(files)


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
        rows = sorted(rows, key=lambda r: -r["reward"])[:top]
    return [{"ensemble_id": r["ensemble_id"], "size": int(r["size"]), "sample": "pool", "accuracy": r["accuracy"],
             "latency_max_ms": r["latency_max_ms"], "members": r["members"]} for r in rows]


def searched_choices(records: list[dict[str, Any]], where: Path, size: int | None, sample: int | None, pareto: bool,
                     top: int) -> list[dict[str, Any]]:
    """The searched samples `nas retrain` retrains (of ``size`` members, or any): ``sample``, every
    Pareto point, or the ``top`` by reward. Raises UserError when there is none to retrain."""
    records = [r for r in records if r["status"] == "ok" and (size is None or r["size"] == size)]
    if not records:
        raise UserError(f"{where}: no successful samples{f' of size {size}' if size else ''} to retrain")
    if sample is not None:  # a chosen point, e.g. one numbered on Figure 3 / in `nas show --front`
        chosen = [r for r in records if r["sample"] == sample]
        if not chosen:
            raise UserError(f"--sample {sample}: no successful sample of that number of size {size} "
                            f"(samples {', '.join(str(r['sample']) for r in records)})")
        return chosen
    if pareto:
        ids = set(fronts(records)["ensemble_id"])
        return [r for r in records if r["ensemble_id"] in ids]
    return sorted(records, key=lambda r: -r["reward"])[:top]


class _OutOfTime(Exception):
    """`nas retrain --max-minutes` stopped a member, or kept one from starting."""


def run_retrain_cmd(args: argparse.Namespace) -> int:
    """Retrain the top-K ensembles (by reward, or the Pareto points) with a full recipe."""
    from nas.ensemble import evaluate_ensemble
    from nas.retrain_workers import RetrainWorkers
    from nas.search import member_seed, progress_prefix
    from search_space.spec import from_dict as spec_from_dict
    from trainer.data import with_training_subset
    from trainer.retrain import RECIPES, RetrainResult, retrain, with_epochs

    run = RunDir(args.run)
    cfg = from_dict(run.read_search_config())
    run.check_writable("retrain")
    if args.sample is not None and (args.size is None or args.pool or args.pareto):
        raise UserError("--sample: give it with --size, for a searched sample (not with --pool or --pareto)")
    if args.top is not None and (args.sample is not None or args.pareto):  # each chooses instead of --top
        raise UserError(f"--top: not with {'--sample' if args.sample is not None else '--pareto'}, "
                        "which chooses the ensembles instead")
    top = args.top or 1
    # before the data loads: a bad --set item fails at once
    recipe = with_trainer_settings(with_epochs(RECIPES[args.recipe], args.epochs), args.set)
    changed = changed_settings(with_epochs(RECIPES[args.recipe], recipe.epochs), recipe)
    if args.set and not changed:
        print(f"--set: {' '.join(args.set)} changes nothing in the {args.recipe} recipe", file=sys.stderr)
    ds = None
    if args.pool:  # the data set is loaded once, for the validation labels and for retraining
        ds = load_config_dataset(cfg)
        chosen = pool_choices(run, ds, args.size, args.pareto, top)
    else:
        chosen = searched_choices(run.records(), run.path, args.size, args.sample, args.pareto, top)
    if ds is None:
        ds = load_config_dataset(cfg)
    subset = args.train_examples
    ds = with_training_subset(ds, cfg.seed, subset)  # a class-balanced subset, for quick checks
    out_path = run.path / "retrain.jsonl"
    appended = 0
    setting = (recipe_label(args.recipe, changed), recipe.epochs, subset or 0)  # as nas/retrained.py groups retrains
    slug = setting_slug(*setting)
    finished = {(x["ensemble_id"], *row_setting(x)): x for x in run.retrains()}
    todo = [r for r in chosen if (r["ensemble_id"], *setting) not in finished]

    def member_run(pos: int, m: dict[str, Any]) -> tuple[int, Path]:
        seed = member_seed(m, cfg.seed, pos)  # the seed it was searched with
        return seed, retrain_dir(run.path, m["id"], seed, slug)

    # each distinct member to retrain (its folder: its seed and record), in the order the ensembles need them
    checkpoints = {}
    for r in todo:
        for pos, m in enumerate(r["members"]):
            seed, ckpt = member_run(pos, m)
            checkpoints.setdefault(ckpt, (seed, m))
    if todo:
        print(f"retraining {counted(len(todo), 'ensemble')}: {counted(len(checkpoints), 'distinct member')} "
              f"({setting_label(*setting)})",
              file=sys.stderr)
        note = batch_without_lr_note(RECIPES[args.recipe], args.set)  # once the choices are checked
        if note:
            print(note, file=sys.stderr)
    # a member shared by several chosen ensembles (evolution's children share their parents') is
    # retrained, or restored and scored, once per command
    start, scored, pending = time.perf_counter(), {}, {}
    # --max-minutes: a wall-clock time (worker processes read it too); the command's first member
    # (each worker's first, with --workers) starts whatever the time, so every call moves on
    deadline = time.time() + 60 * args.max_minutes if args.max_minutes else None
    trained_here = []  # members this call has trained (not read back from a finished run's saved logits)
    stopped = False

    def member_result(pos: int, m: dict[str, Any]) -> RetrainResult:
        """The member's retraining: from the workers where they have it (``pending``), else here.
        Raises _OutOfTime where --max-minutes stopped it or kept it from starting."""
        seed, ckpt = member_run(pos, m)
        if ckpt in scored:
            return scored[ckpt]
        if ckpt in pending:
            try:
                res = pending[ckpt].result()
            except BrokenProcessPool as e:
                raise UserError(f"a retraining worker died ({e}); rerun the command: the ensembles finished are "
                                "kept, and the other members resume from their checkpoints") from None
        else:
            if deadline is not None and trained_here and time.time() > deadline:
                raise _OutOfTime
            print(f"retraining {m['id'][:12]} -> {ckpt}", file=sys.stderr)
            res = retrain(
                spec_from_dict(m["spec"]), ds, recipe, seed, ckpt, every=args.every, deadline=deadline,
                progress=lambda e, n, l: print(f"  epoch {e}/{n} loss {l:.4f}", file=sys.stderr, flush=True))
        if res is None:
            raise _OutOfTime
        scored[ckpt] = res
        if not res.from_saved_logits:
            trained_here.append(ckpt)
        # members train one after another (or N at a time), each with its own compile: the mean pace,
        # not the pace after the first (which suits a pipelined search round)
        print(f"  {progress_prefix(len(scored), len(checkpoints), time.perf_counter() - start)}member "
              f"{m['id'][:12]} seed {seed}: test {res.test_accuracy:.4f}"
              + (" (trained earlier: its saved test logits)" if res.from_saved_logits else ""),
              file=sys.stderr, flush=True)
        return res

    with contextlib.ExitStack() as stack:
        n_workers = min(args.workers, len(checkpoints))
        if n_workers > 1:  # every distinct member handed to the workers at once, in the order they are needed
            workers = stack.enter_context(RetrainWorkers(ds, n_workers))
            print(f"retraining in {n_workers} worker processes", file=sys.stderr)
            for i, (ckpt, (seed, m)) in enumerate(checkpoints.items()):
                print(f"retraining {m['id'][:12]} -> {ckpt}", file=sys.stderr)
                pending[ckpt] = workers.submit(spec_from_dict(m["spec"]), recipe, seed, ckpt, args.every, m["id"][:12],
                                               deadline, must_start=i < n_workers)
        for r in chosen:
            prior = finished.get((r["ensemble_id"], *setting))
            if prior is not None:  # a rerun after completion reports, it does not retrain or duplicate
                print(f"size {r['size']} #{r['sample']}: proxy val {r['accuracy']:.4f} -> test "
                      f"{prior['test_accuracy']:.4f} (retrained earlier)")
                continue
            try:
                logits = [member_result(pos, m).test_logits for pos, m in enumerate(r["members"])]
            except _OutOfTime:
                stopped = True
                print(f"time limit ({args.max_minutes:g} min): stopping with {len(todo) - appended} of {len(todo)} "
                      "ensembles left; members stopped mid-way keep a checkpoint of their last epoch, and the same "
                      "command resumes", file=sys.stderr)
                break
            metrics = evaluate_ensemble(logits, ds.y_test)
            row = {"ensemble_id": r["ensemble_id"], "size": r["size"], "sample": r["sample"], "recipe": args.recipe,
                   **({"set": changed} if changed else {}),
                   "epochs": recipe.epochs, "train_examples": subset, "proxy_val_accuracy": r["accuracy"],
                   "test_accuracy": metrics.accuracy, "test_member_accuracies": list(metrics.member_accuracies),
                   "latency_max_ms": r["latency_max_ms"],
                   # each member's proxy accuracy next to its test accuracy (nas/retrained.py ranks them)
                   "members": [{"id": m["id"], "seed": m.get("seed"), "val_accuracy": m.get("val_accuracy"),
                                "latency_ms": m.get("latency_ms")} for m in r["members"]]}
            run.append_retrain(row)
            appended += 1
            print(f"size {r['size']} #{r['sample']}: proxy val {r['accuracy']:.4f} -> test {metrics.accuracy:.4f} "
                  f"(members {', '.join(f'{a:.4f}' for a in metrics.member_accuracies)})")
    if appended or stopped:
        print(f"{counted(appended, 'result')} appended to {out_path}")
    else:
        print(f"every chosen ensemble was retrained earlier; results in {out_path}")
    print_agreement(run, setting)
    return 0
