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


def test_an_exported_folder_is_its_members_on_its_own_classes(tmp_path, capsys):
    from nas.manifest import FORMAT, MANIFEST
    from search_space import EnsembleSpec, to_json, zoo

    members = (zoo.get("mobilenetv2", resolution=28, width_multiplier=0.25), zoo.get("mnasnet-small", resolution=24))
    folder = tmp_path / "pair"
    folder.mkdir()
    (folder / MANIFEST).write_text(json.dumps({
        "format": FORMAT, "class_names": [f"c{i}" for i in range(10)], "image_size": 28, "channels": 1,
        "mean": [0.3], "std": [0.4],
        "members": [{"spec": json.loads(to_json(m)), "weights": f"member{i}.npz"} for i, m in enumerate(members)]}))
    spec_file = tmp_path / "pair.json"
    spec_file.write_text(to_json(EnsembleSpec(members)))
    assert main(["latency", str(spec_file), "--num-classes", "10", "--json"]) == 0
    as_spec = json.loads(capsys.readouterr().out)
    assert main(["latency", str(folder), "--json"]) == 0  # its 10 classes, not ImageNet's 1000
    assert json.loads(capsys.readouterr().out) == as_spec
    assert main(["describe", str(folder), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert [m["num_classes"] for m in d["members"]] == [10, 10] and d["latency_ms"] == as_spec["latency_ms"]
    assert main(["latency", str(tmp_path)]) == 2  # a folder, but not an exported ensemble's
    assert capsys.readouterr().err.strip() == (f"nas latency: error: SPEC: {tmp_path} is a folder without an exported "
                                               "ensemble's ensemble.json; give a JSON spec file, or a folder "
                                               "`nas export` wrote")
    from nas.config import SearchConfig
    from nas.store import RunDir

    RunDir(tmp_path / "run").create(SearchConfig().to_dict())  # a search's run: where its specs come from
    assert main(["describe", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.strip() == (f"nas describe: error: SPEC: {tmp_path / 'run'} is a search's run "
                                               f"directory, not an architecture; `nas show {tmp_path / 'run'} --front "
                                               "--export DIR` writes each front point as a spec file")


def test_a_wrn_is_estimated_on_its_published_ten_classes_as_described(capsys):
    assert main(["latency", "wrn-16-2", "--json"]) == 0
    latency = json.loads(capsys.readouterr().out)["latency_ms"]
    assert main(["describe", "wrn-16-2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["latency_ms"] == latency
    assert main(["latency", "wrn-16-2", "--num-classes", "1000", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["latency_ms"] > latency
