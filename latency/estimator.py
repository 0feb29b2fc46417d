"""Latency estimators behind one protocol, the table-plus-model device estimator, ensemble latency."""

from __future__ import annotations

import dataclasses
import functools
import heapq
import json
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from latency.features import FEATURES, layer_features, layer_key
from search_space.errors import UserError
from search_space.layers import Layer, layer_plan
from search_space.spec import ArchSpec


@dataclasses.dataclass(frozen=True)
class LayerLatency:
    name: str
    op: str
    ms: float
    source: str  # "table:<name>" or "model"


@dataclasses.dataclass(frozen=True)
class LatencyReport:
    """One member's estimate: total, per layer, how much was measured vs modeled, extrapolation flags."""

    device: str
    era: str
    total_ms: float
    layers: tuple[LayerLatency, ...]
    extrapolation: tuple[str, ...]

    @property
    def measured_ms(self) -> float:
        return sum(l.ms for l in self.layers if l.source != "model")

    @property
    def modeled_ms(self) -> float:
        return self.total_ms - self.measured_ms

    @property
    def measured_fraction(self) -> float:
        return self.measured_ms / self.total_ms if self.total_ms > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"device": self.device, "era": self.era, "latency_ms": self.total_ms, "measured_ms": self.measured_ms,
                "modeled_ms": self.modeled_ms, "measured_fraction": self.measured_fraction,
                "extrapolation": list(self.extrapolation),
                "layers": [dataclasses.asdict(l) for l in self.layers]}


class LatencyEstimator(Protocol):
    name: str

    def estimate(self, spec: ArchSpec, resolution: int | None = None, num_classes: int = 1000) -> LatencyReport:
        ...


@dataclasses.dataclass(frozen=True)
class DeviceModel:
    """A device: measured tables (each with its scale to the reference era) plus fitted coefficients."""

    name: str
    description: str
    theta: tuple[float, ...]  # ms per million of each FEATURES entry (ops: ms per op)
    eras: dict[str, float]  # era -> factor on the reference era (the reference is 1.0)
    default_era: str
    tables: tuple[tuple[str, float, dict[str, float]], ...]  # (name, scale, key -> ms)
    calibrated: dict[str, Any]
    fit: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "theta": dict(zip(FEATURES, self.theta)), "eras": self.eras, "default_era": self.default_era,
                "tables": [{"name": n, "scale": s, "entries": e} for n, s, e in self.tables],
                "calibrated": self.calibrated, "fit": self.fit}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DeviceModel":
        try:
            return cls(name=d["name"], description=d.get("description", ""),
                       theta=tuple(float(d["theta"][f]) for f in FEATURES), eras=dict(d["eras"]),
                       default_era=d["default_era"],
                       tables=tuple((t["name"], float(t["scale"]), dict(t["entries"])) for t in d.get("tables", [])),
                       calibrated=d.get("calibrated", {}), fit=d.get("fit", {}))
        except (KeyError, TypeError) as e:
            raise UserError(f"device file: missing or malformed field {e}") from None


class TableModelEstimator:
    """Measured table entry where a layer matches one (first table wins), fitted per-op model elsewhere."""

    def __init__(self, device: DeviceModel, era: str | None = None):
        era = era or device.default_era
        if era not in device.eras:
            raise UserError(f"era: {era!r} is not calibrated for {device.name}; choose one of {sorted(device.eras)}")
        self.device = device
        self.era = era
        self.name = device.name
        self._theta = np.asarray(device.theta)
        self._factor = device.eras[era]

    def estimate(self, spec: ArchSpec, resolution: int | None = None, num_classes: int = 1000) -> LatencyReport:
        return _estimate_cached(self, spec, resolution, num_classes)

    def _estimate(self, spec: ArchSpec, resolution: int | None, num_classes: int) -> LatencyReport:
        layers = []
        plan = layer_plan(spec, num_classes, resolution)
        for l in plan:
            key = layer_key(l)
            for tname, scale, entries in self.device.tables:
                if key is not None and key in entries:
                    layers.append(LayerLatency(l.name, l.op, entries[key] / scale * self._factor, f"table:{tname}"))
                    break
            else:
                layers.append(LayerLatency(l.name, l.op, float(self._theta @ layer_features(l)) * self._factor, "model"))
        res = spec.resolution if resolution is None else resolution
        return LatencyReport(device=self.name, era=self.era, total_ms=sum(l.ms for l in layers), layers=tuple(layers),
                             extrapolation=extrapolation_flags(self.device.calibrated, plan, res, layers))


@functools.lru_cache(maxsize=65536)
def _estimate_cached(est: TableModelEstimator, spec: ArchSpec, resolution: int | None, num_classes: int) -> LatencyReport:
    # Specs are frozen and hashable; the same member is estimated many times in a search.
    return est._estimate(spec, resolution, num_classes)


def extrapolation_flags(calibrated: dict[str, Any], plan: Sequence[Layer], resolution: int,
                        layers: Sequence[LayerLatency]) -> tuple[str, ...]:
    """Where the estimate leaves what the device was calibrated on (resolution, channels, kernel, op)."""
    flags = []
    lo, hi = calibrated.get("resolution", [0, 10 ** 9])
    if not lo <= resolution <= hi:
        flags.append(f"resolution {resolution} outside calibrated {lo}..{hi}")
    modeled = {l.name for l in layers if l.source == "model"}
    max_ch = calibrated.get("max_channels")
    widest = max(max(l.cout, l.cexp) for l in plan)
    if max_ch and widest > max_ch:
        flags.append(f"channels {widest} above calibrated {max_ch}")
    kernels = set(calibrated.get("kernels", []))
    for k in sorted({l.kernel for l in plan if l.name in modeled and l.op in ("mbconv", "sepconv", "conv")} - kernels):
        flags.append(f"kernel {k} not calibrated")
    ops = set(calibrated.get("ops", []))
    for op in sorted({l.op for l in plan if l.name in modeled} - ops):
        flags.append(f"op {op} not calibrated")
    if any(l.se_channels for l in plan) and not calibrated.get("squeeze_excite", False):
        flags.append("squeeze-excite costed from memory traffic only (no measured SE layer)")
    if any(l.shortcut in ("pool", "pool_proj") for l in plan):
        flags.append("pool skip costed from memory traffic only (no measured pooling shortcut)")
    return tuple(flags)


BUILTIN_DEVICES = ("pixel1", "note10")


@functools.lru_cache(maxsize=32)
def load_device(name_or_path: str) -> DeviceModel:
    """A shipped device by name (``pixel1``, ``note10``) or a user's device JSON file by path."""
    if name_or_path in BUILTIN_DEVICES:
        text = resources.files("latency").joinpath("devices", f"{name_or_path}.json").read_text()
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise UserError(f"device: {name_or_path!r} is neither a shipped device ({', '.join(BUILTIN_DEVICES)}) "
                            "nor a device JSON file")
        text = path.read_text()
    try:
        return DeviceModel.from_dict(json.loads(text))
    except json.JSONDecodeError as e:
        raise UserError(f"device file {name_or_path}: not valid JSON: {e}") from None


def get_estimator(device: str = "pixel1", era: str | None = None) -> TableModelEstimator:
    return TableModelEstimator(load_device(device), era)


@dataclasses.dataclass(frozen=True)
class EnsembleLatency:
    """Members run in parallel (max), one after another (sum), or scheduled on k cores (makespan)."""

    members_ms: tuple[float, ...]
    max_ms: float
    sum_ms: float
    makespan_ms: dict[int, float]


def makespan(times: Sequence[float], cores: int) -> float:
    """Longest-processing-time-first schedule of the members on ``cores`` identical cores."""
    loads = [0.0] * max(1, cores)
    heapq.heapify(loads)
    for t in sorted(times, reverse=True):
        heapq.heappush(loads, heapq.heappop(loads) + t)
    return max(loads)


def ensemble_latency(members_ms: Sequence[float], cores: Sequence[int] = (2, 4)) -> EnsembleLatency:
    ms = tuple(float(x) for x in members_ms)
    return EnsembleLatency(members_ms=ms, max_ms=max(ms), sum_ms=sum(ms),
                           makespan_ms={k: makespan(ms, k) for k in cores})
