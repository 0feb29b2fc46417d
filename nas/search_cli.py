"""`nas search`, `nas plot`, `nas show` (`nas retrain`: nas/retrain_cli.py)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from nas.config import apply_overrides, config_batch_note, extend_config, from_dict, load_config, load_config_dataset
from nas.diversity import diversity_frame, diversity_summary, summary_lines
from nas.pareto import write_fronts
from nas.retrained_cli import print_retrained, retrain_plots
from nas.run_summary import data_label, front_ensembles, in_progress_line, members_line, pace_line, summarize
from nas.store import RunDir, write_error
from nas.words import counted
from search_space.errors import UserError


def run_search_cmd(args: argparse.Namespace) -> int:
    from nas.cli import check_backend, evaluator_from_args
    from nas.search import run_search, search_split

    run = RunDir(args.run_dir)
    dataset = split = None
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
        split = search_split(config, dataset)
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
    check_backend(args, config.trainer.compile_unit)
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
                       max_minutes=args.max_minutes, precompile_workers=args.precompile or 0, split=split)
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
