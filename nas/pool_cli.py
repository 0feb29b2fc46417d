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


def print_holdout(holdout: pd.DataFrame) -> None:
    """`nas pool --holdout`'s table: per size, the picks' accuracy on the half they were not chosen on."""
    def acc(x: object) -> str:
        return "-" if x is None or pd.isna(x) else f"{x:.4f}"

    def pts(x: object) -> str:
        return "-" if x is None or pd.isna(x) else f"{100 * x:+.1f}"

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
