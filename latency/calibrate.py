"""Fit a device's per-op model on measured tables and whole-network latencies; report the fit.

The model: layer ms = theta . features(layer) (``latency.features``), theta >= 0. Each measurement
source has its own scale factor on a reference era, since the tables and the published figures
come from different TFLite versions: Pixel-1 whole networks of the 2018 era are the reference
(1.0), the 2019 re-measurements (MobileNetV3 paper) get a factor, and each per-layer table gets
one. Theta and the factors are fitted by alternating non-negative least squares on relative error
(rows divided by the measured value), which approximates minimizing the mean absolute percentage
error. Whole networks are predicted as measured-table entries where a layer matches and the model
elsewhere; leave-one-out refits without the held-out network.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy.optimize import nnls

from latency.estimator import DeviceModel, TableModelEstimator
from latency.features import FEATURES, layer_features
from latency.tables import TableEntry, as_lookup, read_singlepath_table, read_yaml_table
from search_space.blockstring import decode_blocks, scale_width
from search_space.errors import UserError
from search_space.layers import layer_plan
from search_space.spec import Activation, MobileNetSpec

CALIBRATION_DIR = Path(__file__).parent / "calibration"
REFERENCE_ERA = "2018"
NETWORK_WEIGHT = 4.0  # a whole network counts as much as this many table rows in the fit


@dataclasses.dataclass(frozen=True)
class NetworkRow:
    label: str
    spec: MobileNetSpec
    era: str
    ms: float


@dataclasses.dataclass(frozen=True)
class CalibrationData:
    device: str
    description: str
    tables: tuple[tuple[str, tuple[TableEntry, ...]], ...]
    networks: tuple[NetworkRow, ...]


def _int_in(text: str, default: int) -> int:
    for tok in text.replace("(", " ").split():
        if tok.isdigit():
            return int(tok)
    return default


def read_networks(csv_path: Path) -> list[NetworkRow]:
    """``pixel1_calibration.csv``: whole networks in block strings with stem, head and width."""
    rows = []
    with open(csv_path) as f:
        for r in csv.DictReader(f):
            width = float(r["width_multiplier"])
            head_text = r["head"].strip().lower()
            head = 0 if head_text.startswith("none") else _int_in(head_text.split("conv1x1", 1)[-1], 1280)
            policy = "above_one" if "scaled only when width>1" in head_text else "never"
            act = Activation.RELU6 if r["activation"].strip() == "relu6" else Activation.RELU
            spec = MobileNetSpec(blocks=decode_blocks(r["blocks"]), resolution=int(r["resolution"]),
                                 stem_filters=_int_in(r["stem"].split("s2", 1)[-1], 32), head_filters=head,
                                 activation=act)
            spec = scale_width(spec, width, policy)
            rows.append(NetworkRow(f"{r['model']} {width:g} @{r['resolution']} ({r['tflite_era']})", spec,
                                   r["tflite_era"].strip(), float(r["latency_ms"])))
    return rows


def pixel1_data(data_dir: Path = CALIBRATION_DIR) -> CalibrationData:
    d = Path(data_dir)
    for name in ("proxylessnas_mobile_trim.yaml", "singlepathnas_pixel1_runtime_model.json", "pixel1_calibration.csv"):
        if not (d / name).is_file():
            raise UserError(f"calibration data: {d / name} is missing")
    return CalibrationData(
        device="pixel1",
        description="Google Pixel 1, TFLite float, one big core, batch 1. Tables: ProxylessNAS mobile, Single-Path "
                    "NAS; whole networks: pixel1_calibration.csv (2018 and 2019 TFLite eras).",
        tables=(("proxylessnas", tuple(read_yaml_table(d / "proxylessnas_mobile_trim.yaml", expand_is_ratio=True))),
                ("singlepath", tuple(read_singlepath_table(d / "singlepathnas_pixel1_runtime_model.json")))),
        networks=tuple(read_networks(d / "pixel1_calibration.csv")))


def note10_data(data_dir: Path = CALIBRATION_DIR) -> CalibrationData:
    d = Path(data_dir)
    files = sorted(d.glob("ofa_note10_*_lookup_table.yaml"))
    if not files:
        raise UserError(f"calibration data: no ofa_note10_*_lookup_table.yaml in {d}")
    entries: list[TableEntry] = []
    for f in files:
        entries += read_yaml_table(f, expand_is_ratio=False)
    return CalibrationData(device="note10", description="Samsung Note10 (once-for-all lookup tables, 160-224 px); "
                                                        "no whole-network measurements.",
                           tables=(("ofa_note10", tuple(entries)),), networks=())


DATASETS = {"pixel1": pixel1_data, "note10": note10_data}


@dataclasses.dataclass(frozen=True)
class Fit:
    theta: np.ndarray
    table_scales: dict[str, float]
    eras: dict[str, float]


def _network_features(spec: MobileNetSpec) -> np.ndarray:
    return sum(layer_features(l) for l in layer_plan(spec, 1000))  # type: ignore[return-value]


def fit(data: CalibrationData, exclude: int | None = None, iterations: int = 40) -> Fit:
    """Alternating NNLS for theta and closed-form relative least squares for each source's factor."""
    rows_x, rows_y, rows_src, rows_w = [], [], [], []
    for tname, entries in data.tables:
        for e in entries:
            rows_x.append(layer_features(e.layer))
            rows_y.append(e.ms)
            rows_src.append(f"table:{tname}")
            rows_w.append(1.0)
    for i, n in enumerate(data.networks):
        if i == exclude:
            continue
        rows_x.append(_network_features(n.spec))
        rows_y.append(n.ms)
        rows_src.append(f"era:{n.era}")
        rows_w.append(NETWORK_WEIGHT)
    x, y, w = np.array(rows_x), np.array(rows_y), np.array(rows_w)
    src = np.array(rows_src)
    sources = sorted(set(rows_src))
    reference = f"era:{REFERENCE_ERA}" if f"era:{REFERENCE_ERA}" in sources else sources[0]
    scale = {s: 1.0 for s in sources}
    theta = np.zeros(x.shape[1])
    for _ in range(iterations):
        s_rows = np.array([scale[s] for s in src])
        a = x * (s_rows * w / y)[:, None]
        theta, _ = nnls(a, w * np.ones_like(y))
        pred = x @ theta
        for s in sources:
            if s == reference:
                continue
            m = src == s
            r = pred[m] / y[m]
            scale[s] = float((r * w[m]).sum() / (r * r * w[m]).sum()) if (r * r).sum() > 0 else 1.0
    eras = {s.split(":", 1)[1]: v for s, v in scale.items() if s.startswith("era:")}
    if not eras:
        eras = {"measured": 1.0}  # tables only: the tables are the reference
    tables = {s.split(":", 1)[1]: v for s, v in scale.items() if s.startswith("table:")}
    return Fit(theta=theta, table_scales=tables, eras=eras)


TABLE_TOLERANCE = 1.3  # leave-one-out MAPE: 4.9% at 1.1-1.3, 5.6% at 1.5, 7.8% with every entry


def consistent_entries(entries: Sequence[TableEntry], theta: np.ndarray, scale: float,
                       tolerance: float = TABLE_TOLERANCE) -> list[TableEntry]:
    """Entries within ``tolerance`` x of the model once on the reference era's scale.

    The two Pixel-1 tables disagree with each other by up to 1.8x on the same layer (ProxylessNAS
    16.8 ms vs Single-Path 9.2 ms for 112x112x16 -> 56x56x24, e6, k3, s2), and the worst entries
    are 2.4x what the whole-network measurements imply; those are kept out of the lookup.
    """
    return [e for e in entries
            if 1 / tolerance <= (e.ms / scale) / max(float(theta @ layer_features(e.layer)), 1e-9) <= tolerance]


def device_from_fit(data: CalibrationData, f: Fit, report: dict[str, Any] | None = None,
                    tolerance: float = TABLE_TOLERANCE) -> DeviceModel:
    tables = tuple((name, f.table_scales[name],
                    as_lookup(consistent_entries(entries, f.theta, f.table_scales[name], tolerance)))
                   for name, entries in data.tables)
    nets = [n.spec for n in data.networks]
    layers = [e.layer for _, entries in data.tables for e in entries]
    res = [n.resolution for n in nets] or [e.layer.h_in for _, es in data.tables for e in es if e.layer.op == "stem"]
    max_ch = max([max(l.cout, l.cexp) for l in layers] +
                 [max(max(l.cout, l.cexp) for l in layer_plan(s, 1000)) for s in nets])
    calibrated = {"resolution": [min(res), max(res)], "max_channels": max_ch,
                  "kernels": sorted({l.kernel for l in layers if l.op in ("mbconv", "sepconv")}),
                  "ops": ["stem", "mbconv", "sepconv", "head", "classifier"],
                  "squeeze_excite": any(l.se_channels for l in layers)}
    eras = dict(f.eras)
    return DeviceModel(name=data.device, description=data.description, theta=tuple(float(t) for t in f.theta),
                       eras=eras, default_era=REFERENCE_ERA if REFERENCE_ERA in eras else sorted(eras)[0],
                       tables=tables, calibrated=calibrated,
                       fit={"date": datetime.date.today().isoformat(), **(report or {})})


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


@dataclasses.dataclass(frozen=True)
class CalibrationReport:
    device: DeviceModel
    rows: tuple[dict[str, Any], ...]  # label, era, measured, predicted (in-sample), loo
    summary: dict[str, float]


def calibrate(device: str = "pixel1", data_dir: Path = CALIBRATION_DIR) -> CalibrationReport:
    """Fit on everything, then leave-one-out over whole networks (or table rows when there are none)."""
    if device not in DATASETS:
        raise UserError(f"device: no calibration recipe for {device!r}; known: {', '.join(DATASETS)}")
    data = DATASETS[device](Path(data_dir))
    full = fit(data)
    rows = []
    if data.networks:
        full_est = TableModelEstimator(device_from_fit(data, full), None)
        for i, n in enumerate(data.networks):
            loo_est = TableModelEstimator(device_from_fit(data, fit(data, exclude=i)), None)
            rows.append({"label": n.label, "era": n.era, "measured_ms": n.ms,
                         "predicted_ms": _predict(full_est, n), "loo_ms": _predict(loo_est, n)})
        kind = "whole networks, leave-one-out"
    else:
        # Tables only: k-fold over table rows by the model alone (a table lookup would be trivially exact).
        entries = [e for _, es in data.tables for e in es]
        folds = 10
        for k in range(folds):
            held = entries[k::folds]
            sub = dataclasses.replace(data, tables=tuple((n, tuple(e for e in es if e not in held)) for n, es in data.tables))
            f = fit(sub)
            for e in held:
                p = float(f.theta @ layer_features(e.layer))
                rows.append({"label": e.key, "era": "table", "measured_ms": e.ms,
                             "predicted_ms": float(full.theta @ layer_features(e.layer)), "loo_ms": p})
        kind = "table rows, 10-fold (per-op model alone)"
    meas = np.array([r["measured_ms"] for r in rows])
    loo = np.array([r["loo_ms"] for r in rows])
    pred = np.array([r["predicted_ms"] for r in rows])
    err = np.abs(loo - meas) / meas
    summary = {"cv": kind, "n": len(rows), "cv_mape": float(err.mean()), "cv_worst": float(err.max()),
               "cv_spearman": spearman(meas, loo), "fit_mape": float((np.abs(pred - meas) / meas).mean())}
    return CalibrationReport(device=device_from_fit(data, full, summary), rows=tuple(rows), summary=summary)


def _predict(est: TableModelEstimator, n: NetworkRow) -> float:
    return TableModelEstimator(est.device, n.era).estimate(n.spec).total_ms


def format_report(rep: CalibrationReport) -> str:
    s = rep.summary
    lines = [f"{'network':<42}{'measured':>10}{'fit':>9}{'cv':>9}{'cv err':>9}"]
    for r in rep.rows:
        lines.append(f"{r['label'][:41]:<42}{r['measured_ms']:>10.1f}{r['predicted_ms']:>9.1f}{r['loo_ms']:>9.1f}"
                     f"{100 * (r['loo_ms'] - r['measured_ms']) / r['measured_ms']:>8.1f}%")
    d = rep.device
    lines.append(f"device {d.name}: cross-validated ({s['cv']}, n={s['n']}) MAPE {100 * s['cv_mape']:.1f}%, "
                 f"worst {100 * s['cv_worst']:.1f}%, Spearman {s['cv_spearman']:.3f}; in-sample MAPE "
                 f"{100 * s['fit_mape']:.1f}%")
    lines.append("theta: " + ", ".join(f"{k}={v:.4g}" for k, v in zip(FEATURES, d.theta)))
    lines.append("eras: " + ", ".join(f"{k}={v:.3f}" for k, v in d.eras.items()) + "; tables: " +
                 ", ".join(f"{n}={sc:.3f}" for n, sc, _ in d.tables))
    return "\n".join(lines)


def plot_report(rep: CalibrationReport, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    eras = sorted({r["era"] for r in rep.rows})
    for era, marker in zip(eras, "osd^v"):
        pts = [r for r in rep.rows if r["era"] == era]
        ax.scatter([r["measured_ms"] for r in pts], [r["loo_ms"] for r in pts], marker=marker, label=f"{era}",
                   alpha=0.85, zorder=3)
    lo = min(min(r["measured_ms"], r["loo_ms"]) for r in rep.rows) * 0.8
    hi = max(max(r["measured_ms"], r["loo_ms"]) for r in rep.rows) * 1.2
    ax.plot([lo, hi], [lo, hi], "k-", lw=0.8, zorder=2)
    ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="0.88", label="±10%", zorder=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel("cross-validated prediction (ms)")
    s = rep.summary
    ax.set_title(f"{rep.device.name}: CV MAPE {100 * s['cv_mape']:.1f}%, worst {100 * s['cv_worst']:.1f}%, "
                 f"Spearman {s['cv_spearman']:.3f}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


