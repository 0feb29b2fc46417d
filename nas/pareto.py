"""Pareto fronts per ensemble size: accuracy up, maximum member latency down."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

FRONT_COLUMNS = ["size", "sample", "accuracy", "latency_max_ms", "latency_sum_ms", "flops", "params", "reward",
                 "ensemble_id"]


def records_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    rows = [{k: r.get(k) for k in FRONT_COLUMNS + ["status", "best_member_accuracy", "accuracy_arithmetic"]}
            for r in records]
    return pd.DataFrame(rows, columns=FRONT_COLUMNS + ["status", "best_member_accuracy", "accuracy_arithmetic"])


def json_rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    """The frame's rows as dicts with None where a value is missing (strict JSON has no NaN)."""
    return df.astype(object).where(df.notna(), None).to_dict("records")


def pareto_front(df: pd.DataFrame) -> pd.DataFrame:
    """Rows not dominated by another (at least as accurate and as fast, better in one), by latency."""
    ok = df[(df["status"] == "ok") & df["accuracy"].notna()].sort_values(["latency_max_ms", "accuracy"],
                                                                          ascending=[True, False])
    keep, best = [], -1.0
    for idx, row in ok.iterrows():
        if row["accuracy"] > best:
            keep.append(idx)
            best = row["accuracy"]
    return ok.loc[keep]


def fronts(records: list[dict[str, Any]]) -> pd.DataFrame:
    df = records_frame(records)
    parts = [pareto_front(df[df["size"] == n]) for n in sorted(df["size"].unique())]
    return pd.concat(parts) if parts else df.iloc[0:0]


def write_fronts(records: list[dict[str, Any]], path: Path) -> pd.DataFrame:
    f = fronts(records)
    f[FRONT_COLUMNS].to_csv(path, index=False)
    return f


def most_accurate_within(records: list[dict[str, Any]], size: int, budget_ms: float) -> dict[str, Any] | None:
    """The most accurate successful ``size``-member record whose max member latency is within
    ``budget_ms`` (the first in record order among equals), or None."""
    fits = [r for r in records if r["size"] == size and r.get("status") == "ok" and r.get("accuracy") is not None
            and r["latency_max_ms"] <= budget_ms]
    return max(fits, key=lambda r: r["accuracy"], default=None)


def best_within(records: list[dict[str, Any]], budgets_ms: list[float]) -> pd.DataFrame:
    """Figure 3 read at fixed latencies: per budget and size, the most accurate successful ensemble
    whose max member latency is within the budget (accuracy and sample None where none is)."""
    rows = []
    for budget in budgets_ms:
        for n in sorted({int(r["size"]) for r in records}):
            best = most_accurate_within(records, n, budget)
            rows.append({"budget_ms": float(budget), "size": n,
                         "accuracy": None if best is None else float(best["accuracy"]),
                         "sample": None if best is None else int(best["sample"]),
                         "latency_max_ms": None if best is None else float(best["latency_max_ms"])})
    return pd.DataFrame(rows, columns=["budget_ms", "size", "accuracy", "sample", "latency_max_ms"])
