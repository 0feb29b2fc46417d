"""Retraining results in `nas show`, `nas plot` and at the end of `nas retrain` (nas/retrained.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from nas.diversity import gain_line, gain_summary, retrained_gains
from nas.pareto import json_rows
from nas.retrained import (MEMBER_COLUMNS, SETTING, against_singles, agreement_scope, in_setting, member_frame,
                           proxy_picks, rank_agreement, recipe_parts, retrain_frame, setting_label, setting_slug)
from nas.store import RunDir
from nas.words import counted


def retrained_report(run: RunDir, records: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Per retraining setting of the run (none: an empty list): its label, rank agreement rows,
    retrained ensembles (by size, then max latency), their comparison with retrained singles, the
    proxy's first choices, the ensembles' gain over their best member against the spread of their
    members' test accuracies (None without ensembles of two or more), and the distinct retrained
    members. ``records``: the run's, read when not given."""
    rows = run.retrains()
    if not rows:
        return []
    records = run.records() if records is None else records
    ensembles = retrain_frame(rows)
    members = member_frame(rows, records)
    agreement = rank_agreement(ensembles, members)
    versus = against_singles(ensembles, members)
    picks = proxy_picks(ensembles)
    out = []
    for setting, d in ensembles.groupby(SETTING, sort=True):
        recipe, epochs, train_examples = setting
        same = lambda f: in_setting(f, setting).drop(columns=SETTING)  # noqa: E731
        gains = retrained_gains(d)
        name, items, reseed = recipe_parts(recipe)  # the recipe, what `nas retrain --set` changed in it, --reseed
        out.append({"recipe": name, "set": items, "reseed": reseed, "epochs": int(epochs),
                    "train_examples": int(train_examples),
                    "label": setting_label(recipe, int(epochs), int(train_examples)),
                    "slug": setting_slug(recipe, int(epochs), int(train_examples)),
                    "agreement": json_rows(same(agreement)),
                    "ensembles": json_rows(same(d).sort_values(["size", "latency_max_ms"])),
                    "against_singles": json_rows(same(versus)), "proxy_picks": json_rows(same(picks)),
                    "gain_over_best_member": gain_summary(gains) if len(gains) else None,
                    "members": json_rows(same(members))})
    return out


def agreement_line(setting: dict[str, Any]) -> str:
    """How well the proxy ranked what was retrained, over ensembles of all sizes, each size, members:
    "ensembles 0.62, 0.47 (n 19); size 1 ...", Spearman then Kendall ("-" where undefined)."""
    f = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
    return "; ".join(f"{agreement_scope(a)} {f(a['spearman'])}, {f(a['kendall'])} (n {a['n']})"
                     for a in setting["agreement"])


def picks_line(setting: dict[str, Any]) -> str:
    """Per size: the proxy's first choice among the retrained, after retraining, against the best."""
    parts = []
    for p in setting["proxy_picks"]:
        same = p["pick_ensemble_id"] == p["best_ensemble_id"]  # sample numbers repeat: "pool"
        parts.append(f"size {p['size']} #{p['pick_sample']} {100 * p['pick_test_accuracy']:.2f}%"
                     + (" (the best)" if same else f" (best #{p['best_sample']} {100 * p['best_test_accuracy']:.2f}%, "
                                                    f"{100 * p['regret']:.2f} pts lost)"))
    return "the proxy's first choice per size, after retraining: " + "; ".join(parts)


def versus_line(setting: dict[str, Any]) -> str | None:
    """How many retrained ensembles of each size beat every retrained single at no higher max latency."""
    versus = pd.DataFrame(setting["against_singles"])
    if versus.empty:
        return None
    parts = []
    for n, d in versus.groupby("size"):
        compared = d[d["margin"].notna()]
        parts.append(f"{int(n)} members: {int((compared['margin'] > 0).sum())} of {len(compared)}"
                     + (f" ({len(d) - len(compared)} faster than every retrained single)" if len(compared) < len(d)
                        else ""))
    return ("ensembles above every retrained single model (one-member samples, members) at no higher max latency: "
            + "; ".join(parts))


def print_retrained(report: list[dict[str, Any]]) -> None:
    """`nas show`'s retraining section: per setting, agreement, the comparison with singles and a table."""
    for s in report:
        n = len(s["ensembles"])
        print(f"retrained ({s['label']}; {counted(n, 'ensemble')}, test accuracy):")
        print(f"  proxy -> test rank agreement (Spearman, Kendall tau-b): {agreement_line(s)}")
        print(f"  {picks_line(s)}")
        line = versus_line(s)
        if line:
            print(f"  {line}")
        if s.get("gain_over_best_member"):
            first, second = gain_line(s["gain_over_best_member"])
            print(f"  ensembles of two or more, test accuracy: {first}\n    {second}")
        versus = {v["ensemble_id"]: v for v in s["against_singles"]}  # sample numbers repeat: "pool"
        print(f"  {'size':>4}{'sample':>8}{'proxy val':>11}{'test':>8}{'best member':>13}{'max ms':>8}"
              f"   vs best single at no higher latency")
        for e in s["ensembles"]:
            v = versus.get(e["ensemble_id"])
            against = "" if v is None else ("(none as fast)" if v["margin"] is None else
                                           f"{100 * v['margin']:+.2f} pts ({v['single']}, "
                                           f"{v['single_latency_ms']:.2f} ms)")
            print(f"  {e['size']:>4}{str(e['sample']):>8}{e['proxy_val_accuracy']:>11.4f}{e['test_accuracy']:>8.4f}"
                  f"{e['best_member_test_accuracy']:>13.4f}{e['latency_max_ms']:>8.2f}   {against}".rstrip())


def print_agreement(run: RunDir, setting: tuple[str, int, int]) -> None:
    """After `nas retrain`: the setting's agreement line (with three or more ensembles retrained)."""
    for s in retrained_report(run):
        if s["slug"] == setting_slug(*setting) and len(s["ensembles"]) >= 3:
            print(f"proxy -> test rank agreement (Spearman, Kendall tau-b): {agreement_line(s)}")


def retrain_plots(run: RunDir, records: list[dict[str, Any]] | None = None, title: str = "") -> dict[str, Path]:
    """One figure per retraining setting, ``plots/retrain-SLUG.png`` (none without retrains);
    ``records`` as for ``retrained_report``."""
    from nas.plots import retrain_figure

    out = {}
    for s in retrained_report(run, records):
        (run.path / "plots").mkdir(exist_ok=True)
        path = run.path / "plots" / f"retrain-{s['slug']}.png"
        ensembles = pd.DataFrame(s["ensembles"])
        out[f"retrain {s['slug']}"] = retrain_figure(
            ensembles, pd.DataFrame(s["members"], columns=MEMBER_COLUMNS), s["agreement"], path,
            title or f"Retrained ({s['label']}): proxy against test accuracy, the fronts after retraining, "
                     "and what ensembles gain over their best member", gains=retrained_gains(ensembles))
    return out
