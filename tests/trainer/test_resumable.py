"""`nas train --checkpoint-dir`: a proxy run that checkpoints, stops at a time limit and resumes
exactly (trainer/resumable.py). A kill at any moment is covered by retraining's test of the same
checkpoint folder (tests/trainer/test_train.py: killed mid-run, resumed exactly)."""

import json

import numpy as np
import pytest

from search_space import to_json
from tests.conftest import nas_here
from tests.trainer.test_train import tiny_member
from trainer.checkpoint_folder import RUN_FILE
from trainer.checkpoints import checkpoint_steps


@pytest.fixture
def small(fashion, tmp_path):
    """512 Fashion-MNIST training images (a validation split of 128 is carved from them) as an npz
    set, and the tiny member as a spec file."""
    np.savez(tmp_path / "fm.npz", x_train=fashion.x_train[:512], y_train=fashion.y_train[:512],
             x_test=fashion.x_test[:64], y_test=fashion.y_test[:64])
    (tmp_path / "m.json").write_text(to_json(tiny_member()))
    return tmp_path


def _train(folder, *more, epochs=3):
    return ["train", str(folder / "m.json"), "--dataset", f"npz:{folder / 'fm.npz'}", "--val-size", "128",
            "--epochs", str(epochs), "--batch-size", "64", "--lr", "0.05", "--tta-flip", *more]


def test_a_run_stopped_by_its_time_limit_resumes_exactly_and_a_finished_one_scores_again(small):
    ckpt = small / "ckpt"
    stopped = nas_here(*_train(small, "--checkpoint-dir", str(ckpt), "--every", "2", "--max-minutes", "1e-6", "--json"))
    # the limit passed in the first epoch: it is checkpointed there, though --every says 2
    assert json.loads(stopped.stdout) == {"stopped_after_epoch": 1, "epochs": 3, "checkpoint_dir": str(ckpt)}
    assert "stopped after epoch 1 of 3, with a checkpoint in" in stopped.stderr and checkpoint_steps(ckpt) == [1]
    resumed_run = nas_here(*_train(small, "--checkpoint-dir", str(ckpt), "--every", "2", "--json"))
    resumed = json.loads(resumed_run.stdout)
    assert f"checkpoints in {ckpt}, resumed after epoch 1" in resumed_run.stderr
    fresh = json.loads(nas_here(*_train(small, "--json")).stdout)  # no folder: the plain proxy run
    assert resumed["resumed_from_epoch"] == 1 and len(resumed["epoch_s"]) == 2  # epochs 2 and 3 trained here
    assert resumed["loss_curve"] == fresh["loss_curve"] and len(fresh["loss_curve"]) == 3
    assert resumed["val_accuracy"] == fresh["val_accuracy"] and resumed["view_accuracies"] == fresh["view_accuracies"]
    assert sorted(checkpoint_steps(ckpt)) == [2, 3]  # every 2nd epoch and the last; the latest two kept
    # the finished folder scores its last checkpoint again, training nothing and compiling no training program
    again = json.loads(nas_here(*_train(small, "--checkpoint-dir", str(ckpt), "--json")).stdout)
    assert again["resumed_from_epoch"] == 3 and again["compile_s"] == 0.0 and again["epoch_s"] == []
    assert again["val_accuracy"] == fresh["val_accuracy"] and again["loss_curve"] == fresh["loss_curve"]


def test_another_runs_folder_and_options_it_cannot_serve_are_one_error_line_each(small):
    ckpt = small / "ckpt"
    nas_here(*_train(small, "--checkpoint-dir", str(ckpt), "--max-minutes", "1e-6"))
    before = {p.relative_to(ckpt): p.read_bytes() for p in ckpt.rglob("*") if p.is_file()}
    assert json.loads((ckpt / RUN_FILE).read_text())["run"] == "nas train"
    another = (f"{ckpt}: holds the training of another member or setting ({{}} differ); choose another "
               "--checkpoint-dir, or the same member and settings to resume it")
    for more, epochs, message in [
        (["--seed", "1"], 3, another.format("training_data, seed")),  # the seed carves another validation split
        ([], 4, another.format("trainer.epochs, trainer.warmup_epochs")),  # warm-up: a tenth of the epochs
        (["--set", "compile_unit=layer"], 3, "--checkpoint-dir: trains one program per member "
                                             "(trainer.compile_unit=program), not 'layer'"),
    ]:
        refused = nas_here(*_train(small, "--checkpoint-dir", str(ckpt), *more, epochs=epochs), check=False)
        assert refused.returncode == 2 and refused.stderr.strip().splitlines() == [f"nas train: error: {message}"]
    assert {p.relative_to(ckpt): p.read_bytes() for p in ckpt.rglob("*") if p.is_file()} == before
    for option, where in [("--max-minutes", "where the stopped run's checkpoint goes"),
                          ("--every", "where the checkpoints go")]:
        no_folder = nas_here(*_train(small, option, "5"), check=False)
        assert no_folder.returncode == 2 and no_folder.stderr.strip().splitlines() == [
            f"nas train: error: {option}: needs --checkpoint-dir ({where})"]
