"""nas/train_cli.py: the per-epoch line, the learning-rate and few-steps notes, the data set of an
exported folder (the commands themselves: tests/trainer/test_train.py)."""

import pytest

from nas.train_cli import EpochLines


def test_each_epoch_line_says_the_pace_since_the_first_epoch_and_the_time_left():
    t = iter([100.0, 190.0, 250.0, 310.0, 370.0])  # start, then epochs 1-4 ending
    lines = EpochLines(clock=lambda: next(t))
    assert lines.line(1, 4, 2.34567) == "  epoch 1/4  loss 2.3457  (1 min 30 s in)"  # compiling included
    assert lines.line(2, 4, 1.5) == "  epoch 2/4  loss 1.5000  (60.0 s an epoch, about 2 min 00 s left)"
    assert lines.line(3, 4, 1.25) == "  epoch 3/4  loss 1.2500  (60.0 s an epoch, about 1 min 00 s left)"
    assert lines.line(4, 4, 1.0) == "  epoch 4/4  loss 1.0000  (60.0 s an epoch)"  # the result line follows


def test_a_resumed_run_counts_its_pace_from_the_first_epoch_it_trains():
    t = iter([0.0, 40.0, 70.0, 160.0])  # resumed after epoch 6 of 10: restore and compile, 30 s, 90 s
    lines = EpochLines(clock=lambda: next(t))
    assert lines.line(7, 10, 0.5).endswith("(40 s in)")  # restore and compile included
    assert lines.line(8, 10, 0.5).endswith("(30.0 s an epoch, about 1 min 00 s left)")
    assert lines.line(10, 10, 0.4).endswith("(40.0 s an epoch)")  # epochs 8-10: 120 s over 3 epochs


def test_the_default_learning_rate_keeps_the_recipes_rate_per_image():
    from nas.train_cli import default_learning_rate

    assert [default_learning_rate(b) for b in (256, 128, 64, 32)] == [0.2, 0.1, 0.05, 0.025]


def test_a_run_of_few_optimizer_steps_is_told_a_batch_that_gives_enough():
    from nas.config import FEW_STEPS, few_steps_note

    assert few_steps_note(2000, 256, 1) == (
        "note: 7 optimizer steps in all (2,000 images at batch 256, 1 epoch), where the recipe takes 175 an "
        "epoch on CIFAR-10: --batch-size 32 gives 62 (the default lr scales with it)")
    assert "1 optimizer step in all (100 images at batch 100, 1 epoch)" in few_steps_note(100, 256, 1)
    assert few_steps_note(100, 256, 2).endswith("--batch-size 16 gives 12 (the default lr scales with it)")
    assert few_steps_note(45000, 256, 10) is None and few_steps_note(2000, 32, 1) is None
    assert few_steps_note(300, 16, 1) is None  # nothing smaller to offer
    assert few_steps_note(FEW_STEPS * 64, 64, 1) is None and few_steps_note(FEW_STEPS * 64 - 1, 64, 1)
    # a retraining recipe (nas retrain, retrain-spec) is told --set items that keep its rate per image
    from trainer.retrain import RECIPES, with_epochs

    assert few_steps_note(450, 256, 2, with_epochs(RECIPES["fast"], 2)) == (
        "note: 2 optimizer steps in all (450 images at batch 256, 2 epochs), where the recipe takes 195 an epoch on "
        "CIFAR-10: --set batch_size=16 --set learning_rate=0.0125 gives 56 (the recipe's rate per image)")
    assert few_steps_note(2000, 128, 1, RECIPES["wrn"]).endswith(
        "--set batch_size=32 --set learning_rate=0.025 gives 62 (the recipe's rate per image)")


def test_nas_train_scales_the_default_learning_rate_with_the_batch_and_says_so(dataset, monkeypatch, capsys):
    import trainer.train
    from nas.cli import main
    from trainer.train import MemberResult

    seen = []

    def fake_train(member, split, config, seed, progress):  # what the command prints around training
        seen.append((config, len(split.y_train)))
        return MemberResult("x", "ok", val_accuracy=0.5)

    monkeypatch.setattr(trainer.train, "train_member", fake_train)
    args = ["train", "mobilenetv2", "--dataset", dataset, "--epochs", "1", "--train-examples", "2000", "--json"]
    assert main([*args, "--batch-size", "32"]) == 0
    err = capsys.readouterr().err
    assert seen[-1][0].learning_rate == 0.025 and seen[-1][0].batch_size == 32 and seen[-1][1] == 2000
    assert "28px, 1 epoch, batch 32, lr 0.025\n" in err and "note:" not in err
    assert main(args) == 0  # batch 256 at the recipe's 0.2: 7 steps, and a note that says what gives more
    err = capsys.readouterr().err
    assert seen[-1][0].learning_rate == 0.2 and "batch 256, lr 0.2" in err
    assert "note: 7 optimizer steps in all" in err and "--batch-size 32 gives 62" in err
    assert main([*args, "--batch-size", "32", "--lr", "0.3"]) == 0  # a given --lr is kept
    assert seen[-1][0].learning_rate == 0.3
    assert main([*args, "--batch-size", "32", "--set", "batch_size=64"]) == 0  # --set: the rate stays, with a note
    err = capsys.readouterr().err
    assert seen[-1][0].batch_size == 64 and seen[-1][0].learning_rate == 0.025
    assert ("note: --set batch_size=64 keeps the learning rate 0.025 set for batch 32; "
            "--set learning_rate=0.05 keeps its rate per image") in err


def test_a_batch_set_without_its_learning_rate_is_noted_with_the_rate_per_image():
    from nas.config import batch_without_lr_note
    from trainer.retrain import RECIPES

    fast = RECIPES["fast"]  # 0.2 at batch 256
    assert batch_without_lr_note(fast, ["batch_size=64"]) == (
        "note: --set batch_size=64 keeps the learning rate 0.2 set for batch 256; "
        "--set learning_rate=0.05 keeps its rate per image")
    assert batch_without_lr_note(fast, ["trainer.batch_size=64", "trainer.learning_rate=0.2"]) is None  # as asked
    assert batch_without_lr_note(fast, ["batch_size=64", "learning_rate=0.1"]) is None
    assert batch_without_lr_note(fast, ["ema_decay=0.999"]) is None
    assert batch_without_lr_note(fast, ["batch_size=256"]) is None  # the recipe's own batch

    from nas.config import SearchConfig, config_batch_note

    search = SearchConfig(trainer=fast)  # a search's or study's --set names the trainer's keys with their prefix
    assert config_batch_note(search, ["samples_per_size=4", " trainer.batch_size=64"]) == (
        "note: --set trainer.batch_size=64 keeps the learning rate 0.2 set for batch 256; "
        "--set trainer.learning_rate=0.05 keeps its rate per image")
    assert config_batch_note(search, ["trainer.batch_size=64", "trainer.learning_rate=0.1"]) is None
    assert config_batch_note(search, ["samples_per_size=4", "batch=5"]) is None  # the search's own keys only


def test_an_exported_folder_brings_its_own_data_set_at_its_image_size(tmp_path, monkeypatch, capsys):
    import argparse
    import json
    import types

    import numpy as np

    import nas.train_cli
    from nas.cli import main
    from nas.manifest import FORMAT, MANIFEST
    from nas.train_cli import load_data
    from search_space import to_json, zoo
    from search_space.errors import UserError
    from trainer.data import DataError

    native = {"fashion_mnist": 28, "folder:photos": None}
    loads = []

    def fake_load(name, tfds_data_dir=None, manual_dir=None, image_size=None):
        loads.append((name, image_size))
        if name == "missing":
            raise DataError("dataset missing: not found")
        size = image_size or native[name]
        return types.SimpleNamespace(name=name, x_train=np.zeros((1, size, size, 1), np.uint8))

    monkeypatch.setattr(nas.train_cli, "load_dataset", fake_load)

    def folder(dataset, image_size):
        out = tmp_path / f"{dataset.replace(':', '_')}_{image_size}"
        out.mkdir()
        member = zoo.get("mobilenetv2", resolution=image_size, width_multiplier=0.25)
        manifest = {"format": FORMAT, "dataset": dataset, "class_names": ["a", "b"], "image_size": image_size,
                    "channels": 1, "mean": [0.3], "std": [0.4],
                    "members": [{"spec": json.loads(to_json(member)), "weights": "member0.npz"}]}
        (out / MANIFEST).write_text(json.dumps(manifest))
        return str(out)

    def args(spec, dataset=None, image_size=None):
        return argparse.Namespace(spec=spec, dataset=dataset, image_size=image_size, data_dir=None, manual_dir=None)

    assert load_data(args(folder("fashion_mnist", 28))).name == "fashion_mnist"
    assert loads == [("fashion_mnist", None)]  # as it is: the export's size
    loads.clear()
    assert load_data(args(folder("fashion_mnist", 32))).x_train.shape[1] == 32
    assert loads == [("fashion_mnist", None), ("fashion_mnist", 32)]  # exported resized (--image-size 32)
    loads.clear()
    load_data(args(folder("folder:photos", 64)))
    assert loads == [("folder:photos", 64)]  # photos of mixed sizes load at the exported size at once
    loads.clear()
    load_data(args(str(tmp_path / "fashion_mnist_28"), dataset="cifar10", image_size=48))
    assert loads == [("cifar10", 48)]  # --dataset and --image-size as given win
    missing = folder("missing", 28)
    with pytest.raises(UserError, match=f"^dataset missing: not found \\(the data set {missing} was exported "
                                        "from; --dataset names another\\)$"):
        load_data(args(missing))

    assert main(["train", "mobilenetv2", "--epochs", "1"]) == 2  # a named network has no data set of its own
    assert capsys.readouterr().err.strip() == ("nas train: error: --dataset: required (only an exported "
                                               "ensemble's folder as SPEC names its own)")


def test_retrain_spec_says_whether_its_accuracy_was_resumed_or_read_back():
    from nas.train_cli import _retrain_origin

    assert _retrain_origin(0, False) == ""  # trained from its start
    assert _retrain_origin(2, False) == " (resumed after epoch 2)"
    assert _retrain_origin(3, True) == " (a finished run: its saved test logits)"


def test_the_recipe_help_says_what_each_recipe_is():
    """`nas retrain --help` and `nas retrain-spec --help` describe the recipes without loading JAX, so
    their words are written out in nas.cli: they must say what trainer.retrain.RECIPES hold."""
    from nas.cli import RECIPE_HELP, RECIPE_NAMES, build_parser
    from trainer.retrain import RECIPES, describe_recipe

    assert sorted(RECIPE_NAMES) == sorted(RECIPES)
    for name, recipe in RECIPES.items():
        assert f"{name} " in RECIPE_HELP and describe_recipe(recipe) in RECIPE_HELP, name
        assert recipe.augment and recipe.flip and recipe.crop_pad > 0  # "both with random crops and flips"
    assert describe_recipe(RECIPES["fast"].replace(schedule="onecycle", nesterov=False)).startswith(
        "40 epochs at batch 256, SGD with momentum 0.9, lr 0.2 after 2 warm-up epochs, onecycle")
    parser = build_parser()
    for command in ("retrain", "retrain-spec"):
        sub = parser._subparsers._group_actions[0].choices[command]
        recipe = next(a for a in sub._actions if "--recipe" in a.option_strings)
        assert recipe.help == RECIPE_HELP and recipe.default == "fast"
