"""How far can a search's proxy be trusted? Its members trained again under variants of the proxy,
against the accuracy `nas retrain` measured after longer training.

    python -m experiments.check_proxy_fidelity runs/search_cpu --setting fast4-n10000 \\
        --variant seed+100 --out runs/fidelity
    python -m experiments.check_proxy_fidelity runs/search_cpu --setting fast4-n10000 \\
        --variant epochs2 --set trainer.compile_unit=layer --out runs/fidelity

The members are the distinct members `nas retrain` retrained in the chosen setting (its test
accuracy is the reference). Each variant trains every one of them once more on the search's own
data and split and scores it on the search's validation images:

- ``seed+K``: the proxy unchanged, each member's seed plus K (initial weights, batch order,
  augmentation draws): the proxy's test-retest reliability, which bounds how well it can rank
  (``seed+0`` retrains the search's own members: a check that the setup is the search's, which on
  the machine and packages the search ran on reproduces its accuracies);
- ``epochsE``: the proxy with E epochs instead of the search's (warm-up unchanged): whether a
  longer proxy ranks closer to longer training;
- either of them followed by settings, ``seed+0,trainer.zero_init_residual=true``: the proxy with a
  changed recipe. Where the variant without the settings ran too, the summary compares the two
  member by member (``vs_base``: their rank correlation, the mean change in validation accuracy,
  how many members rose and fell, and the change in Spearman with test accuracy with a 95%
  interval from resampling the members), which on one machine isolates the settings' effect from
  the machine's rounding.

``--set`` changes the config further for every variant (e.g. ``trainer.compile_unit=layer``,
which changes only rounding). Rows are appended to ``OUT/VARIANT.csv`` as members finish, so an
interrupted run continues where it stopped; the summary (Spearman rank correlations) is printed
and written to ``OUT/summary.json``, and drawn in ``OUT/fidelity.png``. The run's persistent compilation cache is used: a
``seed+K`` variant of a whole-program search compiles nothing new.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from search_space.errors import UserError

COLUMNS = ["member", "seed", "variant_seed", "val_accuracy", "status", "reason", "seconds"]


def parse_variant(name: str) -> tuple[str, int]:
    """"seed+K" -> ("seed", K); "epochsE" -> ("epochs", E), either with or without settings after a
    comma (``split_variant``); anything else is a UserError."""
    base, _ = split_variant(name)
    m = re.fullmatch(r"seed\+(\d+)|epochs(\d+)", base)
    if not m or (m.group(2) is not None and int(m.group(2)) < 1):
        raise UserError(f"--variant {name!r}: expected seed+K or epochsE (K >= 0, E >= 1), "
                        "optionally followed by ,KEY=VALUE settings")
    return ("seed", int(m.group(1))) if m.group(1) else ("epochs", int(m.group(2)))


def split_variant(name: str) -> tuple[str, list[str]]:
    """"seed+0,trainer.zero_init_residual=true" -> ("seed+0", ["trainer.zero_init_residual=true"])."""
    base, *settings = name.split(",")
    if "/" in name or any("=" not in s for s in settings):
        raise UserError(f"--variant {name!r}: settings after the first comma must be KEY=VALUE, "
                        "e.g. seed+0,trainer.zero_init_residual=true (and no '/')")
    return base, settings


def retrained_members(run: Any, slug: str) -> pd.DataFrame:
    """The distinct members retrained in setting ``slug``, with their spec (a dict), seed, search
    proxy validation accuracy and test accuracy after retraining."""
    from nas.retrained import member_frame, setting_slug

    records = run.records()
    members = member_frame(run.retrains(), records)
    slugs = members.apply(lambda r: setting_slug(r["recipe"], int(r["epochs"]), int(r["train_examples"])), axis=1)
    if members.empty or slug not in set(slugs):
        known = ", ".join(sorted(set(slugs))) or "none"
        raise UserError(f"--setting {slug}: not a retraining setting of {run.path} (settings: {known})")
    chosen = members[slugs == slug].copy()
    specs = {m["id"]: m["spec"] for r in records for m in r.get("members") or []}
    chosen["spec"] = chosen["member"].map(specs)
    return chosen.reset_index(drop=True)


def train_variant(run: Any, config: Any, members: pd.DataFrame, variant: str, out: Path,
                  log=lambda s: print(s, file=sys.stderr, flush=True)) -> pd.DataFrame:
    """Train each member under ``variant`` (rows already in ``out`` are kept, not retrained)."""
    from nas.config import apply_overrides, load_config_dataset
    from nas.evaluators import MemberJob, make_evaluator, member_summary
    from nas.search import enable_compilation_cache, member_key, search_split
    from search_space.spec import from_dict as spec_from_dict

    kind, value = parse_variant(variant)
    config = apply_overrides(config, split_variant(variant)[1])
    trainer = dataclasses.replace(config.trainer, epochs=value) if kind == "epochs" else config.trainer
    offset = value if kind == "seed" else 0
    done = pd.read_csv(out) if out.is_file() else pd.DataFrame(columns=COLUMNS)
    # a member is its id and seed (the same architecture may sit at two positions, two seeds)
    finished = set(zip(done["member"], done["seed"].astype(int)))
    todo = members[[(m, int(sd)) not in finished for m, sd in zip(members["member"], members["seed"])]]
    if todo.empty:
        return done
    enable_compilation_cache(run)
    split = search_split(config, load_config_dataset(config))
    jobs, seeds = [], {}
    for r in todo.itertuples():
        spec = spec_from_dict(r.spec)
        seed = int(r.seed) + offset
        jobs.append(MemberJob(member_key(spec, split, trainer, seed), spec, seed))
        seeds[jobs[-1].key] = (r.member, int(r.seed))
    log(f"{variant}: training {len(jobs)} members ({len(done)} done before)")
    start = time.perf_counter()
    evaluator = make_evaluator()
    try:
        for i, (job, res) in enumerate(evaluator.evaluate_many(jobs, split, trainer), 1):
            member, seed = seeds[job.key]
            row = {"member": member, "seed": seed, "variant_seed": job.seed, "val_accuracy": res.val_accuracy,
                   "status": "ok" if res.ok else "failed", "reason": res.reason,
                   "seconds": round(member_summary(job, res)["wall_s"], 1)}
            pd.DataFrame([row], columns=COLUMNS).to_csv(out, mode="a", header=not out.is_file(), index=False)
            log(f"  [{i}/{len(jobs)}, {time.perf_counter() - start:.0f} s] {member[:10]} seed {job.seed}: "
                f"{res.val_accuracy:.4f}" + ("" if res.ok else f" failed: {res.reason}"))
    finally:
        evaluator.close()
    return pd.read_csv(out)


def summarize(members: pd.DataFrame, variants: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """Spearman rank correlations over the members every variant trained successfully: the search's
    proxy against test accuracy, each variant against the proxy and against test accuracy, and the
    mean of the proxy and each seed variant (a two-seed proxy) against test accuracy."""
    from nas.retrained import spearman

    df = members[["member", "seed", "proxy_val_accuracy", "test_accuracy"]].astype({"seed": int})
    for name, v in variants.items():
        ok = v[v["status"] == "ok"][["member", "seed", "val_accuracy"]].rename(columns={"val_accuracy": name})
        df = df.merge(ok.astype({"seed": int}), on=["member", "seed"], how="inner")
    out: dict[str, Any] = {"members": int(len(df)),
                           "proxy_vs_test": spearman(df["proxy_val_accuracy"], df["test_accuracy"]), "variants": {}}
    for name in variants:
        row = {"vs_proxy": spearman(df[name], df["proxy_val_accuracy"]),
               "vs_test": spearman(df[name], df["test_accuracy"]),
               "mean_val_accuracy": float(df[name].mean()) if len(df) else None,
               "proxy_mean_val_accuracy": float(df["proxy_val_accuracy"].mean()) if len(df) else None}
        if name.startswith("seed"):
            row["two_seed_mean_vs_test"] = spearman((df[name] + df["proxy_val_accuracy"]) / 2, df["test_accuracy"])
        base, settings = split_variant(name)
        if settings and base in variants:
            change = df[name] - df[base]
            row["vs_base"] = {"base": base, "spearman": spearman(df[name], df[base]),
                              "mean_change": float(change.mean()) if len(df) else None,
                              "median_change": float(change.median()) if len(df) else None,
                              "rose": int((change > 0).sum()), "fell": int((change < 0).sum()),
                              **_test_rank_gain(df[name], df[base], df["test_accuracy"])}
        out["variants"][name] = row
    return out


def _test_rank_gain(variant: pd.Series, base: pd.Series, test: pd.Series, resamples: int = 2000,
                    seed: int = 0) -> dict[str, Any]:
    """How much better ``variant`` ranks members against test accuracy than ``base`` does (the
    difference of their Spearman correlations), with a 95% interval from resampling the members
    (paired: both proxies see the same resample; seeded, so the summary is reproducible)."""
    from nas.retrained import spearman

    v, b, t = (np.asarray(x, float) for x in (variant, base, test))

    def gain(i: np.ndarray) -> float | None:
        sv, sb = spearman(v[i], t[i]), spearman(b[i], t[i])
        return None if sv is None or sb is None else sv - sb

    point = gain(np.arange(len(t)))
    rng = np.random.default_rng(seed)
    draws = [g for g in (gain(rng.integers(0, len(t), len(t))) for _ in range(resamples)) if g is not None]
    if point is None or len(draws) < resamples // 2:
        return {"vs_test_gain": point, "vs_test_gain_95": None}
    return {"vs_test_gain": point, "vs_test_gain_95": [float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))]}


def plot(members: pd.DataFrame, variants: dict[str, pd.DataFrame], summary: dict[str, Any], path: Path) -> Path:
    """Left: each variant's validation accuracy against the search's proxy, member by member (the
    diagonal: the same accuracy). Right: the proxy and each variant against test accuracy after
    retraining. Spearman correlations in the legends."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6))
    right.scatter(100 * members["proxy_val_accuracy"], 100 * members["test_accuracy"], s=16, color="0.3",
                  label=f"the search's proxy (Spearman {summary['proxy_vs_test']:.2f})")
    colors = ["tab:orange", "tab:green", "tab:purple", "tab:red"]
    for (name, v), c in zip(variants.items(), colors):
        d = members.astype({"seed": int}).merge(v[v["status"] == "ok"].astype({"seed": int}), on=["member", "seed"])
        s = summary["variants"][name]
        left.scatter(100 * d["proxy_val_accuracy"], 100 * d["val_accuracy"], s=16, color=c,
                     label=f"{name} (Spearman {s['vs_proxy']:.2f})")
        right.scatter(100 * d["val_accuracy"], 100 * d["test_accuracy"], s=16, color=c,
                      label=f"{name} (Spearman {s['vs_test']:.2f})")
    lo, hi = left.get_xlim()
    left.plot([lo, hi], [lo, hi], color="0.6", lw=0.8)
    left.set_xlabel("the search's proxy: validation accuracy (%)")
    left.set_ylabel("the variant: validation accuracy (%)")
    right.set_xlabel("validation accuracy (%), proxy or variant")
    right.set_ylabel(f"test accuracy after retraining ({summary['setting']}, %)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{summary['members']} members of {summary['run']}: the proxy against its variants and "
                 "against longer training", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a search run directory with `nas retrain` results")
    p.add_argument("--setting", required=True, help="the retraining setting to compare with, e.g. fast4-n10000")
    p.add_argument("--variant", action="append", required=True,
                   help="seed+K or epochsE, optionally with settings: seed+0,trainer.zero_init_residual=true "
                        "(repeatable)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a further config override for every variant, e.g. trainer.compile_unit=layer")
    p.add_argument("--limit", type=int, default=0, help="only the first N members (0: all)")
    p.add_argument("--out", required=True, help="folder for VARIANT.csv and summary.json")
    args = p.parse_args(argv)
    from nas.config import apply_overrides, from_dict
    from nas.store import RunDir

    try:
        run = RunDir(Path(args.run))
        config = apply_overrides(from_dict(run.read_config()), args.set)
        for v in args.variant:  # a bad variant or setting is refused before anything trains
            parse_variant(v)
            try:
                apply_overrides(config, split_variant(v)[1])
            except UserError as e:
                raise UserError(f"--variant {v!r}: {str(e).removeprefix('--set ')}") from None
        members = retrained_members(run, args.setting)
    except UserError as e:
        print(f"check_proxy_fidelity: error: {e}", file=sys.stderr)
        return 2
    if args.limit:
        members = members.head(args.limit)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    variants = {v: train_variant(run, config, members, v, out / f"{v}.csv") for v in args.variant}
    summary = {"run": str(run.path), "setting": args.setting, "sets": args.set, **summarize(members, variants)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    if summary["members"] >= 3 and summary["proxy_vs_test"] is not None:
        plot(members, variants, summary, out / "fidelity.png")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
