import json
from importlib import resources

import numpy as np
import pytest

from latency.calibrate import calibrate, note10_data, pixel1_data, read_networks, CALIBRATION_DIR
from latency.estimator import load_device
from latency.tables import read_singlepath_table, read_yaml_table


def test_tables_parse():
    proxyless = read_yaml_table(CALIBRATION_DIR / "proxylessnas_mobile_trim.yaml", expand_is_ratio=True)
    assert len(proxyless) == 72
    stem = [e for e in proxyless if e.key.startswith("stem:")]
    assert stem[0].key == "stem:224x224x3->112x112x32" and stem[0].ms == pytest.approx(4.0838, abs=1e-3)
    single = read_singlepath_table(CALIBRATION_DIR / "singlepathnas_pixel1_runtime_model.json")
    assert len(single) == 88
    assert {e.layer.kernel for e in single} == {3, 5}


def test_network_rows_reproduce_published_multiply_adds():
    rows = read_networks(CALIBRATION_DIR / "pixel1_calibration.csv")
    assert len(rows) == 26
    from search_space import count

    mnv2_14 = next(r for r in rows if r.label.startswith("MobileNetV2 1.4 @224"))
    assert mnv2_14.spec.head_filters == 1792
    assert count(mnv2_14.spec).multiply_adds / 1e6 == pytest.approx(582, rel=0.03)


@pytest.fixture(scope="module")
def pixel1_report():
    return calibrate("pixel1")


def test_pixel1_cross_validated_error(pixel1_report):
    s = pixel1_report.summary
    assert s["n"] == 26
    assert s["cv_mape"] <= 0.10
    assert s["cv_spearman"] >= 0.95


def test_shipped_device_files_are_what_calibration_produces(pixel1_report):
    shipped = json.loads(resources.files("latency").joinpath("devices", "pixel1.json").read_text())
    assert np.allclose([shipped["theta"][k] for k in sorted(shipped["theta"])],
                       [pixel1_report.device.to_dict()["theta"][k] for k in sorted(shipped["theta"])], rtol=1e-6)
    assert shipped["eras"] == pytest.approx(pixel1_report.device.eras)
    assert load_device("pixel1").fit["cv_mape"] == pytest.approx(pixel1_report.summary["cv_mape"])


def test_note10_is_a_second_device_fitted_on_its_tables():
    assert len(note10_data().tables[0][1]) > 150
    rep = calibrate("note10")
    assert rep.summary["cv_mape"] <= 0.10
    assert load_device("note10").name == "note10"


def test_missing_calibration_data(tmp_path):
    from search_space import UserError

    with pytest.raises(UserError, match="missing"):
        pixel1_data(tmp_path)
