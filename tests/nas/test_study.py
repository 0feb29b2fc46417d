"""Scaling studies: subset draws, points, findings, configs; and a miniature study through the CLI
on real data (two tiny WRNs, one epoch), extended with --resume, as the paper's Figure 1 is built."""

import json
import math
import re

import numpy as np
import pandas as pd
import pytest

from nas.config import apply_overrides
from nas.study import (StudyConfig, TrainedMember, architecture_spec, findings, member_subsets, study_points,
                       summarize)
from nas.study_cli import study_config
from search_space.errors import UserError
from search_space.layers import count
from tests.conftest import nas_here, run_module


def test_member_subsets_enumerate_small_cases_and_sample_large_ones():
    rng = np.random.default_rng(0)
    assert member_subsets(3, 2, 3, rng) == [(0, 1), (0, 2), (1, 2)]
    assert member_subsets(3, 3, 8, rng) == [(0, 1, 2)]
    assert member_subsets(2, 3, 8, rng) == []
    many = member_subsets(8, 4, 8, rng)  # C(8, 4) = 70 > 8: eight distinct random subsets
    assert len(many) == 8 == len(set(many)) and all(len(s) == 4 and list(s) == sorted(s) for s in many)
    assert len(member_subsets(8, 1, 8, rng)) == 8  # C(8, 1) = 8: every single member


def _members(arch, accs, labels, rng):
    out = []
    for seed, acc in enumerate(accs):
        right = rng.random(len(labels)) < acc
        pred = np.where(right, labels, (labels + 1 + rng.integers(0, 8, len(labels))) % 10)
        out.append(TrainedMember(arch, seed, "ok", acc, 4.0 * np.eye(10)[pred]))
    return out


def test_points_carry_ensemble_flops_and_metrics():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, 2000)
    cfg = StudyConfig(architectures=("wrn-16-1", "wrn-16-2"), members=3, draws=2)
    members = {"wrn-16-1": _members("wrn-16-1", [0.6, 0.6, 0.6], labels, rng),
               "wrn-16-2": _members("wrn-16-2", [0.7, 0.7], labels, rng)}
    pts = study_points(cfg, members, labels, 32, 10)
    # wrn-16-1: n=1 C(3,1)=3 > 2 draws -> 2; n=2 3 > 2 -> 2; n=3 -> 1. wrn-16-2: n=1 2; n=2 1.
    assert list(pts.groupby(["architecture", "n"]).size()) == [2, 2, 1, 2, 1]
    single = count(architecture_spec("wrn-16-1", cfg, 32), 10)
    row = pts[(pts["architecture"] == "wrn-16-1") & (pts["n"] == 3)].iloc[0]
    assert row["flops"] == 3 * single.flops and row["params"] == 3 * single.params
    assert row["seeds"] == "0 1 2"
    # independent errors: the geometric mean of three 60% members is well above 60%
    assert row["accuracy"] > 0.7 and row["mean_member_accuracy"] == pytest.approx(0.6, abs=0.03)
    s = summarize(pts)
    assert set(s.columns) >= {"architecture", "n", "flops", "accuracy_mean", "accuracy_std", "nll_mean"}


def test_findings_name_the_cheapest_smaller_ensemble_that_matches_a_single_model():
    summary = pd.DataFrame([
        {"architecture": "small", "n": 1, "flops": 10, "accuracy_mean": 0.80},
        {"architecture": "small", "n": 2, "flops": 20, "accuracy_mean": 0.84},
        {"architecture": "small", "n": 3, "flops": 30, "accuracy_mean": 0.86},
        {"architecture": "big", "n": 1, "flops": 40, "accuracy_mean": 0.85},
        {"architecture": "big", "n": 2, "flops": 80, "accuracy_mean": 0.88},
        {"architecture": "huge", "n": 1, "flops": 160, "accuracy_mean": 0.90},
    ])
    rows = {r["single"]: r for r in findings(summary)}
    assert rows["big"]["beaten"] and rows["big"]["ensemble"] == "3 x small"
    assert rows["big"]["flops_ratio"] == pytest.approx(30 / 40)
    assert not rows["huge"]["beaten"] and not rows["small"]["beaten"]
    # a miss names the most accurate ensemble of smaller models under its FLOPs, and by how much it fell short
    assert rows["huge"]["closest"] == "2 x big" and rows["huge"]["shortfall"] == pytest.approx(0.02)
    assert rows["huge"]["closest_flops_ratio"] == pytest.approx(80 / 160)
    assert "closest" not in rows["small"] and "closest" not in rows["big"]  # none to compare / matched


def test_every_committed_studys_findings_are_its_summarys():
    """The findings.json of each committed study (GPU and CPU) is what findings() gives from its
    summary.csv: the verdicts and shortfalls the docs quote come from one place."""
    from tests.conftest import ROOT

    paths = sorted((ROOT / "experiments" / "results").glob("**/findings.json"))
    assert len(paths) >= 6
    for path in paths:
        assert json.loads(path.read_text()) == findings(pd.read_csv(path.parent / "summary.csv")), path


def test_configs_resolutions_and_validation():
    cifar = study_config("efficientnet-cifar")
    assert [architecture_spec(a, cifar, 32).resolution for a in cifar.architectures] == [32, 34, 37, 43, 54, 65]
    # small data gets the search space's small-input rule (stride 8), decided by the native size
    assert {architecture_spec(a, cifar, 32).stem_stride for a in cifar.architectures} == {1}
    assert architecture_spec("efficientnet-b0", study_config("efficientnet"), 224).stem_stride == 2
    mnv2 = study_config("mobilenetv2-cifar")
    spec = architecture_spec("mobilenetv2", mnv2, 32)
    assert (spec.resolution, spec.stem_stride, mnv2.members, mnv2.eval_split) == (32, 1, 3, "validation")
    assert sum(b.strides == 2 for b in spec.blocks) == 3  # 32 px ends at 4x4
    wrn = study_config("wrn")
    assert wrn.members == 8 and [architecture_spec(a, wrn, 32).width for a in wrn.architectures] == [1, 2, 4, 8]
    imagenet = study_config("efficientnet")
    assert imagenet.members == 3 and imagenet.image_size == 64
    assert architecture_spec("efficientnet-b5", imagenet, 64).resolution == 130
    with pytest.raises(UserError, match="architectures: unknown name 'wrn-16-x'"):
        StudyConfig(architectures=("wrn-16-x",))
    with pytest.raises(UserError, match="eval_split"):
        StudyConfig(eval_split="train")
    with pytest.raises(UserError, match="unknown study"):
        study_config("resnet")
    # overrides apply together, so an epoch count below the current warm-up is fine before it
    c = apply_overrides(wrn, ["trainer.epochs=1", "trainer.warmup_epochs=0.5", "members=2"])
    assert c.trainer.epochs == 1 and c.members == 2


MINI = """
from nas.study import StudyConfig
from trainer.config import TrainConfig


def get_config():
    return StudyConfig(architectures=("wrn-10-1", "wrn-10-2"), dataset={dataset!r}, members=1, draws=2,
                       train_examples=256, test_examples=200, resolution_scale=0.5,
                       trainer=TrainConfig(epochs=1, batch_size=16, learning_rate=0.05, warmup_epochs=0.1))
"""


def test_miniature_study_end_to_end_then_extended(tmp_path, dataset):
    cfg = tmp_path / "mini.py"
    cfg.write_text(MINI.format(dataset=dataset))
    run = tmp_path / "study"
    out = nas_here("study", str(cfg), "--run-dir", str(run))
    first = (run / "records.jsonl").read_text().splitlines()
    assert sorted(json.loads(l)["architecture"] for l in first) == ["wrn-10-1", "wrn-10-2"]
    assert json.loads(first[0])["versions"]["device"] == "cpu"  # where each member was trained
    # progress as a search's: members trained of those to train, time so far, time left
    assert re.search(r"\n    \[1/2, \d+m\d\ds, about \d+m\d\ds left\] wrn-10-\d seed 0: ", out.stderr)
    assert re.search(r"\n    \[2/2, \d+m\d\ds\] wrn-10-\d seed 0: ", out.stderr)

    # extended through worker processes (the GPU default), which share the run's compilation cache
    out = nas_here("study", "x", "--run-dir", str(run), "--resume", "--set", "members=2", "--json",
                   "--backend", "processes", "--workers", "2")
    assert "seed 1: training wrn-10-1 14px, wrn-10-2 14px (processes)" in out.stderr
    assert "[1/2, " in out.stderr and "[2/2, " in out.stderr and "[3/" not in out.stderr  # the two to train
    lines = (run / "records.jsonl").read_text().splitlines()
    assert lines[:2] == first and len(lines) == 4  # the first two members were read back, not retrained
    assert [json.loads(l)["seed"] for l in lines[2:]] == [1, 1]
    result = json.loads(out.stdout)
    assert result["trained"] == {"wrn-10-1": 2, "wrn-10-2": 2}
    pts = pd.read_csv(run / "points.csv")
    assert (pts["resolution"] == 14).all()
    assert sorted(zip(pts["architecture"], pts["n"])) == [("wrn-10-1", 1), ("wrn-10-1", 1), ("wrn-10-1", 2),
                                                          ("wrn-10-2", 1), ("wrn-10-2", 1), ("wrn-10-2", 2)]
    assert ((pts["accuracy"] > 0.1) & (pts["accuracy"] <= 1)).all()  # better than chance on 10 classes
    single = pts[(pts["architecture"] == "wrn-10-1") & (pts["n"] == 1)]["flops"].iloc[0]
    assert (pts[(pts["architecture"] == "wrn-10-1") & (pts["n"] == 2)]["flops"] == 2 * single).all()
    assert (run / "plots" / "scaling.png").stat().st_size > 10_000
    assert [r["single"] for r in json.loads((run / "findings.json").read_text())] == ["wrn-10-1", "wrn-10-2"]
    assert json.loads((run / "config.json").read_text())["members"] == 2
    assert not math.isnan(pts["nll"].max())
    launches = [json.loads(l) for l in (run / "launches.jsonl").read_text().splitlines()]
    assert [l["resume"] for l in launches] == [False, True] and launches[1]["command"].startswith("nas study x ")
    page = nas_here("report", str(run))  # the study's page: the same findings and numbers
    assert page.stdout.strip() == f"report: {run / 'report.md'}"
    text = (run / "report.md").read_text()
    assert text.startswith("# Scaling study `study`") and "![accuracy and NLL against total FLOPs](plots/scaling.png)" in text
    summary = pd.read_csv(run / "summary.csv")
    for _, r in summary.iterrows():
        assert f"| {r['architecture']} | {r['n']} | {r['flops'] / 1e9:.3g} |" in text
    assert "- **wrn-10-2** (" in text and launches[0]["command"] in text
    assert "| wrn-10-1 | 2 | 0 |" in text  # members per architecture, none failed


def test_the_members_table_gives_the_as_is_accuracy_of_members_scored_with_flips():
    from nas.study_report import _members

    rec = lambda seed, acc, views: {"architecture": "mobilenetv2", "seed": seed, "status": "ok",  # noqa: E731
                                    "val_accuracy": acc, "view_accuracies": views, "compile_s": 1.0,
                                    "train_s": 2.0, "reason": ""}
    text = "\n".join(_members([rec(0, 0.84, [0.83, 0.82]), rec(1, 0.86, [0.85, 0.84])]))
    assert "| accuracy | as is |" in text and "| 85.00% ± 1.41 | 84.00% ± 1.41 |" in text
    assert "as is" not in "\n".join(_members([rec(0, 0.84, [])]))  # one view: no such column


def test_study_time_limit_and_bad_input(tmp_path, dataset):
    cfg = tmp_path / "mini.py"
    cfg.write_text(MINI.format(dataset=dataset))
    # a limit past before the first seed (0.6 ms, as this test had, once let a seed start in a full run)
    out = nas_here("study", str(cfg), "--run-dir", str(tmp_path / "s"), "--max-minutes", "1e-9",
                   "--set", "trainer.batch_size=32")
    assert "time limit reached; 0/2 members trained" in out.stderr
    # the batch changed without its rate: noted first, in the config's own keys (the study's 0.05 at 16)
    assert out.stderr.startswith("note: --set trainer.batch_size=32 keeps the learning rate 0.05 set for batch 16; "
                                 "--set trainer.learning_rate=0.1 keeps its rate per image\nstudy: wrn-10-1, ")
    assert not (tmp_path / "s" / "records.jsonl").exists()
    config_before = (tmp_path / "s" / "config.json").read_bytes()
    for i, (args, message) in enumerate([
        (("study", "resnet", "--run-dir", str(tmp_path / "a")), "unknown study 'resnet'"),
        (("study", str(cfg), "--run-dir", str(tmp_path / "b"), "--set", "members=0"), "members: must be in 1..64"),
        (("study", str(cfg), "--run-dir", str(tmp_path / "b"), "--set", "seed=-1"), "seed: must be an int in 0.."),
        (("study", str(cfg), "--run-dir", str(tmp_path / "c"), "--set", "dataset=npz:/nonexistent.npz"),
         "does not exist"),
        (("study", "wrn", "--run-dir", str(tmp_path / "none"), "--resume"), "not a run directory"),
        (("study", str(cfg), "--run-dir", str(tmp_path / "s")), "already holds a run"),
        # a split the data cannot give: refused before a new run is made or a resumed one's config rewritten
        (("study", str(cfg), "--run-dir", str(tmp_path / "d"), "--set", "train_examples=70000"),
         "train_examples: 70000 not in 1.."),
        (("study", str(cfg), "--run-dir", str(tmp_path / "s"), "--resume", "--set", "train_examples=70000"),
         "train_examples: 70000 not in 1.."),
    ]):
        # the first in a process of its own, as a user meets it; the rest in this one (3-6 s a process)
        out = run_module("nas", *args) if i == 0 else nas_here(*args, check=False)
        assert out.returncode == 2 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1, \
            (args, out.stderr[-2000:])
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists() and not (tmp_path / "d").exists()
    assert (tmp_path / "s" / "config.json").read_bytes() == config_before


def test_a_resumed_study_of_a_search_run_says_what_the_run_is(tmp_path, capsys):
    from nas.cli import main
    from nas.config import SearchConfig
    from nas.store import RunDir

    run = RunDir(tmp_path / "search")
    run.create(SearchConfig().to_dict())
    before = {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()}
    assert main(["study", "wrn", "--run-dir", str(run.path), "--resume"]) == 2
    assert capsys.readouterr().err.strip() == (f"nas study: error: {run.path}: a search's run (nas search), not a "
                                               f"scaling study; `nas search --run-dir {run.path} --resume` continues it")
    assert {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()} == before


def test_a_study_into_a_run_another_study_is_writing_is_refused(tmp_path, monkeypatch, capsys):
    import nas.cli
    import trainer.data
    from nas.cli import main
    from nas.store import RunDir

    run = RunDir(tmp_path / "study")
    run.create(StudyConfig(dataset="fashion_mnist").to_dict())
    from tests.nas.test_search_controllers import _dataset

    made_up = _dataset()  # split (checked before any write) but never trained on: refused before that
    monkeypatch.setattr(trainer.data, "load_dataset", lambda *a, **k: made_up)
    monkeypatch.setattr(nas.cli, "evaluator_from_args", lambda args: type("Idle", (), {"close": lambda self: None})())
    before = {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file()}
    with run.exclusive("study"):
        assert main(["study", "wrn", "--run-dir", str(run.path), "--resume", "--set", "members=4"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "another `nas study` is writing this run (pid " in err
    assert {p.name: p.read_bytes() for p in run.path.iterdir() if p.is_file() and p.name != "study.lock"} == before
