"""`nas search --dry-run`: what a search would train, and where its latency target falls, with
nothing trained or written."""

import dataclasses

from controller.evolution import EvolutionConfig
from nas.cli import main
from nas.config import load_config
from nas.plan import members_at_most
from nas.store import RunDir
from tests.nas.test_search_controllers import _dataset, _search


def test_members_at_most_counts_evolutions_children_as_one_new_member_each():
    cifar = load_config("experiments/search_cifar10.py")
    assert [members_at_most(cifar, n, 30) for n in (1, 2, 3)] == [30, 60, 90]  # reinforce: n per sample
    evolution = dataclasses.replace(cifar, controller="evolution")  # population 10 in rounds of 5
    assert [members_at_most(evolution, n, 30) for n in (1, 2, 3)] == [30, 40, 50]  # its docstring's 120
    assert members_at_most(evolution, 3, 8) == 24  # still filling the population: all random
    wider = dataclasses.replace(evolution, evolution=EvolutionConfig(population=12, tournament=3, mutations=2))
    assert members_at_most(wider, 3, 30) == 3 * 15 + 2 * 15  # 3 random rounds of 5, then 2 new per child


def test_a_dry_run_of_an_interrupted_search_counts_what_is_left_and_writes_nothing(tmp_path, monkeypatch, capsys):
    import nas.search_cli

    run = tmp_path / "run"
    _search(run, "evolution", stop_after=5)  # sizes 1 and 2, 8 each planned; done: size 1 x3, size 2 x2
    monkeypatch.setattr(nas.search_cli, "load_config_dataset", lambda config: _dataset())
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    capsys.readouterr()
    assert main(["search", "--run-dir", str(run), "--resume", "--set", "samples_per_size=10", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"nas search --dry-run: resuming {run}"
    assert out[1].startswith("data: made-up at 28 px, 200 training / 100 validation images")
    assert "members at 14/21/24/28 px with the small-input rule (stride 8), widths x0.25, head 128" in out[2]
    # population 4 in rounds of 2: 4 random samples, then one new member per child
    assert out[4].startswith("size 1: 7 of 10 samples to go, at most 7 members to train; space 10^20; ")
    assert out[5].startswith("size 2: 8 of 10 samples to go, at most 10 members to train; space 10^41; ")
    assert "random ensembles' max member latency " in out[5] and out[5].endswith("within the 75 ms target")
    assert out[6].startswith("so far, members: 7 trained (0 failed), per member mean setup ")  # 3 singles, 2 pairs
    assert out[7].startswith("in all: at most 17 members to train")
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before  # no launch, no new config
    assert RunDir(run).read_config()["samples_per_size"] == 8


def test_a_dry_run_of_a_new_search_names_its_members_and_target_and_creates_no_run(tmp_path, monkeypatch, capsys):
    import nas.search_cli

    monkeypatch.setattr(nas.search_cli, "load_config_dataset", lambda config: _dataset())
    capsys.readouterr()
    assert main(["search", "--config", "experiments/demo.py", "--run-dir", str(tmp_path / "new"), "--set",
                 "val_size=100", "--set", "train_examples=200", "--set", "controller=random", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "controller: random, 2 samples per size in rounds of 2; trainer: 1 epoch, batch 32" in out
    assert "size 3: 2 of 2 samples to go, at most 6 members to train" in out and "within the 3 ms target" in out
    assert "in all: at most 12 members to train" in out and not (tmp_path / "new").exists()
    # the demo's lr 0.1 at batch 32 with another batch: noted as a run would note it
    assert main(["search", "--config", "experiments/demo.py", "--run-dir", str(tmp_path / "new"), "--set",
                 "val_size=100", "--set", "train_examples=200", "--set", "trainer.batch_size=64", "--dry-run"]) == 0
    assert capsys.readouterr().err == ("note: --set trainer.batch_size=64 keeps the learning rate 0.1 set for batch "
                                       "32; --set trainer.learning_rate=0.2 keeps its rate per image\n")
