"""experiments/gpu_session.sh, the script a GPU session runs: its phase names are checked before any
device time is spent, and the first two calls of the next session's plan (docs/gpu.md: `recipes`,
then the `accuracy` call its recipes.txt names, or PROXY_SET=best) work together, in the script's CPU dry run."""

import json
import os
import re
import shlex
import subprocess
import sys
import tarfile

import pytest

from tests.conftest import ROOT, shared_file

SCRIPT = ROOT / "experiments" / "gpu_session.sh"


def _session(tmp_path, *phases, **env):
    """Run the script on the CPU (SMOKE=1) with its outputs, runs and data cache under tmp_path."""
    # Without the suite's compilation cache, as on the GPU machine: the phases that share programs
    # name their own cache, and a search keeps its run's (a warm suite cache made the search test's
    # member finish inside its 30 s limit). Nor the suite's 0 s threshold, with which every small
    # program went into the script's fresh cache, twice as slow here.
    full = {k: v for k, v in os.environ.items()
            if k not in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")}
    full = {**full, "SMOKE": "1", "PYTHON": sys.executable, "OUT": str(tmp_path / "out"),
            "RUNS": str(tmp_path / "runs"), "NAS_CACHE_DIR": str(tmp_path / "cache"), **env}
    return subprocess.run(["bash", str(SCRIPT), *phases], cwd=ROOT, env=full, capture_output=True, text=True,
                          timeout=900)


@pytest.mark.parametrize("phases", [(), ("recipes", "acuracy"), ("accuracy|recipes",), ("",)])
def test_a_bad_phase_name_is_one_error_before_anything_runs(tmp_path, phases):
    r = _session(tmp_path, *phases)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    assert ("usage:" if not phases else "unknown phase") in r.stderr
    assert not (tmp_path / "out" / "device.txt").exists()  # nothing ran: no device query, no decoding


def test_a_list_of_variants_is_for_the_throughput_phase_not_the_search(tmp_path):
    r = _session(tmp_path, "throughput", "search", OPT_VARIANT="autotune0-matmul,shift")
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "gpu_session.sh: search: OPT_VARIANT must name one variant, not 'autotune0-matmul,shift'"]
    assert not (tmp_path / "out" / "device.txt").exists()


def test_the_best_recipe_is_refused_before_anything_runs_where_no_recipes_phase_ran(tmp_path):
    r = _session(tmp_path, "accuracy", PROXY_SET="best")
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        f"gpu_session.sh: PROXY_SET=best: no recipes phase has run here ({tmp_path / 'runs'}/recipes_best.txt); "
        "run recipes first or name the recipe"]
    assert not (tmp_path / "out" / "device.txt").exists()


def _fake_mps_control(tmp_path, daemon: str):
    """A stand-in nvidia-cuda-mps-control on PATH that logs each call (its arguments, or the command
    it reads); its daemon starts and serves ("serves"), starts with no server ("no server") or
    does not start ("fails")."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "nvidia-cuda-mps-control"
    fake.write_text(f"""#!/usr/bin/env bash
log={shlex.quote(str(tmp_path / "mps_calls.txt"))}
if [ "$1" = -d ]; then echo "-d $CUDA_MPS_PIPE_DIRECTORY" >> "$log"; exit {1 if daemon == "fails" else 0}; fi
read -r cmd; echo "$cmd" >> "$log"
[ "$cmd" = get_server_list ] && {"echo 4242" if daemon == "serves" else "true"}
exit 0
""")
    fake.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "MPS": "1", "NAS_DATA_DIR": str(tmp_path / "no-data")}


@pytest.mark.parametrize("daemon", ["serves", "no server", "fails"])
def test_mps_is_started_for_the_call_and_told_to_quit_when_it_ends(tmp_path, daemon):
    # No CIFAR-10 in NAS_DATA_DIR: the call stops at decoding, after MPS started, and still ends it.
    r = _session(tmp_path, "firstrun", **_fake_mps_control(tmp_path, daemon))
    assert r.returncode == 2, r.stdout + r.stderr
    calls = (tmp_path / "mps_calls.txt").read_text().splitlines()
    assert calls[0].startswith("-d /tmp/nas-mps-pipe.")  # its own pipe folder, exported to the call
    session = (tmp_path / "out" / "session.log").read_text()
    if daemon == "serves":
        assert calls[1:] == ["get_server_list", "quit"]  # quit by the exit trap
        assert "MPS on: a cpu client ran under it (servers: 4242)" in session
    else:
        assert calls[1:] == (["get_server_list", "quit"] if daemon == "no server" else ["quit"])
        assert "MPS=1: the daemon did not start, a JAX process under it did not reach the cpu backend (it reached " \
               f"{'cpu' if daemon == 'no server' else 'none'}), or no server served it; the phases run without MPS" \
               in session
    assert "no CIFAR-10" in session


def test_without_the_mps_daemon_the_call_says_so_and_runs_without(tmp_path):
    r = _session(tmp_path, "firstrun", MPS="1", NAS_DATA_DIR=str(tmp_path / "no-data"))
    assert r.returncode == 2
    assert "MPS=1: no nvidia-cuda-mps-control here; the phases run without MPS" in (
        tmp_path / "out" / "session.log").read_text()


@pytest.mark.slow
def test_the_recipes_call_names_an_accuracy_call_that_reuses_its_member(tmp_path):
    data = shared_file("cifar10_jpeg.npz").parent
    recipe = "trainer.batch_size=64+trainer.learning_rate=0.05"
    r = _session(tmp_path, "recipes", RECIPES=recipe, NAS_DATA_DIR=str(data))  # about 60 s on 2 cores
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    lines = (tmp_path / "out" / "recipes.txt").read_text().splitlines()
    # scored with test-time flips too (RECIPE_COMMON's default), each view's accuracy alone beside
    scored = f"{recipe}+trainer.tta_flip=true"
    assert lines[0].startswith(scored) and " ok val acc " in lines[0] and "(as is " in lines[0]
    assert lines[1].startswith(f"best: {scored} at ")
    # the next call, as the session's operator would paste it
    words = shlex.split(lines[2].removeprefix("next: "))
    assert words[2:] == ["bash", "experiments/gpu_session.sh", "accuracy"]
    env = dict(w.split("=", 1) for w in words[:2])
    assert env == {"PROXY_SET": scored, "TORCH_MODES": "none"}
    # the call a session makes without waiting to read that line: PROXY_SET=best, the same recipe
    assert (tmp_path / "runs" / "recipes_best.txt").read_text() == scored + "\n"
    env["PROXY_SET"] = "best"

    # files an operator left in $OUT: with the call's own, over the 8 a device call returns
    for i in range(4):
        (tmp_path / "out" / f"extra_{i}.txt").write_text("x")
    r = _session(tmp_path, "accuracy", NAS_DATA_DIR=str(data), **env)  # about 45 s
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    log = (tmp_path / "out" / "session.log").read_text()
    # ... so the loose logs went into one archive, and the study's archive stayed beside it
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["logs.tgz", "session.log", "studies.tgz"]
    with tarfile.open(tmp_path / "out" / "logs.tgz") as logs:
        assert {"recipes.txt", "study_mobilenetv2-cifar.log", "device.txt", "extra_0.txt"} <= set(logs.getnames())
    assert f"PROXY_SET=best: {scored} (the recipes phase's best)" in log
    assert "seed-0 member taken from the recipes phase" in log
    assert re.search(r"study mobilenetv2-cifar \(processes backend\) exit 0\n.*studies archived", log)
    study = tmp_path / "runs" / "study_mnv2"
    config = json.loads((study / "config.json").read_text())
    assert config["trainer"]["batch_size"] == 64 and config["trainer"]["learning_rate"] == 0.05
    assert config["trainer"]["tta_flip"] is True
    report = (study / "report.md").read_text()  # says how members were scored, with the "as is" accuracies
    assert "(test-time flips)" in report and "| accuracy | as is |" in report
    # seed 0 came from the recipes phase (same member key): only seed 1 trained in this call
    trained = [json.loads(line)["seed"] for line in (study / "records.jsonl").read_text().splitlines()]
    assert trained == [1]
    recipe_members = {p.name for p in (tmp_path / "runs").glob("recipe_*/members/*.npz")}
    assert len(recipe_members) == 1 and recipe_members < {p.name for p in (study / "members").glob("*.npz")}
    with tarfile.open(tmp_path / "out" / "studies.tgz") as archive:  # what comes back from the device
        names = archive.getnames()
    assert "./study_mnv2/report.md" in names and not any("jax_cache" in n for n in names)


@pytest.mark.slow
def test_a_search_call_cut_by_its_time_limit_resumes_from_its_archive(tmp_path):
    """The search phase as a GPU session runs it across calls: the first call's time limit kills the
    search, its run comes back as search_run.tgz, and a later call with that archive unpacked and named
    by SEARCH_RUN (docs/gpu.md) continues the same run to its end."""
    data = shared_file("cifar10_jpeg.npz").parent
    # One member (the dry run's sizes 1 and 2 cut to size 1) on 2,000 images; 15 s: the run written,
    # its member not finished. The member took 60 s on 500 images on one 2-core machine and 23 s on
    # another (2026-12-04, compile 19 s, train 2.3 s: it finished in a 30 s limit), so 2,000 images
    # add about 7-30 s of training, and the run's files are written in its first few seconds.
    r = _session(tmp_path, "search", SEARCH_SET="sizes=1 train_examples=2000", SEARCH_LIMIT="15",
                 NAS_DATA_DIR=str(data))
    log = (tmp_path / "out" / "session.log").read_text()
    assert "search exit 124: stopped by its 15 s limit" in log and "search run archived" in log, (
        (r.stdout + r.stderr)[-3000:])
    plan = (tmp_path / "out" / "search.log").read_text()  # the dry run's plan, then the search's log
    assert plan.startswith("nas search --dry-run: a new run in ") and "in all: at most 1 member to train" in plan
    parts = sorted((tmp_path / "out").glob("search_run.tgz*"))
    carried = tmp_path / "carried"  # as the next call's checkout would carry it
    carried.mkdir()
    subprocess.run(f"cat {' '.join(map(shlex.quote, map(str, parts)))} | tar -xz -C {shlex.quote(str(carried))}",
                   shell=True, check=True)
    run = carried / "search_cifar10"
    assert (run / "config.json").exists() and not (run / "records.jsonl").exists()
    assert not list((run / "jax_cache").glob("*-cache"))  # compiled programs stay on the device

    r = _session(tmp_path, "search", SEARCH_RUN=str(run), OUT=str(tmp_path / "out2"), NAS_DATA_DIR=str(data))
    log = (tmp_path / "out2" / "session.log").read_text()
    assert f"search: --run-dir {run} --resume" in log and "search exit 0" in log, (r.stdout + r.stderr)[-3000:]
    # the pace counts the member the second launch trained (the first recorded none): in the session log
    assert "] pace: 1 member trained in " in log and "(1 launch, from its start to its last record)" in log
    assert f"nas search --dry-run: resuming {run}" in (tmp_path / "out2" / "search.log").read_text()
    records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    assert [(rec["size"], rec["status"]) for rec in records] == [(1, "ok")]
    launches = [json.loads(line) for line in (run / "launches.jsonl").read_text().splitlines()]
    assert [launch["resume"] for launch in launches] == [False, True]
    assert (run / "report.md").exists() and (tmp_path / "out2" / "search_run.tgz").exists()


@pytest.mark.slow
def test_a_search_call_with_a_stacked_variant_runs_on_the_stacked_backend(tmp_path):
    # A new run with OPT_VARIANT=stacked: its trainer settings stacked, its members on the stacked
    # backend with STACK_SLOTS (refused with exit 2 if the two disagreed); cut at 15 s, as the
    # resume test's first call (about 40 s on 2 cores).
    data = shared_file("cifar10_jpeg.npz").parent
    r = _session(tmp_path, "search", OPT_VARIANT="stacked", STACK_SLOTS="2", SEARCH_SET="sizes=1",
                 SEARCH_LIMIT="15", NAS_DATA_DIR=str(data))
    log = (tmp_path / "out" / "session.log").read_text()
    assert "--backend stacked --stack-slots 2 (compile variant: stacked)" in log, (r.stdout + r.stderr)[-3000:]
    assert "search exit 124" in log  # its time limit, not a refusal (exit 2)
    config = json.loads((tmp_path / "runs" / "search_cifar10" / "config.json").read_text())
    assert config["trainer"]["compile_unit"] == "stacked"
