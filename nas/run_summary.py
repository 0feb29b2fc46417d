"""What a search run holds, summarized once for `nas show` (text and JSON) and `nas report`
(Markdown): per size the samples, failures, best and median accuracy, median max latency, best
reward and front points; the best accuracy within max-latency budgets; the ensembles' gain over their
best member; what the members cost; the retraining results; optionally the front ensembles with
their members' architectures; the devices, the launches and the time the samples span."""

from __future__ import annotations

from typing import Any

import pandas as pd

from nas.diversity import diversity_frame, diversity_summary
from nas.pareto import best_within, fronts, json_rows, records_frame
from nas.retrained import unfinished_retrainings
from nas.retrained_cli import retrained_report
from nas.store import RunDir
from nas.words import counted


def summarize(run: RunDir, budgets: list[float] | None = None, front: bool = False,
              records: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The run's summary as JSON-ready values (`nas show --json` prints it). ``budgets``: max-latency
    budgets in ms for ``within_budget`` (default: ``default_budgets``); ``front``: add ``front``, each
    Pareto-front ensemble with its members' architectures (and ``key``, the member cache's); ``records``:
    the run's records where the caller has read them already. Raises UserError for a directory that
    holds no run."""
    cfg = run.read_search_config()
    records = run.records() if records is None else records
    df = records_frame(records)
    front_sizes = fronts(records)["size"] if any(r.get("status") == "ok" for r in records) else pd.Series([], dtype=int)
    sizes = []
    for n in sorted(cfg["sizes"]):
        d = df[df["size"] == n] if len(df) else df
        ok = d[d["status"] == "ok"] if len(d) else d
        sizes.append({"size": int(n), "samples": int(len(d)), "failed": int((d["status"] != "ok").sum()) if len(d) else 0,
                      "best_accuracy": float(ok["accuracy"].max()) if len(ok) else None,
                      "median_accuracy": float(ok["accuracy"].median()) if len(ok) else None,
                      "median_max_latency_ms": float(ok["latency_max_ms"].median()) if len(ok) else None,
                      "best_reward": float(d["reward"].max()) if len(d) else None,
                      "front_points": int((front_sizes == n).sum()),
                      **_progress(ok)})
    times = [float(r["time"]) for r in records if r.get("time")]
    launches = run.launches()
    out = {"run": str(run.path), "dataset": cfg["dataset"], "image_size": cfg.get("image_size"),
           "controller": cfg.get("controller", "reinforce"),
           "samples_per_size": cfg.get("samples_per_size"), "samples": len(records),
           "target_ms": float(cfg.get("reward", {}).get("target_ms", 75.0)), "devices": devices(records),
           "first_sample_time": min(times) if times else None, "last_sample_time": max(times) if times else None,
           "launches": launches, "sizes": sizes, "members": member_costs(records),
           "pace": search_pace(records, launches),
           "within_budget": json_rows(best_within(records, default_budgets(records) if budgets is None else budgets)),
           "diversity": json_rows(diversity_summary(diversity_frame(records))),
           "retrained": retrained_report(run, records),
           "failures": [{"size": r["size"], "sample": r["sample"], "reason": r.get("reason") or "?"}
                        for r in sorted(records, key=lambda r: (r["size"], r["sample"])) if r.get("status") != "ok"],
           "in_progress": in_progress(run, records), "retraining_unfinished": unfinished_retrainings(run.path)}
    if front:
        out["front"] = [front_point(rec, ens) for rec, ens in front_ensembles(records)]
    return out


def in_progress(run: RunDir, records: list[dict[str, Any]]) -> dict[str, Any]:
    """What the records do not show yet: ``writer``, the `nas search` writing the run (its pid,
    host and start; None when none is), and the round it trained last while that round's records
    are not all written (they are once all its members are trained: 30 members for sizes 1-3 at
    batch 5): ``round`` and ``rounds``, its ``members``, how many are ``trained``, and when the
    last of them finished (``last_member_time``, seconds since the epoch). With no writer, that
    round was interrupted, and ``--resume`` goes on with its trained members."""
    out: dict[str, Any] = {"writer": run.writer("search"), "round": None}
    info = run.read_round()
    recorded = {m.get("key") for r in records for m in r.get("members", [])}
    if info is None or set(info["members"]) <= recorded:
        return out
    paths = [run.member_path(k) for k in info["members"]]
    times = [p.stat().st_mtime for p in paths if p.is_file()]
    return {**out, "round": info["round"], "rounds": info["rounds"], "members": len(paths), "trained": len(times),
            "last_member_time": max(times, default=None)}


def in_progress_line(run: str, p: dict[str, Any], now: float) -> str | None:
    """``in_progress`` in one line for `nas show`, or None when there is nothing to say."""
    rnd = ""
    if p["round"] is not None:
        rnd = (f"round {p['round']}/{p['rounds']}, {p['trained']} of {p['members']} members trained"
               + (f" (the last {(now - p['last_member_time']) / 60:.1f} min ago)" if p["trained"] else ""))
    if p["writer"]:
        return f"search running ({p['writer']})" + (f": {rnd}" if rnd else "")
    if rnd:
        return f"interrupted in {rnd}: `nas search --run-dir {run} --resume` goes on with them"
    return None


def _progress(ok: pd.DataFrame) -> dict[str, Any]:
    """Whether the controller learned: the mean accuracy of a size's first and last third of its
    successful samples, in sample order (``progress_k`` samples each; None with fewer than two)."""
    if len(ok) < 2:
        return {"progress_k": 0, "mean_accuracy_first": None, "mean_accuracy_last": None}
    acc = ok.sort_values("sample")["accuracy"].astype(float)
    k = max(1, len(acc) // 3)
    return {"progress_k": k, "mean_accuracy_first": float(acc.iloc[:k].mean()),
            "mean_accuracy_last": float(acc.iloc[-k:].mean())}


def devices(records: list[dict[str, Any]]) -> list[str]:
    """Where the records' work ran: each device kind (records from before it was stored: the
    backend) with its jax version, e.g. "cpu AMD EPYC (avx2) (jax 0.10.2)"."""
    return sorted({f"{device_name(v)} (jax {v.get('jax', '?')})" for v in (r.get("versions") or {} for r in records) if v})


def device_name(versions: dict[str, Any]) -> str:
    """A record's device kind (older records: the backend), with the host CPU model on a CPU."""
    name = versions.get("device") or versions.get("backend", "?")
    if versions.get("backend") == "cpu" and versions.get("host_cpu"):
        name = f"{name} {versions['host_cpu']}"
    return f"{name} under MPS" if versions.get("mps") else name


def default_budgets(records: list[dict[str, Any]]) -> list[float]:
    """`nas show`'s max-latency budgets: the quartiles and the maximum of the successful samples' max
    member latency (ms, rounded up to 0.01 so that each takes in its sample), so that the table reads
    Figure 3 where its points are."""
    import math

    import numpy as np

    lat = [r["latency_max_ms"] for r in records if r.get("status") == "ok"]
    return sorted({math.ceil(float(q) * 100) / 100 for q in np.percentile(lat, [25, 50, 75, 100])}) if lat else []


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


def front_point(rec: dict[str, Any], ens: Any) -> dict[str, Any]:
    """A front point and its members' architectures (resolution, stem, head, block string)."""
    from search_space.blockstring import encode_blocks

    return {"size": rec["size"], "sample": rec["sample"], "accuracy": rec["accuracy"],
            "latency_max_ms": rec["latency_max_ms"], "reward": rec["reward"], "ensemble_id": ens.id,
            "members": [{"resolution": m.resolution, "stem_filters": m.stem_filters, "stem_stride": m.stem_stride,
                         "head_filters": m.head_filters, "blocks": encode_blocks(m.blocks),
                         "latency_ms": info["latency_ms"], "val_accuracy": info.get("val_accuracy"),
                         "key": info.get("key") or info.get("id")}
                        for m, info in zip(ens.members, rec["members"])]}


def member_costs(records: list[dict[str, Any]]) -> dict[str, Any]:
    """What the run's distinct members cost (each counted once, however many samples share it):
    how many trained and failed, mean setup / compile (and its tracing part) / train (and its first
    epoch, over members of more than one epoch; None if none) / evaluation seconds (0 for what
    records of older runs lack), the lowerings used, and with per-layer compilation
    (trainer.compile_unit=layer or padded) the members' layers in all and how many compiled new programs."""
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
            # trainer.compile_unit=layer or padded: the members' stages, and how many compiled new programs
            "stages": sum(int(m.get("stages") or 0) for m in ms),
            "stages_compiled": sum(int(m.get("stages_compiled") or 0) for m in ms),
            # of those, loaded from the persistent compilation cache (a precompile's, another worker's)
            "stages_loaded": sum(int(m.get("stages_loaded") or 0) for m in ms),
            # whole-program members that took an earlier member's compiled programs (trainer.train.PROGRAMS)
            "programs_reused": sum(bool(m.get("programs_reused")) for m in ms)}


def search_pace(records: list[dict[str, Any]], launches: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Members trained per hour of searching, the figure a throughput benchmark's window only
    approaches (issue #7): each `nas search` launch runs from its launch time to its last record
    before the next launch, and counts the members its records say it trained (failed ones too:
    they cost their time). The time between a stop and a resume is left out, and so is what a
    launch did after its last record (a round cut by a time limit: its time, and its members, which
    the next launch records as cached). None for runs without launch times (older ones) or records."""
    starts = sorted(float(launch["time"]) for launch in launches if launch.get("time"))
    timed = sorted((r for r in records if r.get("time")), key=lambda r: float(r["time"]))
    if not starts or not timed:
        return None
    key = lambda m: m.get("key") or m.get("id")  # noqa: E731
    seen = {key(m) for r in timed if float(r["time"]) < starts[0] for m in r.get("members", [])}
    per_launch = []
    for i, begin in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else float("inf")
        stretch = [r for r in timed if begin <= float(r["time"]) < end]
        if not stretch:
            continue
        trained = 0
        for m in (m for r in stretch for m in r.get("members", [])):
            # "cached": False marks a member's first record by the process that trained it; records
            # from before that field, a member's first record
            trained += (m["cached"] is False) if "cached" in m else key(m) not in seen
            seen.add(key(m))
        per_launch.append({"time": begin, "members": trained, "seconds": float(stretch[-1]["time"]) - begin})
    members, seconds = sum(p["members"] for p in per_launch), sum(p["seconds"] for p in per_launch)
    return {"members": members, "seconds": seconds, "launches": len(per_launch),
            "per_hour": members / seconds * 3600 if seconds > 0 else None,
            "per_launch": per_launch}  # the launches that recorded something, in order


def members_line(members: dict[str, Any]) -> str:
    """``member_costs`` in one line: "members: 6 trained (0 failed), per member mean setup 3.9 s, ..."."""
    m = members
    return (f"members: {m['trained']} trained ({m['failed']} failed), per member mean setup {m['setup_s_mean']:.1f} s, "
            f"compile {m['compile_s_mean']:.1f} s (tracing {m['trace_s_mean']:.1f} s of it), train "
            f"{m['train_s_mean']:.1f} s"
            + ("" if m["first_epoch_s_mean"] is None else f" (first epoch {m['first_epoch_s_mean']:.1f} s of it)")
            + f", evaluation {m['eval_s_mean']:.1f} s; lowering {', '.join(m['lowerings']) or '-'}"
            + (f"; {m['stages_compiled']} of {m['stages']} layers "
               + (f"new to their process ({m['stages_loaded']} of them loaded from the compilation cache)"
                  if m.get("stages_loaded") else "compiled") + ", the rest reused" if m["stages"] else "")
            + (f"; {m['programs_reused']} took an earlier member's programs" if m.get("programs_reused") else ""))


def pace_line(pace: dict[str, Any] | None) -> str:
    """``search_pace`` in one line, or "" without one."""
    if not pace or pace["per_hour"] is None:
        return ""
    n = pace["launches"]
    rates = [f"{p['members'] / p['seconds'] * 3600:.0f}" if p["seconds"] > 0 else "-"
             for p in pace.get("per_launch", [])]
    m = pace["members"]
    return (f"pace: {counted(m, 'member')} trained in {pace['seconds'] / 60:.1f} min of searching "
            f"({counted(n, 'launch', 'launches')}, {'' if n == 1 else 'each '}from its start to its last record), "
            f"{pace['per_hour']:.0f} an hour" + (f" (one launch after another: {', '.join(rates)})" if n > 1 else ""))


def data_label(summary: dict[str, Any]) -> str:
    """The summary's data set as a header names it: "cifar10", "tfds:imagenet2012 at 64 px"."""
    size = summary.get("image_size")
    return summary["dataset"] + (f" at {size} px" if size else "")
