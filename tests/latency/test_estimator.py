import json
import time

import numpy as np
import pytest

from latency.estimator import ensemble_latency, get_estimator, load_device, makespan
from search_space import MnasNetSpace, UserError, zoo


@pytest.fixture(scope="module")
def pixel1():
    return get_estimator("pixel1")


@pytest.mark.parametrize("name, ms", [("mnasnet-a1", 81.63), ("mnasnet-b1", 80.16), ("mnasnet-small", 21.35),
                                      ("mobilenetv2", 76.78)])
def test_pinned_estimates_at_224(pixel1, name, ms):
    # Pins the shipped pixel1.json (2018 TFLite era). MnasNet-A1 is held out of the fit: the MnasNet
    # paper measured 78 ms; MobileNetV2 1.0 is in the calibration set at 73.8 ms.
    assert pixel1.estimate(zoo.get(name, resolution=224)).total_ms == pytest.approx(ms, abs=0.05)


def test_report_splits_measured_and_modeled(pixel1):
    r = pixel1.estimate(zoo.get("mnasnet-a1"))
    assert 0 < r.measured_fraction < 1
    assert r.measured_ms + r.modeled_ms == pytest.approx(r.total_ms)
    assert {l.source for l in r.layers} >= {"model", "table:proxylessnas"}
    assert sum(l.ms for l in r.layers) == pytest.approx(r.total_ms)


def test_eras_are_separate_factors():
    a1 = zoo.get("mnasnet-a1")
    ratio = get_estimator("pixel1", "2019").estimate(a1).total_ms / get_estimator("pixel1", "2018").estimate(a1).total_ms
    assert 0.8 < ratio < 0.9  # the 2019 TFLite is 10-20% faster on the same networks
    with pytest.raises(UserError, match="era"):
        get_estimator("pixel1", "2030")


def test_extrapolation_is_flagged(pixel1):
    assert pixel1.estimate(zoo.get("mobilenetv2")).extrapolation == ()
    flags = " ".join(pixel1.estimate(zoo.get("mnasnet-a1", resolution=32)).extrapolation)
    assert "resolution 32" in flags and "squeeze-excite" in flags
    assert "op wrn_basic" in " ".join(pixel1.estimate(zoo.get("wrn-16-2")).extrapolation)


def test_latency_grows_with_resolution_and_width(pixel1):
    ms = [pixel1.estimate(zoo.get("mobilenetv2", resolution=r)).total_ms for r in (96, 128, 160, 192, 224)]
    assert ms == sorted(ms)
    assert pixel1.estimate(zoo.get("mobilenetv2", width_multiplier=1.4)).total_ms > ms[-1]


def test_one_estimate_is_well_under_a_millisecond(pixel1):
    space = MnasNetSpace(224)
    rng = np.random.default_rng(0)
    specs = [space.decode_member(space.sample(rng)) for _ in range(200)]
    # This process's CPU time, best of three passes (timeit's rule): wall time counts the other
    # processes sharing the cores. With the test suite running beside it on the 2-core machine, one
    # estimate took 1.49 ms of wall time and 0.61 ms of CPU time.
    passes = []
    for _ in range(3):
        start = time.process_time()
        for s in specs:
            pixel1._estimate(s, None, 1000)  # uncached
        passes.append((time.process_time() - start) / len(specs))
    assert min(passes) < 1e-3


def test_ensemble_latency_aggregates():
    e = ensemble_latency([30.0, 10.0, 25.0], cores=(1, 2, 3))
    assert e.max_ms == 30.0 and e.sum_ms == 65.0
    assert e.makespan_ms == {1: 65.0, 2: 35.0, 3: 30.0}
    assert makespan([5, 5, 5, 5], 2) == 10


def test_a_user_device_file_plugs_in(tmp_path):
    d = load_device("note10").to_dict()
    d["name"], d["tables"] = "model-only", []
    (tmp_path / "model-only.json").write_text(json.dumps(d))
    d["name"], d["theta"] = "twice-as-slow", {k: 2 * v for k, v in d["theta"].items()}
    (tmp_path / "twice.json").write_text(json.dumps(d))
    spec = zoo.get("mobilenetv2")
    base = get_estimator(str(tmp_path / "model-only.json")).estimate(spec)
    slow = get_estimator(str(tmp_path / "twice.json")).estimate(spec)
    assert slow.device == "twice-as-slow" and base.measured_fraction == 0
    assert slow.total_ms == pytest.approx(2 * base.total_ms)
    # the shipped Note10 tables are used where layers match (OFA stem: 224x224x3 -> 112x112x24)
    assert get_estimator("note10").estimate(zoo.get("mobilenetv2", width_multiplier=0.75)).measured_fraction > 0


@pytest.mark.parametrize("device, msg", [("pixel9", "neither a shipped device"), ("{}", "neither")])
def test_unknown_devices(device, msg):
    with pytest.raises(UserError, match=msg):
        get_estimator(device)


def test_a_malformed_device_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"name": "x"}')
    with pytest.raises(UserError, match="device file"):
        get_estimator(str(path))
