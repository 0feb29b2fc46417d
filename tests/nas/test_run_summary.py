"""The run summary's search pace: members trained per hour of searching, over each launch's stretch
from its start to its last record."""

import pytest

from nas.run_summary import pace_line, search_pace


def _rec(t: float, *members: tuple[str, bool | None]) -> dict:
    """A record at time ``t`` with members (key, cached); cached None: a record from before the field."""
    return {"time": t, "members": [{"key": k} if c is None else {"key": k, "cached": c} for k, c in members]}


def test_pace_counts_each_launchs_trained_members_over_its_start_to_its_last_record():
    launches = [{"time": 1000.0}, {"time": 5000.0}]
    records = [
        _rec(1100.0, ("a", False)),
        _rec(1300.0, ("b", False), ("a", True)),  # a again: no new training
        # launch 1 then trained c in a round a time limit cut: its time after 1300 s is not counted ...
        _rec(5060.0, ("c", True)),  # ... and launch 2 found c in the cache: not counted either
        _rec(5360.0, ("d", False), ("e", False)),
    ]
    pace = search_pace(records, launches)
    assert pace["members"] == 4 and pace["launches"] == 2
    assert pace["seconds"] == pytest.approx(300.0 + 360.0)
    assert pace["per_hour"] == pytest.approx(4 / 660 * 3600)
    assert [(p["members"], p["seconds"]) for p in pace["per_launch"]] == [(2, 300.0), (2, 360.0)]
    assert pace_line(pace) == ("pace: 4 members trained in 11.0 min of searching (2 launches, each from its "
                               "start to its last record), 22 an hour (one launch after another: 24, 20)")


def test_pace_of_older_records_counts_first_appearances_and_needs_launch_times():
    records = [_rec(50.0, ("x", None)), _rec(160.0, ("a", None), ("x", None)), _rec(220.0, ("b", None), ("a", None))]
    pace = search_pace(records, [{"time": 100.0}, {"time": 200.0}, {"time": 900.0}])  # the last recorded nothing
    # x was recorded before the first launch; a and b are first recorded after it
    assert (pace["members"], pace["launches"], pace["seconds"]) == (2, 2, pytest.approx(80.0))
    assert "(2 launches," in pace_line(pace) and pace_line(pace).startswith("pace: 2 members trained in 1.3 min")
    one = search_pace([_rec(160.0, ("a", False), ("b", True))], [{"time": 100.0}])
    assert pace_line(one) == ("pace: 1 member trained in 1.0 min of searching (1 launch, from its start to its "
                              "last record), 60 an hour")
    assert search_pace(records, []) is None and search_pace([], [{"time": 1.0}]) is None
    assert pace_line(None) == ""


def test_records_say_where_they_ran_and_whether_under_mps(monkeypatch):
    from nas.run_summary import devices
    from nas.search import versions

    cpu = {"backend": "cpu", "device": "cpu", "host_cpu": "AMD EPYC (avx2)", "jax": "0.10.2"}
    gpu = {"backend": "gpu", "device": "NVIDIA H100 80GB HBM3", "host_cpu": "Intel Xeon", "jax": "0.11.2"}
    records = [{"versions": cpu}, {"versions": gpu}, {"versions": {**gpu, "mps": True}}, {}]
    assert devices(records) == ["NVIDIA H100 80GB HBM3 (jax 0.11.2)", "NVIDIA H100 80GB HBM3 under MPS (jax 0.11.2)",
                                "cpu AMD EPYC (avx2) (jax 0.10.2)"]
    monkeypatch.delenv("CUDA_MPS_PIPE_DIRECTORY", raising=False)
    assert "mps" not in versions()  # records as before where MPS is not in use
    monkeypatch.setenv("CUDA_MPS_PIPE_DIRECTORY", "/tmp/nas-mps-pipe.x")
    assert versions()["mps"] is True
