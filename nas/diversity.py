"""What makes an ensemble better than its best member: its gain over that member against the members'
pairwise disagreement and against the spread of their own accuracies (`nas show`, and `nas plot`'s
diversity.png), on the search's proxy and, for retrained ensembles, after retraining.

The paper combines members by the geometric mean of their softmaxes, which helps when members are
wrong on different images (disagreement) but lets a weak member pull the product below a strong
one. The records hold both sides: every ensemble's accuracy, its best member's, each member's
``val_accuracy`` and the mean pairwise disagreement (the fraction of validation images on which two
members' top-1 predictions differ, averaged over pairs; nas/ensemble.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from nas.retrained import spearman

COLUMNS = ["size", "sample", "accuracy", "best_member_accuracy", "weakest_member_accuracy", "gain", "spread",
           "disagreement", "oracle_accuracy", "accuracy_arithmetic", "latency_max_ms"]
SUMMARY_COLUMNS = ["size", "n", "above_best", "median_gain", "median_disagreement", "median_spread",
                   "median_spread_above", "median_spread_rest", "spearman_gain_disagreement", "spearman_gain_spread",
                   "median_geometric_minus_arithmetic"]


def diversity_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per successful ensemble of two or more members: ``gain`` = ensemble accuracy minus its
    best member's, ``spread`` = best member's accuracy minus the weakest's (both as fractions)."""
    rows = []
    for r in records:
        members = r.get("members") or []
        accs = [m.get("val_accuracy") for m in members]
        if (r.get("status") != "ok" or r.get("accuracy") is None or len(members) < 2
                or any(a is None for a in accs) or r.get("disagreement") is None):
            continue
        best, weakest = max(accs), min(accs)
        rows.append({"size": int(r["size"]), "sample": int(r["sample"]), "accuracy": float(r["accuracy"]),
                     "best_member_accuracy": best, "weakest_member_accuracy": weakest,
                     "gain": float(r["accuracy"]) - best, "spread": best - weakest,
                     "disagreement": float(r["disagreement"]), "oracle_accuracy": r.get("oracle_accuracy"),
                     "accuracy_arithmetic": r.get("accuracy_arithmetic"), "latency_max_ms": r.get("latency_max_ms")})
    return pd.DataFrame(rows, columns=COLUMNS)


def _median(x: pd.Series) -> float | None:
    return float(x.median()) if len(x) else None


def gain_summary(d: pd.DataFrame) -> dict[str, Any]:
    """Ensembles with ``gain`` and ``spread`` columns: how many beat their best member
    (``above_best``, gain > 0), the median gain and spread, the median spread of those above their
    best member and of the rest, and Spearman's rank correlation of the gain with the spread (None
    with fewer than three ensembles or a constant side)."""
    above = d["gain"] > 0
    return {"n": int(len(d)), "above_best": int(above.sum()), "median_gain": _median(d["gain"]),
            "median_spread": _median(d["spread"]), "median_spread_above": _median(d["spread"][above]),
            "median_spread_rest": _median(d["spread"][~above]), "spearman_gain_spread": spearman(d["gain"], d["spread"])}


def diversity_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per ensemble size: ``gain_summary``, the median disagreement and its Spearman correlation with
    the gain, and the median of the geometric minus the arithmetic mean's accuracy."""
    rows = []
    for n, d in df.groupby("size", sort=True):
        geo_minus_arith = (d["accuracy"] - d["accuracy_arithmetic"].astype(float)).dropna()
        rows.append({"size": int(n), **gain_summary(d), "median_disagreement": float(d["disagreement"].median()),
                     "spearman_gain_disagreement": spearman(d["gain"], d["disagreement"]),
                     "median_geometric_minus_arithmetic": _median(geo_minus_arith)})
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def retrained_gains(ensembles: pd.DataFrame) -> pd.DataFrame:
    """Retrained ensembles of two or more members (``nas.retrained.retrain_frame`` rows of one
    setting) with their ``gain`` over their best member and ``spread``, both on the test set."""
    d = ensembles[ensembles["size"] >= 2].copy()
    d["gain"] = d["test_accuracy"] - d["best_member_test_accuracy"]
    d["spread"] = d["best_member_test_accuracy"] - d["weakest_member_test_accuracy"]
    return d


def rho_text(x: Any) -> str:
    """A correlation as "+0.14", or "-" where it is undefined: None, or NaN (how pandas stores None
    in a column that also holds numbers, e.g. one size's Spearman among others')."""
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:+.2f}"


def _points(x: Any) -> str:
    return "-" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{100 * x:.1f}"


def gain_line(s: dict[str, Any]) -> tuple[str, str]:
    """Two lines: "11 of 30 above their best member, median gain -0.4 points; Spearman of the gain
    with the members' accuracy spread -0.48" and "spread median 14.8 points, 8.0 for those above,
    16.1 for the rest"."""
    return (f"{s['above_best']} of {s['n']} above their best member, median gain {100 * s['median_gain']:+.1f} "
            f"points; Spearman of the gain with the members' accuracy spread {rho_text(s['spearman_gain_spread'])}",
            f"spread median {_points(s['median_spread'])} points, {_points(s['median_spread_above'])} for those "
            f"above, {_points(s['median_spread_rest'])} for the rest")


def summary_lines(summary: pd.DataFrame) -> list[str]:
    """`nas show`'s lines: two per size, gains and spreads in percentage points."""
    lines = []
    for s in summary.to_dict("records"):
        first, second = gain_line(s)
        lines += [f"  {s['size']} members: {first}",
                  f"    {second}; disagreement median {s['median_disagreement']:.3f}, Spearman with the gain "
                  f"{rho_text(s['spearman_gain_disagreement'])}"]
    return lines
