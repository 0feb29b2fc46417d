"""`nas seeds RUN`: n copies of a searched architecture (seeds) against the searched diverse ensembles
at the same max latency (nas/seeds.py)."""

from __future__ import annotations

import argparse
import json
import sys

import pandas as pd

from nas.config import from_dict, load_config_dataset
from nas.pareto import json_rows
from nas.store import RunDir
from search_space.errors import UserError


def run_seeds_cmd(args: argparse.Namespace) -> int:
    from nas.cli import evaluator_from_args
    from nas.plots import seeds_figure
    from nas.seeds import check_members, chosen_singles, seed_ensembles

    run = RunDir(args.run)
    config = from_dict(run.read_search_config())
    run.check_writable("seeds")
    records = run.records()
    if not records:
        raise UserError(f"{run.path}: no records yet")
    chosen = chosen_singles(records, args.top, args.sample)
    check_members(args.members)
    dataset = load_config_dataset(config)
    evaluator = evaluator_from_args(args)
    try:
        rows = seed_ensembles(run, config, dataset, evaluator, chosen, args.members,
                              log=lambda line: print(line, file=sys.stderr, flush=True))
    finally:
        evaluator.close()
    csv_path = run.path / "seeds.csv"
    rows.to_csv(csv_path, index=False)
    (run.path / "plots").mkdir(exist_ok=True)
    fig = seeds_figure(records, rows, run.path / "plots" / "seeds.png",
                       f"{config.dataset}: copies of searched members (diamonds, n at each) "
                       "against the searched fronts")
    if args.json:
        print(json.dumps({"run": str(run.path), "seeds_csv": str(csv_path), "figure": str(fig),
                          "rows": json_rows(rows)}))
        return 0
    print(f"run {run.path}: n copies of a searched one-member sample (seeds {config.seed}, {config.seed + 1}, ...) "
          "against the best searched n-member ensemble at no higher max latency (validation accuracy)")
    print(f"{'sample':>6}{'n':>3}{'max ms':>8}{'copies':>9}{'disagree':>10}{'searched':>10}{'disagree':>10}"
          f"{'(sample)':>10}{'gain':>8}")
    for r in rows.to_dict("records"):
        cell = lambda x, fmt: format(x, fmt) if pd.notna(x) else "-"  # noqa: E731 (no searched ensemble: None)
        sample = f"#{int(r['searched_sample'])}" if pd.notna(r["searched_sample"]) else "-"
        print(f"{r['sample']:>6}{r['n']:>3}{r['latency_max_ms']:>8.2f}{r['accuracy']:>9.4f}{r['disagreement']:>10.4f}"
              f"{cell(r['searched_accuracy'], '.4f'):>10}{cell(r['searched_disagreement'], '.4f'):>10}{sample:>10}"
              f"{cell(100 * r['gain'] if pd.notna(r['gain']) else None, '+.1f'):>8}")
    print(f"table {csv_path}; figure {fig}")
    return 0
