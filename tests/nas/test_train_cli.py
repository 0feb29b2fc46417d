"""nas/train_cli.py's per-epoch line (the commands themselves: tests/trainer/test_train.py)."""

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
