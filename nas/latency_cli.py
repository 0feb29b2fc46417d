"""`nas latency` and `nas calibrate-latency`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from latency.calibrate import CALIBRATION_DIR, calibrate, format_report, plot_report
from latency.estimator import ensemble_latency, get_estimator
from nas.describe import default_num_classes
from search_space.errors import UserError
from search_space.spec import ArchSpec, EnsembleSpec


def latency_dict(spec: ArchSpec | EnsembleSpec, device: str = "pixel1", era: str | None = None,
                 num_classes: int | None = None) -> dict[str, Any]:
    """The estimate, per member for an ensemble; ``num_classes`` None: each member's published
    figure's (nas.describe.default_num_classes: 10 for a WRN, else 1000), as `nas describe` takes."""
    est = get_estimator(device, era)
    if isinstance(spec, EnsembleSpec):
        members = [est.estimate(m, num_classes=num_classes or default_num_classes(m)).to_dict() for m in spec.members]
        agg = ensemble_latency([m["latency_ms"] for m in members])
        return {"device": est.name, "era": est.era, "latency_ms": agg.max_ms, "latency_sum_ms": agg.sum_ms,
                "latency_makespan_ms": agg.makespan_ms, "members": members}
    return est.estimate(spec, num_classes=num_classes or default_num_classes(spec)).to_dict()


def _format_member(d: dict[str, Any]) -> str:
    rows = [f"{'layer':<14}{'op':<11}{'ms':>8}  source"]
    rows += [f"{l['name']:<14}{l['op']:<11}{l['ms']:>8.2f}  {l['source']}" for l in d["layers"]]
    rows.append(f"total {d['latency_ms']:.1f} ms on {d['device']} ({d['era']} TFLite): "
                f"{100 * d['measured_fraction']:.0f}% from measured tables, the rest from the fitted model")
    rows += [f"extrapolation: {f}" for f in d["extrapolation"]]
    return "\n".join(rows)


def format_latency(d: dict[str, Any]) -> str:
    if "members" not in d:
        return _format_member(d)
    parts = [f"== member {i + 1} ==\n{_format_member(m)}" for i, m in enumerate(d["members"])]
    parts.append(f"ensemble: max {d['latency_ms']:.1f} ms (members in parallel), sum {d['latency_sum_ms']:.1f} ms, "
                 + ", ".join(f"{k} cores {v:.1f} ms" for k, v in d["latency_makespan_ms"].items()))
    return "\n\n".join(parts)


def run_calibration(device: str, data_dir: str | None, plot: str, write: str | None, as_json: bool) -> int:
    for option, dest in (("--plot", plot), ("--write", write)):  # both checked before either is written
        if dest and not Path(dest).absolute().parent.is_dir():
            raise UserError(f"{option}: cannot write {dest}: no folder {Path(dest).absolute().parent}")
    rep = calibrate(device, Path(data_dir) if data_dir else CALIBRATION_DIR)
    try:
        path = plot_report(rep, Path(plot))
    except OSError as e:
        raise UserError(f"--plot: cannot write {plot}: {e.strerror}") from None
    if write:
        try:
            Path(write).write_text(json.dumps(rep.device.to_dict(), indent=1, sort_keys=True) + "\n")
        except OSError as e:
            raise UserError(f"--write: cannot write {write}: {e.strerror}") from None
    if as_json:
        print(json.dumps({**rep.summary, "device": device, "plot": str(path)}))
    else:
        print(format_report(rep))
        print(f"plot: {path}" + (f"; device file: {write}" if write else ""))
    return 0
