"""`nas search`, `nas plot`, `nas show`, `nas retrain`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from nas.config import apply_overrides, from_dict, load_config
from nas.diversity import diversity_frame, diversity_summary, summary_lines
from nas.pareto import best_within, fronts, json_rows, records_frame, write_fronts
from nas.retrained import setting_label, setting_slug
from nas.retrained_cli import print_agreement, print_retrained, retrain_plots, retrained_report
from nas.store import RunDir
from search_space.errors import UserError


def run_search_cmd(args: argparse.Namespace) -> int:
    from nas.cli import evaluator_from_args
    from nas.search import run_search
    from trainer.data import load_dataset

    run = RunDir(args.run_dir)
    dataset = None
    if args.resume:
        if args.config or args.set:
            raise UserError("--resume: continues the run with its own config; drop --config and --set")
        config = from_dict(run.read_config())
    else:
        if not args.config:
            raise UserError("--config: required for a new search (e.g. experiments/demo.py)")
        config = apply_overrides(load_config(args.config), args.set or [])
        # Loaded before the run directory exists, so a missing data set leaves nothing behind.
        dataset = load_dataset(config.dataset, tfds_data_dir=config.data_dir)
    if args.member_cache:
        _check_writable(Path(args.member_cache), "--member-cache")
    evaluator = evaluator_from_args(args)  # checked before the run directory is written
    try:
        if not args.resume:
            run.create(config.to_dict())
        run_search(run, config, dataset=dataset, evaluator=evaluator, member_cache=args.member_cache)
    finally:
        evaluator.close()
    paths = make_plots(run)
    print(f"run {run.path}: {len(run.records())} samples; fronts {paths['fronts']}; plots {paths['figure3']}")
    return 0


def _check_writable(folder: Path, option: str) -> None:
    """Create ``folder`` if needed and write a file in it: one clear error now rather than a failed
    write after the first member has trained."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise UserError(f"{option} {folder}: cannot write: {e.strerror}") from None


def make_plots(run: RunDir) -> dict[str, Path]:
    from nas.plots import curves, diversity_figure, figure3

    records = run.records()
    if not records:
        raise UserError(f"{run.path}: no records yet")
    (run.path / "plots").mkdir(exist_ok=True)
    cfg = run.read_config()
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
    paths = make_plots(RunDir(args.run))
    for k, v in paths.items():
        print(f"{k}: {v}")
    return 0


def run_show_cmd(args: argparse.Namespace) -> int:
    run = RunDir(args.run)
    cfg = run.read_config()
    records = run.records()
    df = records_frame(records)
    summary = []
    for n in sorted(cfg["sizes"]):
        d = df[df["size"] == n]
        ok = d[d["status"] == "ok"]
        summary.append({"size": int(n), "samples": int(len(d)), "failed": int((d["status"] != "ok").sum()),
                        "best_accuracy": float(ok["accuracy"].max()) if len(ok) else None,
                        "median_accuracy": float(ok["accuracy"].median()) if len(ok) else None,
                        "median_max_latency_ms": float(ok["latency_max_ms"].median()) if len(ok) else None,
                        "best_reward": float(d["reward"].max()) if len(d) else None,
                        "front_points": int(len(fronts(records).query(f"size == {n}"))) if len(ok) else 0})
    members = member_costs(records)
    # where the samples ran: device kind (records from before it was stored: the backend) and jax
    devices = sorted({f"{_device_name(v)} (jax {v.get('jax', '?')})"
                      for v in (r.get("versions") or {} for r in records) if v})
    controller = cfg.get("controller", "reinforce")
    target = float(cfg.get("reward", {}).get("target_ms", 75.0))
    within = best_within(records, args.budgets or default_budgets(records))
    retrained = retrained_report(run, records)
    diversity = diversity_summary(diversity_frame(records))
    points = front_ensembles(records) if args.front or args.export else []
    exported = _export_front(points, Path(args.export)) if args.export else []
    if args.json:
        extra = {"front": [_front_point(rec, ens) for rec, ens in points]} if args.front else {}
        print(json.dumps({"run": str(run.path), "dataset": cfg["dataset"], "controller": controller,
                          "devices": devices, "sizes": summary, "members": members,
                          "within_budget": json_rows(within), "diversity": json_rows(diversity),
                          "retrained": retrained, **extra,
                          **({"exported": [str(p) for p in exported]} if args.export else {})}))
        return 0
    print(f"run {run.path}: {cfg['dataset']}, {controller}, {len(records)} samples of {cfg['samples_per_size']} "
          f"per size" + (f", on {'; '.join(devices)}" if devices else ""))
    print(f"{'size':>4}{'samples':>9}{'failed':>8}{'best acc':>10}{'median acc':>12}{'median max ms':>15}"
          f"{'best reward':>13}{'front':>7}")
    for s in summary:
        f = lambda x, p=4: "-" if x is None else f"{x:.{p}f}"  # noqa: E731
        print(f"{s['size']:>4}{s['samples']:>9}{s['failed']:>8}{f(s['best_accuracy']):>10}"
              f"{f(s['median_accuracy']):>12}{f(s['median_max_latency_ms'], 2):>15}{f(s['best_reward']):>13}"
              f"{s['front_points']:>7}")
    _print_within(within, target)
    if len(diversity):
        print("ensembles against their best member (geometric mean; gain and spread in accuracy points):")
        print("\n".join(summary_lines(diversity)))
    if args.export:
        print(f"{len(exported)} front ensembles written to {args.export} as sizeN_sampleI.json")
    if args.front:
        _print_front(points)
    print_retrained(retrained)
    if members["trained"]:
        print(f"members: {members['trained']} trained ({members['failed']} failed), per member mean setup "
              f"{members['setup_s_mean']:.1f} s, compile {members['compile_s_mean']:.1f} s (tracing "
              f"{members['trace_s_mean']:.1f} s of it), train {members['train_s_mean']:.1f} s"
              + ("" if members["first_epoch_s_mean"] is None else
                 f" (first epoch {members['first_epoch_s_mean']:.1f} s of it)")
              + f", evaluation {members['eval_s_mean']:.1f} s; lowering {', '.join(members['lowerings']) or '-'}"
              + (f"; {members['stages_compiled']} of {members['stages']} layers compiled, the rest reused"
                 if members["stages"] else ""))
    return 0


def _device_name(versions: dict[str, Any]) -> str:
    """A record's device kind (older records: the backend), with the host CPU model on a CPU."""
    name = versions.get("device") or versions.get("backend", "?")
    return f"{name} {versions['host_cpu']}" if versions.get("backend") == "cpu" and versions.get("host_cpu") else name


def default_budgets(records: list[dict[str, Any]]) -> list[float]:
    """`nas show`'s max-latency budgets: the quartiles and the maximum of the successful samples' max
    member latency (ms, rounded up to 0.01 so that each takes in its sample), so that the table reads
    Figure 3 where its points are."""
    import math

    import numpy as np

    lat = [r["latency_max_ms"] for r in records if r.get("status") == "ok"]
    return sorted({math.ceil(float(q) * 100) / 100 for q in np.percentile(lat, [25, 50, 75, 100])}) if lat else []


def _print_within(within: pd.DataFrame, target: float) -> None:
    """Figure 3 read across: the best accuracy per size within each max-latency budget."""
    if within.empty:
        return
    sizes = sorted(set(within["size"]))
    print(f"best accuracy within a max member latency (reward target {target:g} ms; sample in brackets):")
    print(f"{'budget ms':>10}" + "".join(f"{f'{n} member' + ('s' if n > 1 else ''):>18}" for n in sizes))
    for budget, d in within.groupby("budget_ms", sort=False):
        cells = []
        for n in sizes:
            row = d[d["size"] == n].iloc[0]
            cells.append("-" if pd.isna(row["accuracy"]) else f"{row['accuracy']:.4f} (#{int(row['sample'])})")
        print(f"{budget:>10.2f}" + "".join(f"{c:>18}" for c in cells))


def front_ensembles(records: list[dict[str, Any]]) -> list[tuple[dict[str, Any], Any]]:
    """(record, EnsembleSpec) of every Pareto-front sample, by size, then max latency."""
    from search_space.spec import EnsembleSpec
    from search_space.spec import from_dict as spec_from_dict

    by_key = {(r["size"], r["sample"]): r for r in records}
    front = fronts(records)
    out = []
    for size, sample in zip(front["size"], front["sample"]):
        rec = by_key[(int(size), int(sample))]
        out.append((rec, EnsembleSpec(tuple(spec_from_dict(m["spec"]) for m in rec["members"]))))
    return out


def _front_point(rec: dict[str, Any], ens: Any) -> dict[str, Any]:
    """A front point and its members' architectures (resolution, stem, head, block string)."""
    from search_space.blockstring import encode_blocks

    return {"size": rec["size"], "sample": rec["sample"], "accuracy": rec["accuracy"],
            "latency_max_ms": rec["latency_max_ms"], "reward": rec["reward"], "ensemble_id": ens.id,
            "members": [{"resolution": m.resolution, "stem_filters": m.stem_filters, "stem_stride": m.stem_stride,
                         "head_filters": m.head_filters, "blocks": encode_blocks(m.blocks),
                         "latency_ms": info["latency_ms"], "val_accuracy": info.get("val_accuracy")}
                        for m, info in zip(ens.members, rec["members"])]}


def _print_front(points: list[tuple[dict[str, Any], Any]]) -> None:
    for rec, ens in points:
        p = _front_point(rec, ens)
        print(f"size {p['size']} sample {p['sample']}: accuracy {p['accuracy']:.4f}, max latency "
              f"{p['latency_max_ms']:.2f} ms, reward {p['reward']:.4f}, id {p['ensemble_id'][:12]}")
        for i, m in enumerate(p["members"], 1):
            acc = "" if m["val_accuracy"] is None else f", accuracy {m['val_accuracy']:.4f}"
            print(f"  member {i}: {m['resolution']} px, stem {m['stem_filters']}/s{m['stem_stride']}, head "
                  f"{m['head_filters']}, {m['latency_ms']:.2f} ms{acc}: {m['blocks']}")


def _export_front(points: list[tuple[dict[str, Any], Any]], out: Path) -> list[Path]:
    """One ensemble spec JSON per front point, DIR/sizeN_sampleI.json (for `nas describe`, `nas
    latency`); one clear error where DIR cannot be written."""
    from search_space.spec import to_json

    paths = [out / f"size{rec['size']}_sample{rec['sample']}.json" for rec, _ in points]
    try:
        out.mkdir(parents=True, exist_ok=True)
        for path, (_, ens) in zip(paths, points):
            path.write_text(to_json(ens) + "\n")
    except OSError as e:
        raise UserError(f"--export {out}: cannot write: {e.strerror}") from None
    return paths


def member_costs(records: list[dict[str, Any]]) -> dict[str, Any]:
    """What the run's distinct members cost (each counted once, however many samples share it):
    how many trained and failed, mean setup / compile (and its tracing part) / train (and its first
    epoch, over members of more than one epoch; None if none) / evaluation seconds (0 for what
    records of older runs lack), the lowerings used, and with per-layer compilation
    (trainer.compile_unit=layer) the members' layers in all and how many compiled new programs."""
    seen: dict[str, dict[str, Any]] = {}
    for r in records:
        for m in r.get("members", []):
            seen.setdefault(m.get("key") or m.get("id"), m)
    ms = list(seen.values())
    mean = lambda k: sum(float(m.get(k) or 0.0) for m in ms) / len(ms) if ms else None  # noqa: E731
    firsts = [m["epoch_s"][0] for m in ms if len(m.get("epoch_s") or ()) > 1]  # one-time costs show here
    return {"trained": len(ms), "failed": sum(m.get("status") != "ok" for m in ms),
            "setup_s_mean": mean("setup_s"), "compile_s_mean": mean("compile_s"), "trace_s_mean": mean("trace_s"),
            "train_s_mean": mean("train_s"), "first_epoch_s_mean": sum(firsts) / len(firsts) if firsts else None,
            "eval_s_mean": mean("eval_s"),
            "lowerings": sorted({m["lowering"] for m in ms if m.get("lowering")}),
            # trainer.compile_unit=layer: the members' stages, and how many compiled new programs
            "stages": sum(int(m.get("stages") or 0) for m in ms),
            "stages_compiled": sum(int(m.get("stages_compiled") or 0) for m in ms)}


def pool_choices(run: RunDir, ds: Any, size: int | None, pareto: bool, top: int) -> list[dict[str, Any]]:
    """Ensembles of the member pool's fronts (nas/pool.py; ``ds`` the run's data set), shaped as the
    records `nas retrain` reads: with ``pareto`` every front point, else the ``top`` by the run's
    reward, as for searched samples; ``sample`` is "pool"."""
    from nas.pool import pool_fronts
    from nas.pool_cli import validation_labels

    cfg = run.read_config()
    front, _ = pool_fronts(run, validation_labels(run, ds), [size] if size is not None else cfg["sizes"],
                           from_dict(cfg).reward)
    rows = front.to_dict("records")
    if not pareto:
        rows = sorted(rows, key=lambda r: -r["reward"])[:top]
    return [{"ensemble_id": r["ensemble_id"], "size": int(r["size"]), "sample": "pool", "accuracy": r["accuracy"],
             "latency_max_ms": r["latency_max_ms"], "members": r["members"]} for r in rows]


def searched_choices(records: list[dict[str, Any]], where: Path, size: int | None, sample: int | None, pareto: bool,
                     top: int) -> list[dict[str, Any]]:
    """The searched samples `nas retrain` retrains (of ``size`` members, or any): ``sample``, every
    Pareto point, or the ``top`` by reward. Raises UserError when there is none to retrain."""
    records = [r for r in records if r["status"] == "ok" and (size is None or r["size"] == size)]
    if not records:
        raise UserError(f"{where}: no successful samples{f' of size {size}' if size else ''} to retrain")
    if sample is not None:  # a chosen point, e.g. one numbered on Figure 3 / in `nas show --front`
        chosen = [r for r in records if r["sample"] == sample]
        if not chosen:
            raise UserError(f"--sample {sample}: no successful sample of that number of size {size} "
                            f"(samples {', '.join(str(r['sample']) for r in records)})")
        return chosen
    if pareto:
        ids = set(fronts(records)["ensemble_id"])
        return [r for r in records if r["ensemble_id"] in ids]
    return sorted(records, key=lambda r: -r["reward"])[:top]


def run_retrain_cmd(args: argparse.Namespace) -> int:
    """Retrain the top-K ensembles (by reward, or the Pareto points) with a full recipe."""
    from nas.ensemble import evaluate_ensemble
    from nas.search import member_seed, progress_prefix
    from search_space.spec import from_dict as spec_from_dict
    from trainer.data import load_dataset, test_split
    from trainer.retrain import RECIPES, retrain, with_epochs

    run = RunDir(args.run)
    cfg = from_dict(run.read_config())
    if args.sample is not None and (args.size is None or args.pool or args.pareto):
        raise UserError("--sample: give it with --size, for a searched sample (not with --pool or --pareto)")
    ds = None
    if args.pool:  # the data set is loaded once, for the validation labels and for retraining
        ds = load_dataset(cfg.dataset, tfds_data_dir=cfg.data_dir)
        chosen = pool_choices(run, ds, args.size, args.pareto, args.top)
    else:
        chosen = searched_choices(run.records(), run.path, args.size, args.sample, args.pareto, args.top)
    recipe = with_epochs(RECIPES[args.recipe], args.epochs)
    if ds is None:
        ds = load_dataset(cfg.dataset, tfds_data_dir=cfg.data_dir)
    subset = args.train_examples
    if subset is not None:  # a class-balanced subset of the training split, for quick checks
        part = test_split(ds, cfg.seed, subset, None)
        ds = dataclasses.replace(ds, x_train=part.x_train, y_train=part.y_train)
    out_path = run.path / "retrain.jsonl"
    appended = 0
    finished = {(x["ensemble_id"], x["recipe"], x["epochs"], x.get("train_examples")): x for x in run.retrains()}
    todo = [r for r in chosen if (r["ensemble_id"], args.recipe, recipe.epochs, subset) not in finished]

    setting = (args.recipe, recipe.epochs, subset or 0)  # as nas/retrained.py groups retrains
    slug = setting_slug(*setting)

    def member_run(pos: int, m: dict[str, Any]) -> tuple[int, Path]:
        seed = member_seed(m, cfg.seed, pos)  # the seed it was searched with
        return seed, run.path / "retrain" / f"{m['id'][:16]}-seed{seed}-{slug}"

    checkpoints = list(dict.fromkeys(member_run(pos, m)[1] for r in todo for pos, m in enumerate(r["members"])))
    if todo:
        print(f"retraining {len(todo)} ensemble{'s' if len(todo) != 1 else ''}: {len(checkpoints)} distinct "
              f"member{'s' if len(checkpoints) != 1 else ''} ({setting_label(*setting)})",
              file=sys.stderr)
    start, done = time.perf_counter(), set()
    for r in chosen:
        prior = finished.get((r["ensemble_id"], args.recipe, recipe.epochs, subset))
        if prior is not None:  # a rerun after completion reports, it does not retrain or duplicate
            print(f"size {r['size']} #{r['sample']}: proxy val {r['accuracy']:.4f} -> test {prior['test_accuracy']:.4f} "
                  f"(retrained earlier)")
            continue
        logits = []
        for pos, m in enumerate(r["members"]):
            seed, ckpt = member_run(pos, m)
            print(f"retraining {m['id'][:12]} -> {ckpt}", file=sys.stderr)
            res = retrain(spec_from_dict(m["spec"]), ds, recipe, seed, ckpt, every=args.every,
                          progress=lambda e, n, l: print(f"  epoch {e}/{n} loss {l:.4f}", file=sys.stderr, flush=True))
            logits.append(res.test_logits)
            if ckpt not in done:
                done.add(ckpt)
                elapsed = time.perf_counter() - start
                # members train one after another, each with its own compile: the mean pace, not the
                # pace after the first (which suits a pipelined search round)
                print(f"  {progress_prefix(len(done), len(checkpoints), elapsed)}member {m['id'][:12]} "
                      f"seed {seed}: test {res.test_accuracy:.4f}", file=sys.stderr, flush=True)
        metrics = evaluate_ensemble(logits, ds.y_test)
        row = {"ensemble_id": r["ensemble_id"], "size": r["size"], "sample": r["sample"], "recipe": args.recipe,
               "epochs": recipe.epochs, "train_examples": subset, "proxy_val_accuracy": r["accuracy"],
               "test_accuracy": metrics.accuracy, "test_member_accuracies": list(metrics.member_accuracies),
               "latency_max_ms": r["latency_max_ms"],
               # each member's proxy accuracy next to its test accuracy (nas/retrained.py ranks them)
               "members": [{"id": m["id"], "seed": m.get("seed"), "val_accuracy": m.get("val_accuracy"),
                            "latency_ms": m.get("latency_ms")} for m in r["members"]]}
        run.append_retrain(row)
        appended += 1
        print(f"size {r['size']} #{r['sample']}: proxy val {r['accuracy']:.4f} -> test {metrics.accuracy:.4f} "
              f"(members {', '.join(f'{a:.4f}' for a in metrics.member_accuracies)})")
    print(f"{appended} result{'s' if appended != 1 else ''} appended to {out_path}" if appended
          else f"every chosen ensemble was retrained earlier; results in {out_path}")
    print_agreement(run, setting)
    return 0
