"""`nas report RUN`: one Markdown page of a search run, to read in a browser or commit beside its
results: how it was launched, where it ran, Figure 3 and the other plots, the per-size table, the
best accuracy within max-latency budgets, each size's Pareto front with its members'
architectures, the ensembles' gain over their best member, what the members cost, the failures,
and the retraining results. Everything comes from `nas.run_summary.summarize` (what `nas show`
prints) and the figures `nas plot` draws, so the page and the terminal agree."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from nas.diversity import gain_line, rho_text
from nas.retrained_cli import agreement_line, picks_line, versus_line
from nas.run_summary import data_label, members_line, pace_line, summarize
from nas.store import RunDir
from nas.words import counted
from search_space.errors import UserError


def pct(x: Any, digits: int = 1) -> str:
    return "-" if x is None or x != x else f"{100 * x:.{digits}f}%"  # x != x: NaN


def _ms(x: Any) -> str:
    return "-" if x is None or x != x else f"{x:.2f}"


def count(n: Any) -> str:
    return f"{n:,}" if isinstance(n, int) else ""


def utc(t: float | None) -> str:
    return "-" if t is None else dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def duration(seconds: float) -> str:
    minutes = seconds / 60
    return f"{seconds:.0f} s" if minutes < 2 else f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.1f} h"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], right: Sequence[bool] | None = None) -> list[str]:
    """A Markdown table; ``right``: per column, whether it aligns right (numbers). A '|' in a cell
    is escaped."""
    right = right or [False] * len(header)
    cell = lambda x: str(x).replace("|", "\\|")  # noqa: E731
    lines = ["| " + " | ".join(map(cell, header)) + " |",
             "|" + "|".join("---:" if r else "---" for r in right) + "|"]
    lines += ["| " + " | ".join(map(cell, row)) + " |" for row in rows]
    return lines


def image_lines(path: Path, out_dir: Path, alt: str) -> list[str]:
    """An image line with a path relative to the report, or nothing where the figure is missing."""
    return [f"![{alt}]({Path(os.path.relpath(path, out_dir)).as_posix()})", ""] if path.is_file() else []


def _sentence(text: str) -> str:
    """``text`` with a capital first letter (the CLI's lines start lower-case)."""
    return text[:1].upper() + text[1:]


def section(title: str, body: list[str]) -> list[str]:
    """A level-2 section, or nothing where it has no body."""
    return [f"## {title}", ""] + body if body else []


def _header(s: dict[str, Any], cfg: dict[str, Any]) -> list[str]:
    name = Path(s["run"]).resolve().name
    sizes = ", ".join(str(z["size"]) for z in s["sizes"])
    lines = [f"# Search run `{name}`", "",
             f"{data_label(s)}, {s['controller']} controller, ensemble sizes {sizes}: {s['samples']} samples "
             f"({s['samples_per_size']} per size planned)"
             + (f", on {'; '.join(s['devices'])}" if s["devices"] else "") + "."]
    launched = [l["time"] for l in s["launches"] if l.get("time")]
    if launched and s["last_sample_time"] is not None:
        span = s["last_sample_time"] - min(launched)
        lines[-1] += (f" First launched {utc(min(launched))}; the last record came {duration(span)} later"
                      + (" (the time between a stop and a resume included)." if len(launched) > 1 else "."))
    elif s["first_sample_time"] is not None:
        span = s["last_sample_time"] - s["first_sample_time"]
        lines[-1] += (f" Samples recorded from {utc(s['first_sample_time'])} to {utc(s['last_sample_time'])} "
                      f"({duration(span)} between the first record and the last).")
    t, r = cfg.get("trainer", {}), cfg.get("reward", {})
    epochs = t.get("epochs", "?")
    lines += ["", f"Each member trains for {counted(epochs, 'proxy epoch')} at batch "
                  f"{t.get('batch_size', '?')}, learning rate {t.get('learning_rate', '?')} ({t.get('schedule', '?')}, "
                  f"{t.get('optimizer', '?')}), on {count(cfg.get('train_examples')) or 'all the'} training images, "
                  f"and is scored on {count(cfg.get('val_size')) or '?'} held-out ones. Reward: accuracy x (max "
                  f"member latency / {s['target_ms']:g} ms)^w, w = {r.get('alpha', '?')} within the target, "
                  f"{r.get('beta', '?')} beyond it; latency on {r.get('device', 'pixel1')}.", ""]
    return lines + launch_lines(s["launches"])


def launch_lines(launches: list[dict[str, Any]]) -> list[str]:
    """The run's command lines (``RunDir.launches``) as a code block, or nothing for older runs."""
    if not launches:
        return []
    return (["Launched as:", "", "```"] + [f"{l['command']}    # {utc(l.get('time'))}" for l in launches]
            + ["```", ""])


def _sizes(s: dict[str, Any]) -> list[str]:
    rows = [[z["size"], z["samples"], z["failed"], pct(z["best_accuracy"]), pct(z["median_accuracy"]),
             _ms(z["median_max_latency_ms"]), "-" if z["best_reward"] is None else f"{z['best_reward']:.3f}",
             z["front_points"],
             "-" if not z["progress_k"] else f"{pct(z['mean_accuracy_first'])} / {pct(z['mean_accuracy_last'])}"]
            for z in s["sizes"]]
    return ["## Per ensemble size", ""] + table(
        ["size", "samples", "failed", "best accuracy", "median accuracy", "median max latency ms", "best reward",
         "front points", "mean accuracy, first / last third"], rows, [True] * 9) + [""]


def _within(s: dict[str, Any]) -> list[str]:
    if not s["within_budget"]:
        return []
    sizes = sorted({w["size"] for w in s["within_budget"]})
    budgets = sorted({w["budget_ms"] for w in s["within_budget"]})
    cell = {(w["budget_ms"], w["size"]): w for w in s["within_budget"]}
    rows = []
    for b in budgets:
        row = [f"{b:.2f}"]
        for n in sizes:
            w = cell.get((b, n))
            row.append("-" if w is None or w["accuracy"] is None else f"{pct(w['accuracy'])} (#{int(w['sample'])})")
        rows.append(row)
    return (["## Best accuracy within a max member latency", "",
             f"Figure 3 read across (sample numbers as on the figure; reward target {s['target_ms']:g} ms):", ""]
            + table(["budget ms"] + [counted(n, "member") for n in sizes], rows,
                    [True] * (len(sizes) + 1)) + [""])


def _fronts(s: dict[str, Any]) -> list[str]:
    """Each size's front, one row per ensemble naming its members (m1, m2, ...), then each distinct
    member once with its architecture: front ensembles share members (a pair's front is often one
    member with several partners), and a block string runs to some 200 characters."""
    labels: dict[str, str] = {}
    members: dict[str, dict[str, Any]] = {}
    used: dict[str, list[str]] = {}
    rows = []
    for p in s["front"]:
        names = []
        for m in p["members"]:
            key = m["key"]  # the member cache's key (front_point), one per trained member
            if key not in labels:
                labels[key] = f"m{len(labels) + 1}"
                members[key] = m
            names.append(labels[key])
            used.setdefault(key, []).append(f"{p['size']} #{p['sample']}")
        rows.append([p["size"], f"#{p['sample']}", pct(p["accuracy"]), _ms(p["latency_max_ms"]),
                     f"{p['reward']:.3f}", " + ".join(names), " + ".join(pct(m["val_accuracy"]) for m in p["members"])])
    member_rows = [[labels[k], m["resolution"], _ms(m["latency_ms"]), pct(m["val_accuracy"]), ", ".join(used[k]),
                    f"stem {m['stem_filters']}/s{m['stem_stride']}, head {m['head_filters']}: `{m['blocks']}`"]
                   for k, m in members.items()]
    return (["## Pareto fronts", "",
             "Each size's front (accuracy up, max member latency down), its members named as in the table "
             "after it.", ""]
            + table(["size", "sample", "accuracy", "max ms", "reward", "members", "their accuracy"], rows,
                    [True] * 5 + [False, False])
            + ["", f"The fronts' {len(members)} distinct members, architectures as block strings (`nas describe` "
               "and `nas latency` read them; `nas show RUN --export DIR` writes each front ensemble as a spec "
               "file); accuracy is the member's own on the validation images:", ""]
            + table(["member", "px", "ms", "accuracy", "on the fronts of", "architecture"], member_rows,
                    [False, True, True, True, False, False]) + [""])


def _pool(run: RunDir, plots: Path, out_dir: Path) -> list[str]:
    """`nas pool`'s fronts (RUN/pool_fronts.csv), where it has run."""
    path = run.path / "pool_fronts.csv"
    if not path.is_file():
        return []
    f = pd.read_csv(path)
    rows = [[int(r["size"]), pct(r["accuracy"]), _ms(r["latency_max_ms"]), f"{r['reward']:.3f}",
             pct(r["best_member_accuracy"]), "-" if pd.isna(r["searched_sample"]) else f"#{int(r['searched_sample'])}"]
            for _, r in f.iterrows()]
    return section("The member pool's fronts", [
        "Ensembles recombined from every member the search trained (`nas pool`; no training), chosen on the same "
        "validation images they are scored on, so optimistic.", ""]
        + table(["size", "accuracy", "max ms", "reward", "best member", "searched as"], rows, [True] * 6) + [""]
        + image_lines(plots / "pool.png", out_dir, "the searched fronts and the member pool's") + _holdout(run))


def _holdout(run: RunDir) -> list[str]:
    """`nas pool --holdout`'s means (RUN/pool_holdout.csv), where it has run."""
    from nas.pool import holdout_summary

    path = run.path / "pool_holdout.csv"
    if not path.is_file():
        return []
    h = holdout_summary(pd.read_csv(path))
    pts = lambda x: "-" if x is None or pd.isna(x) else f"{100 * x:+.1f}"  # noqa: E731
    rows = [[int(r["size"]), pct(r["pool_score_accuracy"], 2), pct(r.get("searched_score_accuracy"), 2),
             pts(r.get("pool_lead")), "-" if pd.isna(r.get("pool_lead_std")) else f"{100 * r['pool_lead_std']:.1f}",
             pts(r.get("pool_within_lead")), pts(r["pool_optimism"]), pts(r.get("searched_optimism"))]
            for r in h.to_dict("records")]
    return ([f"Held out (`nas pool --holdout`, {int(h['splits'].iloc[0])} random halvings of the validation images): "
             "each pick chosen on one half, scored on the other; means, leads and optimism in accuracy points.", ""]
            + table(["size", "pool pick", "searched pick", "pool lead", "sd", "lead within the searched pick's ms",
                     "optimism: pool", "searched"], rows, [True] * 8) + [""])


def _retrained_pools(run: RunDir, plots: Path, out_dir: Path) -> list[str]:
    """`nas pool --retrained`'s verdicts per setting and cost (RUN/pool_retrained_SETTING_COST.csv),
    where it has run."""
    from nas.pool_budget import COSTS, budget_summary, budget_verdicts

    rows, images = [], []
    for path in sorted(run.path.glob("pool_retrained_*_*.csv")):
        slug, cost = path.stem[len("pool_retrained_"):].rsplit("_", 1)
        if cost not in COSTS:
            continue
        summary = budget_summary(pd.read_csv(path))
        singles = summary[summary["size"] == 1]["score_accuracy"]
        for v in budget_verdicts(summary):
            best = summary[summary["size"] == v["size"]]["score_accuracy"].max()
            rows.append([slug, cost, v["size"], v["budgets"], v["ahead"], v["behind"], f"{100 * v['median_lead']:+.2f}",
                         pct(best, 2), pct(singles.max(), 2)])
        images += image_lines(plots / f"{path.stem}.png", out_dir, f"retrained pool, {slug}, {cost} budget")
    if not rows:
        return []
    return section("Retrained members recombined, per budget", [
        "Every member `nas retrain` finished in a setting, pooled (`nas pool --retrained`): under each cost budget "
        "the most accurate single model and ensemble of each size, chosen on one half of the test images and scored "
        "on the other, over random halvings. Counts of budgets within the pooled models' own costs; leads in points.",
        ""] + table(["setting", "cost", "size", "budgets", "ahead in every halving", "behind in every halving",
                     "median lead", "best held out", "best single held out"], rows,
                    [False, False] + [True] * 7) + [""] + images)


def _seeds_pools(run: RunDir, plots: Path, out_dir: Path) -> list[str]:
    """`nas pool --retrained` with several reseeded settings: one network's seeds against different
    networks per budget (RUN/pool_seeds_SETTING_xN_COST.csv), where it has run."""
    from nas.pool_budget import COSTS
    from nas.pool_seeds import seeds_summary, seeds_verdicts

    rows, images = [], []
    for path in sorted(run.path.glob("pool_seeds_*_x*_*.csv")):
        slug, settings, cost = path.stem[len("pool_seeds_"):].rsplit("_", 2)
        if cost not in COSTS or not settings[1:].isdigit():
            continue
        summary = seeds_summary(pd.read_csv(path))
        for v in seeds_verdicts(summary):
            best = {kind: summary[(summary["size"] == v["size"]) & (summary["kind"] == kind)]["score_accuracy"].max()
                    for kind in ("one network", "different networks")}
            rows.append([slug, settings[1:], cost, v["size"], v["budgets"], v["ahead"], v["behind"],
                         f"{100 * v['median_lead']:+.2f}", pct(best["one network"], 2),
                         pct(best["different networks"], 2)])
        images += image_lines(plots / f"{path.stem}.png", out_dir, f"seeds against networks, {slug}, {cost} budget")
    if not rows:
        return []
    return section("One network's seeds against different networks, per budget", [
        "Each member retrained in several settings that differ only in the seed (`nas retrain --reseed`), pooled "
        "(`nas pool --retrained` with those settings): under each cost budget the most accurate ensemble of one "
        "network's seeds and of different networks, chosen on one half of the test images and scored on the other, "
        "over random halvings. Counts of budgets within the models' own costs where both have a pick; different "
        "networks' lead over one network's seeds in points.",
        ""] + table(["first setting", "settings", "cost", "size", "budgets", "networks ahead in every halving",
                     "behind in every halving", "median lead", "best seeds held out", "best networks held out"],
                    rows, [False, True, False] + [True] * 7) + [""] + images)


def _seeds(run: RunDir, plots: Path, out_dir: Path) -> list[str]:
    """`nas seeds`' copies of searched members (RUN/seeds.csv), where it has run."""
    path = run.path / "seeds.csv"
    if not path.is_file():
        return []
    f = pd.read_csv(path)
    rows = [[f"#{int(r['sample'])}", int(r["n"]), pct(r["accuracy"]), _ms(r["latency_max_ms"]),
             f"{r['disagreement']:.3f}"] for _, r in f.iterrows()]
    return section("Copies of one member against the searched ensembles", [
        "n copies (seeds) of a searched one-member sample's member, geometric mean (`nas seeds`).", ""]
        + table(["sample", "copies", "accuracy", "max ms", "disagreement"], rows, [True] * 5) + [""]
        + image_lines(plots / "seeds.png", out_dir, "copies of searched members"))


def _diversity(s: dict[str, Any], plots: Path, out_dir: Path) -> list[str]:
    if not s["diversity"]:
        return []
    rows = [[d["size"], d["n"], d["above_best"], f"{100 * d['median_gain']:+.1f}", f"{100 * d['median_spread']:.1f}",
             rho_text(d["spearman_gain_spread"]), f"{d['median_disagreement']:.3f}",
             rho_text(d["spearman_gain_disagreement"])] for d in s["diversity"]]
    return (["## Ensembles against their best member", "",
             "Gain: the ensemble's accuracy (geometric mean) minus its best member's; spread: best minus weakest "
             "member; both in accuracy points on the validation split.", ""]
            + table(["size", "ensembles", "above their best member", "median gain", "median spread",
                     "Spearman gain~spread", "median disagreement", "Spearman gain~disagreement"], rows, [True] * 8)
            + [""] + image_lines(plots / "diversity.png", out_dir, "gain over the best member"))


def _members(s: dict[str, Any]) -> list[str]:
    lines = ["## Members and failures", ""]
    if s["members"]["trained"]:
        lines += [_sentence(members_line(s["members"])) + ".", ""]
    pace = pace_line(s["pace"])
    if pace:
        lines += [_sentence(pace) + ".", ""]
    if s["failures"]:
        lines += table(["size", "sample", "reason"], [[f["size"], f"#{f['sample']}", f["reason"]] for f in s["failures"]],
                       [True, True, False]) + [""]
    else:
        lines += ["No sample failed.", ""]
    return lines


def _retrained(s: dict[str, Any], plots: Path, out_dir: Path) -> list[str]:
    lines = []
    for r in s["retrained"]:
        lines += [f"## Retrained: {r['label']}", "",
                  f"- Proxy against test rank agreement (Spearman, Kendall tau-b): {agreement_line(r)}",
                  f"- {_sentence(picks_line(r))}"]
        versus = versus_line(r)
        if versus:
            lines.append(f"- {_sentence(versus)}")
        if r.get("gain_over_best_member"):
            first, second = gain_line(r["gain_over_best_member"])
            lines.append(f"- Ensembles of two or more, test accuracy: {first}; {second}")
        lines.append("")
        rows = [[e["size"], e["sample"] if e["sample"] == "pool" else f"#{e['sample']}", pct(e["proxy_val_accuracy"]),
                 pct(e["test_accuracy"], 2), pct(e["best_member_test_accuracy"], 2), _ms(e["latency_max_ms"])]
                for e in r["ensembles"]]
        lines += table(["size", "sample", "proxy validation", "test", "best member test", "max ms"], rows,
                       [True] * 6) + [""]
        lines += image_lines(plots / f"retrain-{r['slug']}.png", out_dir, f"retrained, {r['label']}")
    return lines


def markdown(run: RunDir, s: dict[str, Any], cfg: dict[str, Any], out_dir: Path) -> str:
    """The report of ``run`` (config ``cfg``) from its summary ``s`` (``summarize(run, front=True)``),
    with image paths relative to ``out_dir``, where the page will live."""
    plots = run.path / "plots"
    lines = (_header(s, cfg) + image_lines(plots / "figure3.png", out_dir, "Figure 3: accuracy against max member latency")
             + _sizes(s) + _within(s) + _fronts(s) + _pool(run, plots, out_dir) + _seeds(run, plots, out_dir)
             + section("Search progress", image_lines(plots / "curves.png", out_dir, "reward and entropy per update"))
             + _diversity(s, plots, out_dir) + _members(s) + _retrained(s, plots, out_dir)
             + _retrained_pools(run, plots, out_dir) + _seeds_pools(run, plots, out_dir))
    linked = {line[line.index("](") + 2:-1] for line in lines if line.startswith("![")}
    others = [image_lines(path, out_dir, path.stem) for path in sorted(plots.glob("*.png"))
              if Path(os.path.relpath(path, out_dir)).as_posix() not in linked]  # `nas pool`'s, `nas seeds`' ...
    lines += section("More figures", [line for image in others for line in image]) + config_lines(cfg)
    return "\n".join(lines)


def config_lines(cfg: dict[str, Any]) -> list[str]:
    """The run's config as JSON, folded away at the end of a page."""
    return ["<details><summary>Config (config.json)</summary>", "", "```json", json.dumps(cfg, indent=1, sort_keys=True),
            "```", "", "</details>", ""]


def write_report(run: RunDir, out: Path | None = None, budgets: list[float] | None = None, plots: bool = True) -> Path:
    """Draw the run's figures (unless ``plots`` is False) and write its report, by default
    RUN/report.md; returns the path. A scaling study's directory gets the study's page
    (``nas.study_report``). Raises UserError for a run without records or an unwritable
    ``out``."""
    from nas.search_cli import check_writable, make_plots
    from nas.store import is_study
    from nas.study_report import study_markdown

    out = run.path / "report.md" if out is None else out
    cfg = run.read_config()
    if is_study(cfg):  # a scaling study: its figure is the one `nas study` drew
        text = study_markdown(run, cfg, out.parent)
        check_writable(out.parent, "--out")
        return _write(out, text)
    s = summarize(run, budgets, front=True)
    if not s["samples"]:
        raise UserError(f"{run.path}: no records yet")
    check_writable(out.parent, "--out")  # before drawing anything
    if plots:
        make_plots(run)
    return _write(out, markdown(run, s, cfg, out.parent))


def _write(out: Path, text: str) -> Path:
    try:
        out.write_text(text)
    except OSError as e:
        raise UserError(f"--out {out}: cannot write: {e.strerror}") from None
    return out


def run_report_cmd(args: argparse.Namespace) -> int:
    path = write_report(RunDir(args.run), Path(args.out) if args.out else None, args.budgets, plots=not args.no_plots)
    print(f"report: {path}")
    return 0
