"""nas/words.py: how the commands count things."""

from nas.words import counted


def test_counted_is_singular_for_one_only():
    assert counted(1, "member") == "1 member" and counted(3, "member") == "3 members"
    assert counted(0, "result") == "0 results"
    assert counted(1.0, "epoch") == "1 epoch" and counted(2.5, "epoch") == "2.5 epochs"  # floats as :g writes them
    assert counted("?", "proxy epoch") == "? proxy epochs"  # a setting a record lacks
    assert counted(2, "launch", "launches") == "2 launches" and counted(1, "launch", "launches") == "1 launch"
