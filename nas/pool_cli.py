"""`nas pool RUN`: the best ensembles recombined from every member a search trained (nas/pool.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from nas.config import from_dict, load_config_dataset
from nas.pareto import json_rows
from nas.store import RunDir
from nas.words import counted
from search_space.errors import UserError

if TYPE_CHECKING:
    from trainer.data import Dataset


def validation_labels(run: RunDir, ds: Dataset | None = None) -> np.ndarray:
    """The labels of the run's validation split: as the search stored them, else (a run from before
    they were stored, or ``ds`` given) carved again as the search carved them from ``ds``, the
    run's data set, loaded when not given."""
    cfg = from_dict(run.read_search_config())
    if ds is None:
        stored = run.validation_labels()
        if stored is not None:
            return stored
        ds = load_config_dataset(cfg)
    from nas.search import search_split

    return search_split(cfg, ds).y_val


def run_pool_cmd(args: argparse.Namespace) -> int:
    if args.retrained:
        if args.holdout:
            raise UserError("--holdout: --retrained is held out already (--holdout-splits sets its halvings)")
        if args.retrain_setting and len(args.retrain_setting) > 1:
            return run_seeds_pool_cmd(args)
        return run_retrained_pool_cmd(args)
    given = [flag for flag, value in (("--retrain-setting", args.retrain_setting), ("--cost", args.cost)) if value]
    if given:
        raise UserError(f"{' and '.join(given)}: only with --retrained")
    from nas.plots import pool_figure
    from nas.pool import DEFAULT_BEAM, DEFAULT_LIMIT, pool_fronts

    run = RunDir(args.run)
    cfg = run.read_search_config()
    run.check_writable("pool")
    sizes = args.sizes or cfg["sizes"]
    records = run.records()
    if not records:
        raise UserError(f"{run.path}: no records yet")
    front, summary = pool_fronts(run, validation_labels(run), sizes, from_dict(cfg).reward,
                                 limit=args.limit or DEFAULT_LIMIT,
                                 beam=args.beam or DEFAULT_BEAM,
                                 progress=lambda line: print(line, file=sys.stderr, flush=True),
                                 records=records)
    csv_path = run.path / "pool_fronts.csv"
    front.drop(columns=["members"]).to_csv(csv_path, index=False)
    (run.path / "plots").mkdir(exist_ok=True)
    fig = pool_figure(records, front, run.path / "plots" / "pool.png",
                      f"{cfg['dataset']}: searched fronts (solid) and the member pool's (dashed)")
    holdout = None
    if args.holdout:
        from nas.pool import holdout_check, holdout_summary

        checks = holdout_check(run, validation_labels(run), sizes, splits=args.holdout_splits,
                               limit=args.limit or DEFAULT_LIMIT, beam=args.beam or DEFAULT_BEAM, records=records)
        checks.to_csv(run.path / "pool_holdout.csv", index=False)  # one row per split and size
        holdout = holdout_summary(checks)
    if args.json:
        rows = json_rows(front.drop(columns=["members"]))  # a front point no search sampled: null, not NaN
        print(json.dumps({"run": str(run.path), "sizes": summary.to_dict("records"), "fronts_csv": str(csv_path),
                          "figure": str(fig), "front": rows,
                          **({"holdout": json_rows(holdout)} if holdout is not None else {})}, default=_json_default))
        return 0
    print(f"run {run.path}: {summary['pool_members'].iloc[0]} trained members recombined (validation accuracy, "
          "geometric mean; chosen on the same images, so optimistic)")
    print(f"{'size':>4}{'candidates':>12}{'method':>12}{'searched':>10}{'searched best':>15}{'pool best':>11}"
          f"{'at max ms':>11}{'front':>7}{'unsampled':>11}")
    for s in summary.to_dict("records"):
        best = "-" if s["searched_best"] is None else f"{s['searched_best']:.4f}"
        print(f"{s['size']:>4}{s['candidates']:>12}{s['method']:>12}{s['searched_samples']:>10}{best:>15}"
              f"{s['pool_best']:>11.4f}{s['pool_best_latency_ms']:>11.2f}{s['front']:>7}{s['front_unsampled']:>11}")
    print(f"fronts {csv_path}; figure {fig}")
    if holdout is not None:
        print_holdout(holdout)
    return 0


def run_retrained_pool_cmd(args: argparse.Namespace) -> int:
    """`nas pool RUN --retrained`: under each cost budget, the best single model against the best
    ensembles of the members retrained in one setting, chosen and scored on halves of the test images
    (nas/pool_budget.py)."""
    from nas.plots import budget_figure
    from nas.pool import DEFAULT_BEAM, DEFAULT_LIMIT
    from nas.pool_budget import COSTS, budget_check, budget_summary, choose_setting, retrained_pool

    cost = args.cost or "latency"
    run = RunDir(args.run)
    cfg = run.read_search_config()
    run.check_writable("pool")
    slug = choose_setting(run, args.retrain_setting[0] if args.retrain_setting else None, "--retrain-setting")
    sizes = sorted({1, *(args.sizes or cfg["sizes"])})  # the single model is what every size is measured against
    ds = load_config_dataset(from_dict(cfg))
    members, log_probs, _ = retrained_pool(run, slug, ds)
    checks = budget_check(members, log_probs, ds.y_test, sizes, cost=cost, splits=args.holdout_splits,
                          limit=args.limit or DEFAULT_LIMIT, beam=args.beam or DEFAULT_BEAM,
                          progress=lambda line: print(line, file=sys.stderr, flush=True))
    checks["member_ids"] = [",".join(f"{members[int(i)].id[:12]}@{members[int(i)].seed}" for i in picked.split())
                            for picked in checks["members"]]  # as `nas export --members` takes them
    summary = budget_summary(checks)
    name = f"pool_retrained_{slug}_{cost}"
    csv_path = run.path / f"{name}.csv"
    checks.to_csv(csv_path, index=False)  # one row per halving, size and budget
    (run.path / "plots").mkdir(exist_ok=True)
    fig = budget_figure(summary, cost, run.path / "plots" / f"{name}.png",
                        f"{cfg['dataset']}: {len(members)} members retrained ({slug}), pooled; held out over "
                        f"{args.holdout_splits} halvings of the test images")
    if args.json:
        print(json.dumps({"run": str(run.path), "setting": slug, "cost": cost, "members": len(members),
                          "checks_csv": str(csv_path), "figure": str(fig), "budgets": json_rows(summary)},
                         default=_json_default))
        return 0
    print(f"run {run.path}: {len(members)} distinct members retrained in setting {slug}, pooled (geometric-mean "
          f"test accuracy); cost: {COSTS[cost]}")
    print(f"held out: {args.holdout_splits} random halvings of the {len(ds.y_test):,} test images; under each budget "
          "the most accurate ensemble of each size on one half, scored on the other (mean); lead over the single "
          "model picked under the same budget, in points, with its sd over halvings and the halvings it was positive in")
    print_budgets(summary, cost)
    for k, d in summary.groupby("size", sort=True):
        best = d.sort_values(["score_accuracy", "budget"], ascending=[False, True]).iloc[0]
        picks = checks[(checks["size"] == k) & (checks["budget"] == best["budget"])]["member_ids"]
        shown = best["budget"] if cost == "latency" else best["budget"] / 1e6
        print(f"size {k}: best held out {100 * best['score_accuracy']:.2f}% within {shown:.2f} "
              f"{'ms' if cost == 'latency' else 'MFLOPs'}, most often picked ({picks.value_counts().iloc[0]} of "
              f"{len(picks)} halvings): {picks.value_counts().index[0]}")
    print(f"picks per halving {csv_path}; figure {fig}; a pick as a folder of its own: "
          f"nas export {run.path} --setting {slug} --members IDS --out DIR")
    return 0


def run_seeds_pool_cmd(args: argparse.Namespace) -> int:
    """`nas pool RUN --retrained --retrain-setting A --retrain-setting B ...` (settings that differ
    only in `nas retrain --reseed`): under each cost budget, the best single model, the best ensemble
    of one network's seeds and the best of different networks, chosen and scored on halves of the
    test images (nas/pool_seeds.py)."""
    from nas.plots import seeds_pool_figure
    from nas.pool_budget import COSTS, choose_setting
    from nas.pool_seeds import DEFAULT_SUBSETS, check_reseeded, seeds_check, seeds_pool, seeds_summary

    cost = args.cost or "latency"
    run = RunDir(args.run)
    cfg = run.read_search_config()
    run.check_writable("pool")
    slugs = [choose_setting(run, s, "--retrain-setting") for s in check_reseeded(args.retrain_setting)]
    # one network's k seeds need k settings
    if args.sizes and max(args.sizes) > len(slugs):
        raise UserError(f"--sizes {max(args.sizes)}: one network's {max(args.sizes)} seeds need as many settings "
                        f"({len(slugs)} given)")
    sizes = sorted({k for k in (args.sizes or cfg["sizes"]) if 2 <= k <= len(slugs)})
    if not sizes:
        raise UserError("--sizes: no ensemble size of two or more to compare")
    ds = load_config_dataset(from_dict(cfg))
    pool = seeds_pool(run, slugs, ds)
    if pool.left_out:
        print(f"note: {counted(pool.left_out, 'member')} retrained in some of these settings but not in all, left "
              "out (retrained in each, it is pooled)", file=sys.stderr)
    checks = seeds_check(pool, ds.y_test, sizes, cost=cost, splits=args.holdout_splits,
                         limit=args.limit or DEFAULT_SUBSETS,
                         progress=lambda line: print(line, file=sys.stderr, flush=True))
    named = [f"{m.id[:12]}@{m.seed}/{setting}" for m, setting in zip(pool.members, pool.settings)]
    checks["member_ids"] = [",".join(named[int(j)] for j in picked.split()) for picked in checks["models"]]
    summary = seeds_summary(checks)
    name = f"pool_seeds_{slugs[0]}_x{len(slugs)}_{cost}"
    csv_path = run.path / f"{name}.csv"
    checks.to_csv(csv_path, index=False)  # one row per halving, size, kind and budget
    (run.path / "plots").mkdir(exist_ok=True)
    networks = int(pool.networks.max()) + 1
    fig = seeds_pool_figure(summary, cost, run.path / "plots" / f"{name}.png",
                            f"{cfg['dataset']}: {networks} networks x {len(slugs)} seeds ({', '.join(slugs)}); held "
                            f"out over {args.holdout_splits} halvings of the test images")
    if args.json:
        print(json.dumps({"run": str(run.path), "settings": slugs, "cost": cost, "networks": networks,
                          "models": len(pool.members), "checks_csv": str(csv_path), "figure": str(fig),
                          "budgets": json_rows(summary)}, default=_json_default))
        return 0
    print(f"run {run.path}: {networks} networks retrained in each of {len(slugs)} settings ({', '.join(slugs)}), "
          f"{len(pool.members)} models; cost: {COSTS[cost]}")
    print(f"held out: {args.holdout_splits} random halvings of the {len(ds.y_test):,} test images; under each budget "
          "the most accurate candidate of each kind on one half, scored on the other (mean); leads in points")
    print_seeds(summary, cost)
    print(f"picks per halving {csv_path}; figure {fig}")
    return 0


def print_seeds(summary: pd.DataFrame, cost: str) -> None:
    """The seeds pool's table: a row per budget; per size, one network's seeds and different
    networks with their leads over the single model, and different networks' lead over one network
    with the halvings it was positive in."""
    from nas.pool_seeds import seeds_verdicts

    sizes = sorted(int(k) for k in summary["size"].unique() if k != 1)
    unit = "ms" if cost == "latency" else "MFLOPs"
    print(f"{'budget ' + unit:>14}{'single':>9}" + "".join(f"{f'{k} seeds':>10}{'lead':>8}{f'{k} nets':>10}{'lead':>8}"
                                                         f"{'nets-seeds':>11}{'>0':>7}" for k in sizes))
    digits = _budget_digits(summary["budget"], cost)
    for budget, d in summary.groupby("budget", sort=True):
        by = {(int(r["size"]), r["kind"]): r for r in d.to_dict("records")}
        single = by.get((1, "single"), {}).get("score_accuracy")
        line = f"{_budget(budget, cost, d['beyond_singles'].iloc[0], digits):>15}{_acc(single):>8}"
        for k in sizes:
            one, nets = by.get((k, "one network"), {}), by.get((k, "different networks"), {})
            over = nets.get("over_one_network")
            positive = "-" if over is None or pd.isna(over) else \
                f"{int(nets['over_one_network_positive'])}/{int(nets['over_one_network_splits'])}"
            line += (f"{_acc(one.get('score_accuracy')):>10}{_pts(one.get('lead')):>8}"
                     f"{_acc(nets.get('score_accuracy')):>10}{_pts(nets.get('lead')):>8}{_pts(over):>11}{positive:>7}")
        print(line)
    if summary["beyond_singles"].any():
        print("* above every model's own cost: the ensembles there are compared with the best single model, not with "
              "one of that cost")
    for v in seeds_verdicts(summary):
        print(f"size {v['size']}, at {counted(v['budgets'], 'budget')} within the models' own costs with both kinds: "
              f"different networks ahead of one network's seeds in every halving at {v['ahead']}, behind in every "
              f"halving at {v['behind']}; median lead {100 * v['median_lead']:+.2f} points")


def print_budgets(summary: pd.DataFrame, cost: str) -> None:
    """`nas pool --retrained`'s table: a row per budget, a column group per size."""
    from nas.pool_budget import budget_verdicts

    sizes = sorted(int(k) for k in summary["size"].unique())
    unit = "ms" if cost == "latency" else "MFLOPs"
    head = f"{'budget ' + unit:>14}{'single':>9}" + "".join(f"{f'size {k}':>9}{'lead':>8}{'sd':>6}{'>0':>7}"
                                                           for k in sizes if k != 1)
    print(head)
    digits = _budget_digits(summary["budget"], cost)
    for budget, d in summary.groupby("budget", sort=True):
        by = {int(r["size"]): r for r in d.to_dict("records")}
        single = by.get(1, {}).get("score_accuracy")
        line = f"{_budget(budget, cost, d['beyond_singles'].iloc[0], digits):>15}{_acc(single):>8}"
        for k in sizes:
            if k == 1:
                continue
            r = by.get(k, {})
            lead, sd = r.get("lead"), r.get("lead_std")
            positive = "-" if lead is None or pd.isna(lead) else f"{int(r['lead_positive'])}/{int(r['lead_splits'])}"
            line += (f"{_acc(r.get('score_accuracy')):>9}{_pts(lead):>8}"
                     f"{'-' if sd is None or pd.isna(sd) else f'{100 * sd:.2f}':>6}{positive:>7}")
        print(line)
    if summary["beyond_singles"].any():
        print("* above every pooled model's own cost: the ensembles there are compared with the pool's best single "
              "model, not with one of that cost")
    for v in budget_verdicts(summary):
        print(f"size {v['size']}, at {counted(v['budgets'], 'budget')} within the pooled models' own costs: ahead of "
              f"the single model in every halving at {v['ahead']}, behind in every halving at {v['behind']}; median "
              f"lead {100 * v['median_lead']:+.2f} points")


def _budget(budget: float, cost: str, beyond_singles: bool, digits: int = 2) -> str:
    """A budget as its table prints it: ms or MFLOPs, starred above every pooled model's own cost."""
    return f"{budget if cost == 'latency' else budget / 1e6:.{digits}f}" + ("*" if beyond_singles else " ")


def _budget_digits(budgets: pd.Series, cost: str) -> int:
    """The decimals (2 to 4) at which no two of the table's budgets print alike."""
    shown = np.unique(budgets.to_numpy(float) / (1.0 if cost == "latency" else 1e6))
    return next((d for d in (2, 3) if len(np.unique(shown.round(d))) == len(shown)), 4)


def _acc(x: object) -> str:
    """An accuracy as a fraction, four places."""
    return "-" if x is None or pd.isna(x) else f"{x:.4f}"


def _pts(x: object, digits: int = 2) -> str:
    """An accuracy difference in points, signed."""
    return "-" if x is None or pd.isna(x) else f"{100 * x:+.{digits}f}"


def print_holdout(holdout: pd.DataFrame) -> None:
    """`nas pool --holdout`'s table: per size, the picks' accuracy on the half they were not chosen on."""
    acc = _acc
    pts = lambda x: _pts(x, 1)  # noqa: E731

    print(f"held out ({int(holdout['splits'].iloc[0])} random halvings of the validation images; each pick chosen "
          "on one half, scored on the other; means over the halvings, leads in accuracy points):")
    print(f"{'size':>4}{'pool pick':>11}{'searched pick':>15}{'pool lead':>11}{'sd':>6}"
          f"{'pool within its ms':>20}{'lead':>7}{'optimism: pool':>16}{'searched':>10}")
    for r in holdout.to_dict("records"):
        sd = r.get("pool_lead_std")
        print(f"{r['size']:>4}{acc(r['pool_score_accuracy']):>11}{acc(r.get('searched_score_accuracy')):>15}"
              f"{pts(r.get('pool_lead')):>11}{'-' if sd is None or pd.isna(sd) else f'{100 * sd:.1f}':>6}"
              f"{acc(r.get('pool_within_score_accuracy')):>20}{pts(r.get('pool_within_lead')):>7}"
              f"{pts(r['pool_optimism']):>16}{pts(r.get('searched_optimism')):>10}")


def _json_default(x: object) -> object:
    if isinstance(x, (np.integer, np.floating)):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(type(x).__name__)
