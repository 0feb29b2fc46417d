"""experiments/plot_training_runs.py on made-up member records."""

import json

import pytest

from experiments.plot_training_runs import main, read_runs


def member(acc, losses, views=(), smoothing=0.1, status="ok"):
    return {"status": status, "val_accuracy": acc, "loss_curve": losses, "view_accuracies": list(views),
            "trainer": {"label_smoothing": smoothing}}


def test_reads_train_json_and_records_and_draws_them(tmp_path, capsys):
    one = tmp_path / "b64_levers_seed0.json"
    one.write_text(json.dumps(member(0.81, [1.7, 1.2, 0.9], views=(0.79, 0.80), smoothing=0.0)))
    study = tmp_path / "recipe_x"
    study.mkdir()
    records = study / "records.jsonl"
    study_member = {k: v for k, v in member(0.77, [2.0, 1.6]).items() if k != "trainer"} | {"seed": 3}
    records.write_text(json.dumps(study_member) + "\n\n" + json.dumps({"status": "failed", "reason": "diverged"}) + "\n")
    assert read_runs(records)[0].label_smoothing is None  # a study's records keep no trainer settings
    with records.open("a") as f:  # a study still running: its last line half-written
        f.write('{"status": "ok", "val_acc')
    assert len(read_runs(records)) == 1
    (study / "config.json").write_text(json.dumps({"trainer": {"label_smoothing": 0.1}}))  # its config does
    runs = read_runs(one) + read_runs(records)
    assert [r.name for r in runs] == ["b64_levers_seed0", "recipe_x:seed3"]  # the failed member left out
    assert runs[0].as_is == 0.79 and runs[0].val_accuracy == 0.81 and runs[0].label_smoothing == 0.0
    assert runs[1].as_is is None and runs[1].loss_curve == (2.0, 1.6) and runs[1].label_smoothing == 0.1
    out = tmp_path / "plots" / "runs.png"
    assert main([str(one), str(records), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert capsys.readouterr().out.strip() == str(out)


@pytest.mark.parametrize("content, message", [
    ("{not json", "not JSON"),
    ('{"val_accuracy": 0.5}', "not a member record"),
    ('{"status": "ok", "val_accuracy": 0.5}', "no loss_curve"),
])
def test_a_bad_file_is_one_error_line_and_exit_2(tmp_path, capsys, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    out = tmp_path / "runs.png"
    assert main([str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not out.exists()


def test_missing_file_and_only_failed_runs_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "absent.json"), "--out", str(tmp_path / "a.png")]) == 2
    assert "cannot read" in capsys.readouterr().err
    failed = tmp_path / "failed.json"
    failed.write_text(json.dumps({"status": "failed", "reason": "out of memory"}))
    assert main([str(failed), "--out", str(tmp_path / "b.png")]) == 2
    assert "no finished run" in capsys.readouterr().err
