"""trainer/program_store.py: programs compiled ahead, written to a store, loaded instead of compiled."""

import json
import os
import shutil
import subprocess
import sys

import jax
import numpy as np
import pytest

from tests.conftest import ROOT
from tests.trainer.test_train import _small_split, tiny_member
from trainer.config import TrainConfig
from trainer.program_store import STORE_ENV, compile_into_store, load_program, program_file
from trainer.train import PROGRAMS, MemberTrainer, train_member

CONFIG = TrainConfig(epochs=2, batch_size=64, warmup_epochs=0.5)

# Compiles the tests' tiny member into a store in a process of its own: without JAX's persistent
# compilation cache, which this test session uses and which compile_into_store refuses (an
# executable taken from that cache serializes without its code on the CPU).
_STORE_IT = """
import json, pathlib, sys
import jax
from tests.trainer.test_program_store import CONFIG
from tests.trainer.test_train import _small_split, tiny_member
from trainer.data import load_dataset
from trainer.program_store import compile_into_store
from trainer.train import MemberTrainer
t = MemberTrainer(tiny_member(), _small_split(load_dataset(sys.argv[1])), CONFIG, seed=0)
print(json.dumps(compile_into_store(t, jax.random.key(0), pathlib.Path(sys.argv[2]), about={"by": "test"})))
"""


@pytest.fixture(scope="module")
def stored(dataset, tmp_path_factory):
    """A store holding the tiny member's programs, and what compile_into_store said of them."""
    root = tmp_path_factory.mktemp("store")
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}
    r = subprocess.run([sys.executable, "-c", _STORE_IT, dataset, str(root)], cwd=ROOT, env=env,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    return root, json.loads(r.stdout.splitlines()[-1])


def test_a_member_loads_its_stored_programs_and_trains_as_if_it_had_compiled_them(stored, fashion, monkeypatch):
    root, times = stored
    split = _small_split(fashion)
    t = MemberTrainer(tiny_member(), split, CONFIG, seed=0)
    assert times["epoch_compile_s"] > 0 and times["eval_bytes"] > 0
    for name in ("epoch", "eval"):
        assert program_file(root, t.program_key(), name).is_file()
        assert program_file(root, t.program_key(), name).with_suffix(".json").is_file()
    PROGRAMS.clear()
    compiled = train_member(tiny_member(), split, CONFIG, seed=1)
    assert not compiled.programs_loaded
    PROGRAMS.clear()
    monkeypatch.setenv(STORE_ENV, str(root))
    loaded = train_member(tiny_member(), split, CONFIG, seed=1)
    assert loaded.programs_loaded and not loaded.programs_reused and loaded.summary()["programs_loaded"] is True
    assert loaded.trace_s == 0 and loaded.compile_s < compiled.compile_s
    assert loaded.loss_curve == compiled.loss_curve and np.array_equal(loaded.val_logits, compiled.val_logits)
    # another member's programs are not in the store: it compiles its own
    PROGRAMS.clear()
    other = train_member(tiny_member(res_index=1), split, CONFIG, seed=1)
    assert other.ok and not other.programs_loaded and other.trace_s > 0
    PROGRAMS.clear()


def test_a_store_that_cannot_serve_a_program_means_compiling_it(stored, fashion, tmp_path, monkeypatch, capsys):
    """A damaged file or a program of another structure: one line on stderr, then the member compiles."""
    split = _small_split(fashion)
    t = MemberTrainer(tiny_member(), split, CONFIG, seed=0)
    shutil.copytree(stored[0], tmp_path, dirs_exist_ok=True)
    epoch_file = program_file(tmp_path, t.program_key(), "epoch")
    epoch_file.write_bytes(epoch_file.read_bytes()[:1000])  # cut short
    PROGRAMS.clear()
    monkeypatch.setenv(STORE_ENV, str(tmp_path))
    r = train_member(tiny_member(), split, CONFIG, seed=0)
    assert r.ok and not r.programs_loaded and r.trace_s > 0
    err = capsys.readouterr().err
    assert f"program store {tmp_path}: not loaded, compiling instead" in err
    # the scoring program asked for with arguments of other shapes, or with the epoch program's structures
    from trainer.train import program_arguments, program_trees

    args = program_arguments(t, jax.random.key(0))
    eval_trees = program_trees(t, args)["eval"]
    assert load_program(tmp_path, t.program_key(), "eval", *eval_trees, args["eval"]) is not None
    fewer = (*args["eval"][:2], args["eval"][2][:, :10], *args["eval"][3:])
    with pytest.raises(ValueError, match=r"argument \d+ is \(\(\d+, 10, 28, 28, 1\), 'uint8'\), the program takes"):
        load_program(tmp_path, t.program_key(), "eval", *eval_trees, fewer)
    in_tree = jax.tree.structure(((t.state, 0), {}))
    with pytest.raises(ValueError, match="in_tree is not this trainer's"):
        load_program(tmp_path, t.program_key(), "eval", in_tree, jax.tree.structure(0))
    assert load_program(tmp_path / "empty", t.program_key(), "eval", in_tree, jax.tree.structure(0)) is None
    PROGRAMS.clear()


def test_programs_are_not_stored_from_a_process_with_the_persistent_compilation_cache(fashion, tmp_path):
    """This session's cache is on (tests/conftest.py): an executable it served would be stored
    without its code, so the store refuses before compiling anything."""
    t = MemberTrainer(tiny_member(), _small_split(fashion), CONFIG, seed=0)
    with pytest.raises(ValueError, match="persistent compilation cache is on"):
        compile_into_store(t, jax.random.key(0), tmp_path)
    assert not list(tmp_path.iterdir())
