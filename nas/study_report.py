"""`nas report` for a scaling study's directory (`nas study`): one Markdown page with how it was
launched, where it ran, the scaling figure, accuracy and NLL against total FLOPs per architecture
and ensemble size, the paper's claim tested for each single model (the cheapest ensemble of smaller
models at least as accurate at fewer FLOPs, or the nearest miss), and each member's record."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from nas.report import config_lines, count, duration, image_lines, launch_lines, pct, section, table, utc
from nas.run_summary import devices
from nas.study import findings as study_findings
from nas.store import RunDir
from nas.words import counted
from search_space.errors import UserError


def _findings(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in rows:
        head = f"- **{r['single']}** ({pct(r['single_accuracy'], 2)}, {r['single_flops'] / 1e9:.3g} GFLOPs): "
        if r["beaten"]:
            out.append(head + f"matched by {r['ensemble']} at {pct(r['ensemble_accuracy'], 2)} with "
                              f"{r['flops_ratio']:.2f}x its FLOPs.")
        elif "closest" in r:
            out.append(head + f"no ensemble of smaller models is as accurate at fewer FLOPs; the nearest, "
                              f"{r['closest']}, is {100 * r['shortfall']:.2f} points short at "
                              f"{r['closest_flops_ratio']:.2f}x its FLOPs.")
        else:
            out.append(head + "no ensemble of smaller models at fewer FLOPs to compare with.")
    return out


def _members(records: list[dict[str, Any]]) -> list[str]:
    if not records:
        return ["No member has a record yet.", ""]
    df = pd.DataFrame(records)
    # members scored with test-time flips (trainer.tta_flip) also have each view's accuracy alone
    flipped = "view_accuracies" in df and df["view_accuracies"].map(lambda v: isinstance(v, list) and len(v) == 2).any()
    mean_std = lambda acc: ("-" if acc.empty else f"{pct(acc.mean(), 2)} ± {100 * acc.std(ddof=1):.2f}"  # noqa: E731
                            if len(acc) > 1 else pct(acc.mean(), 2))
    rows = []
    for arch, d in df.groupby("architecture", sort=False):
        ok = d[d["status"] == "ok"]
        as_is = [mean_std(ok["view_accuracies"].map(lambda v: v[0] if isinstance(v, list) and v else float("nan"))
                          .astype(float).dropna())] if flipped else []
        rows.append([arch, len(d), len(d) - len(ok), mean_std(ok["val_accuracy"].astype(float)), *as_is,
                     f"{d['compile_s'].astype(float).max():.1f} / {d['compile_s'].astype(float).median():.1f}",
                     f"{d['train_s'].astype(float).median():.1f}",
                     "; ".join(sorted({str(r) for r in d["reason"] if r})) or "-"])
    note = (" Members are scored with test-time flips (each image and its mirror image, mean logits); \"as is\" is "
            "the accuracy of the images alone." if flipped else "")
    return (["Accuracy of single members on the evaluation split (mean ± standard deviation over seeds); compile "
             "seconds, the longest (a cold compile, usually the first) and the median; training seconds, median."
             + note, ""]
            + table(["architecture", "members", "failed", "accuracy", *(["as is"] if flipped else []),
                     "compile s, max / median", "train s", "failure reasons"], rows,
                    [False, True, True, True, *([True] if flipped else []), True, True, False]) + [""])


def study_markdown(run: RunDir, cfg: dict[str, Any], out_dir: Path) -> str:
    """The page of the study in ``run`` (config ``cfg``), image paths relative to ``out_dir``.
    Raises UserError before the study has written its summary."""
    summary_path = run.path / "summary.csv"
    if not summary_path.is_file():
        raise UserError(f"{run.path}: the study has no summary.csv yet (`nas study ... --resume --no-train` "
                        "writes it from the members trained so far)")
    summary = pd.read_csv(summary_path)
    findings = study_findings(summary)  # from the summary, so that older studies get the nearest misses too
    records = run.records()
    where = devices(records)
    times = [float(r["time"]) for r in records if r.get("time")]
    t = cfg.get("trainer", {})
    lines = [f"# Scaling study `{Path(run.path).resolve().name}`", "",
             f"{cfg['dataset']}: {', '.join(cfg['architectures'])}, up to {cfg.get('members', '?')} independently "
             f"trained members each ({len(records)} member records)"
             + (f", on {'; '.join(where)}" if where else "") + "."
             + (f" Members recorded over {duration(max(times) - min(times))}, the last at {utc(max(times))}."
                if len(times) > 1 else ""), "",
             f"Each member trains for {counted(t.get('epochs', '?'), 'epoch')} at batch "
             f"{t.get('batch_size', '?')}, learning rate "
             f"{t.get('learning_rate', '?')} ({t.get('schedule', '?')}, {t.get('optimizer', '?')}), on "
             f"{count(cfg.get('train_examples')) or 'all the'} training images"
             + ("; each member scores an image and its mirror image (test-time flips)" if t.get("tta_flip") else "")
             + "; ensembles (geometric mean of "
             f"softmaxes) are scored on the {cfg.get('eval_split', 'test')} split, up to {cfg.get('draws', '?')} "
             "random member subsets per ensemble size.", ""]
    lines += launch_lines(run.launches())
    figure = next((p for p in (run.path / "plots" / "scaling.png", run.path / "scaling.png") if p.is_file()), None)
    if figure is not None:
        lines += image_lines(figure, out_dir, "accuracy and NLL against total FLOPs")
    rows = [[r["architecture"], int(r["n"]), f"{r['flops'] / 1e9:.3g}", f"{r['params'] / 1e6:.2f}",
             pct(r["accuracy_mean"], 2), "-" if pd.isna(r["accuracy_std"]) else f"{100 * r['accuracy_std']:.2f}",
             f"{r['nll_mean']:.3f}", int(r["draws"])] for _, r in summary.iterrows()]
    lines += section("Accuracy against total FLOPs", table(
        ["architecture", "n", "GFLOPs", "params M", "accuracy", "std, points", "NLL", "draws"], rows,
        [False] + [True] * 7) + [""])
    if summary["architecture"].nunique() > 1:  # one architecture has no smaller one to ensemble
        lines += section("The paper's claim, single model by single model", _findings(findings) + [""])
    lines += section("Members", _members(records))
    return "\n".join(lines + config_lines(cfg))
