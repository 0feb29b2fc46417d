import json

import pytest

from nas.cli import main


def _json_out(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_describe_mnasnet_a1_json_prints_published_counts(capsys):
    d = _json_out(capsys, "describe", "mnasnet-a1", "--resolution", "224", "--json")
    assert d["params"] / 1e6 == pytest.approx(3.9, rel=0.03)
    assert d["multiply_adds"] / 1e6 == pytest.approx(312, rel=0.03)
    assert sum(l["params"] for l in d["layers"]) == d["params"]


def test_describe_table(capsys):
    assert main(["describe", "mobilenetv2", "--width-multiplier", "0.5", "--resolution", "128"]) == 0
    out = capsys.readouterr().out
    assert "block7.0" in out and "classifier" in out and "multiply-adds" in out


def test_describe_block_strings_and_json_file(tmp_path, capsys):
    d = _json_out(capsys, "describe", "r1_k3_s11_e1_i16_o16 r2_k5_s22_e6_i16_o24_se0.25", "--stem", "16",
                  "--head", "0", "--resolution", "32", "--num-classes", "10", "--json")
    assert [l["op"] for l in d["layers"]] == ["stem", "sepconv", "mbconv", "mbconv", "classifier"]
    path = tmp_path / "spec.json"
    path.write_text(json.dumps({"family": "ensemble", "members": [d["spec"], {"family": "wrn", "depth": 16, "width": 2}]}))
    e = _json_out(capsys, "describe", str(path), "--json")
    assert len(e["members"]) == 2 and e["params"] == sum(m["params"] for m in e["members"])


def test_small_input_describes_a_network_as_train_and_study_train_it_on_small_data(tmp_path, capsys):
    # EfficientNet-b1 at 34 px was described with ImageNet's strides (32.7M multiply-adds, ending
    # at 2x2) while the CIFAR-10 study trains it at stride 8 (236M): a note says so, the flag gives
    # the network trained
    from experiments.study_efficientnet_cifar import get_config
    from nas.study import architecture_spec
    from search_space.layers import count
    from search_space.spec import spec_id

    trained = architecture_spec("efficientnet-b1", get_config(), 32)
    argv = ["efficientnet-b1", "--resolution", "34", "--num-classes", "10", "--json"]
    assert main(["describe", *argv]) == 0
    out = capsys.readouterr()
    published = json.loads(out.out)
    assert out.err.startswith("note: on data of 64 px or less (this is at 34 px)")
    assert out.err.endswith("--small-input describes that\n") and out.err.count("\n") == 1
    adapted = _json_out(capsys, "describe", *argv, "--small-input")
    assert adapted["id"] == spec_id(trained) and adapted["multiply_adds"] == count(trained, 10).multiply_adds
    assert adapted["multiply_adds"] > 5 * published["multiply_adds"]
    assert main(["latency", *argv]) == 0 and "--small-input estimates that" in capsys.readouterr().err
    fast, slow = (_json_out(capsys, "latency", *argv, *flag)["latency_ms"] for flag in ((), ("--small-input",)))
    assert slow > 3 * fast
    # no note at ImageNet sizes or for a network already adapted; nothing for the flag to change is one line
    assert main(["describe", "mnasnet-a1", "--json"]) == 0 and capsys.readouterr().err == ""
    path = tmp_path / "adapted.json"
    path.write_text(json.dumps(adapted["spec"]))
    assert main(["describe", str(path)]) == 0 and capsys.readouterr().err == ""
    for spec in (str(path), "wrn-16-2"):
        assert main(["describe", spec, "--small-input"]) == 2
        err = capsys.readouterr().err
        assert "--small-input: no member of SPEC has a stride-2 stem" in err and err.count("\n") == 1


@pytest.mark.parametrize("argv, msg", [
    (["describe", "resnet-50"], "not a file, a known architecture"),
    (["describe", "r1_k4_s11_e1_i32_o16"], "block.kernel"),
    (["describe", "missing.json"], "no such file"),
    (["describe", "wrn-16-8", "--width-multiplier", "0.5"], "width_multiplier"),
])
def test_describe_bad_input_is_one_line_and_exit_2(argv, msg, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1 and "Traceback" not in err


def test_bad_json_file(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text('{"family": "mobile", "blocks": []}')
    assert main(["describe", str(path)]) == 2
    assert "blocks" in capsys.readouterr().err


@pytest.mark.parametrize("argv, msg", [
    (["describe", "mnasnet-a1", "--resolution", "0"], "expected a positive integer"),
    (["describe"], "required: SPEC"),
    # a negative seed reached numpy's generator as a traceback (exit 1) before --seed was checked
    (["train", "mobilenetv2", "--seed", "-1"], "argument --seed: expected an integer in 0..2147483647, got '-1'"),
    (["retrain-spec", "mobilenetv2", "--checkpoint-dir", "c", "--seed", "2147483648"], "got '2147483648'"),
    (["train", "mobilenetv2", "--lr", "inf"], "argument --lr: expected a positive number, got 'inf'"),
    (["describe", "mobilenetv2", "--width-multiplier", "nan"], "expected a positive number, got 'nan'"),
    (["search"], "nas search: error: the following arguments are required: --run-dir (see nas search --help)"),
    (["search", "--run-dir", "r", "--backend", "nope"], "argument --backend: invalid choice: 'nope'"),
    (["train", "mobilenetv2", "--dataset", "x", "--epochs", "zz"], "argument --epochs: expected a positive integer"),
    (["frobnicate"], "nas: error: argument COMMAND: invalid choice: 'frobnicate'"),
    ([], "nas: error: the following arguments are required: COMMAND (see nas --help)"),
])
def test_argparse_errors_are_one_line_exit_2(argv, msg, capsys):
    # argparse printed its usage above the message (eight lines for `nas search`); the line points
    # at --help instead, as every other bad input is one line
    with pytest.raises(SystemExit) as e:
        main(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2 and msg in err and err.count("\n") == 1, err


def test_an_unknown_option_is_the_commands_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["describe", "mnasnet-a1", "--size", "7"])
    assert e.value.code == 2
    assert capsys.readouterr().err == "nas describe: error: unrecognized arguments: --size 7 (see nas describe --help)\n"
