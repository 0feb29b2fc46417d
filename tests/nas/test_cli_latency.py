import json

import pytest

from nas.cli import main


def test_latency_json(capsys):
    assert main(["latency", "mnasnet-a1", "--resolution", "224", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["latency_ms"] == pytest.approx(81.63, abs=0.05)
    assert len(d["layers"]) > 10 and 0 < d["measured_fraction"] < 1


def test_latency_table_and_ensemble(tmp_path, capsys):
    assert main(["latency", "mobilenetv2", "--width-multiplier", "0.5", "--device", "note10"]) == 0
    assert "on note10" in capsys.readouterr().out
    from search_space import EnsembleSpec, to_json, zoo

    path = tmp_path / "e.json"
    path.write_text(to_json(EnsembleSpec((zoo.get("mnasnet-a1"), zoo.get("mnasnet-small")))))
    assert main(["latency", str(path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["latency_ms"] == max(m["latency_ms"] for m in d["members"])
    assert d["latency_sum_ms"] == pytest.approx(sum(m["latency_ms"] for m in d["members"]))


def test_describe_shows_latency(capsys):
    assert main(["describe", "mnasnet-a1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["latency_ms"] == pytest.approx(81.63, abs=0.05)


def test_calibrate_latency_writes_plot_and_device(tmp_path, capsys):
    plot, dev = tmp_path / "cal.png", tmp_path / "dev.json"
    assert main(["calibrate-latency", "--plot", str(plot), "--write", str(dev), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["cv_mape"] <= 0.10 and plot.stat().st_size > 10_000
    assert main(["latency", "mobilenetv2", "--device", str(dev), "--json"]) == 0
    # an unwritable --write is refused before the plot is written, not after
    again = tmp_path / "again.png"
    assert main(["calibrate-latency", "--plot", str(again), "--write", str(tmp_path / "no" / "dev.json")]) == 2
    assert f"--write: cannot write {tmp_path}/no/dev.json: no folder {tmp_path}/no" in capsys.readouterr().err
    assert not again.exists()


@pytest.mark.parametrize("argv, msg", [(["latency", "mnasnet-a1", "--device", "nokia"], "device"),
                                       (["latency", "mnasnet-a1", "--era", "1999"], "era"),
                                       (["calibrate-latency", "--data", "/nonexistent"], "missing")])
def test_latency_bad_input(argv, msg, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1
