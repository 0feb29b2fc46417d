import json
import os
import subprocess
import sys

import numpy as np
import pytest

from nas.precompile import precompile
from search_space.errors import UserError
from tests.conftest import ROOT
from trainer.config import TrainConfig

# In a process of its own, with a persistent compilation cache of its own (the test session's is
# shared by every test and outlives it, so a layer found there would prove nothing): the covering
# members of one resolution precompiled (or not) in two processes, then random members of that
# resolution compiled here (their first block each operation in turn, at its most layers, the rest
# of their choices random). Members quarter width, their first block only, a 16-filter head.
SCRIPT = r"""
import json, sys
import numpy as np
from experiments.check_layer_reuse import _split
from nas.precompile import precompile
from search_space import MnasNetSpace, scale_width
from trainer.config import TrainConfig
from trainer.layerwise import LayerwiseTrainer
from trainer.padded import covering_vectors

def shaped(m):
    m = scale_width(m, 0.25, "never")
    return m.replace(head_filters=16, blocks=m.blocks[:1])

if __name__ == "__main__":
    space, split = MnasNetSpace(32), _split(256, 64)
    config = TrainConfig(epochs=1, batch_size=32, compile_unit="padded", precise_bn_images=0)
    summary = None
    if sys.argv[1] == "precompile":
        covers = [shaped(space.decode_member(v)) for v in covering_vectors(space) if v[-1] == 3]
        summary = precompile(covers, split, config, 2)
    rng, members = np.random.default_rng(5), []
    for i in range(3):
        vec = list(space.sample(rng, 1))
        vec[0], vec[6], vec[-1] = i, 2, 3  # block 1 each operation in turn, two layers; 32 px
        t = LayerwiseTrainer(shaped(space.decode_member(vec)), split, config, i)
        t.compile()
        members.append([t.stages, t.stages_compiled, t.stages_loaded])
    print(json.dumps({"precompile": summary, "members": members}))
"""


def _run(mode: str, cache) -> dict:
    env = {**os.environ, "JAX_COMPILATION_CACHE_DIR": str(cache), "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, mode], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_after_a_precompile_a_members_layers_are_loaded_not_compiled(tmp_path):
    out = _run("precompile", tmp_path / "cache")
    p = out["precompile"]
    assert (p["members"], p["failed"], p["workers"]) == (3, 0, 2)  # the three operations at 32 px
    assert p["stages_compiled_sum"] > 0
    for stages, new, loaded in out["members"]:
        assert loaded == new  # every layer new to this process came from the cache, none compiled
    assert out["members"][0][1] == out["members"][0][0] > 0
    # without the precompile, from an empty cache, the same members compile their layers
    cold = _run("none", tmp_path / "empty")
    assert cold["members"][0] == [out["members"][0][0], out["members"][0][0], 0]


def test_precompile_needs_per_layer_programs_and_a_cache():
    import jax

    with pytest.raises(UserError, match="needs trainer.compile_unit=padded"):
        precompile([], None, TrainConfig(), 2)
    cache = jax.config.jax_compilation_cache_dir
    jax.config.update("jax_compilation_cache_dir", None)
    try:
        with pytest.raises(UserError, match="no persistent compilation cache"):
            precompile([], None, TrainConfig(compile_unit="padded"), 2)
    finally:
        jax.config.update("jax_compilation_cache_dir", cache)


def test_a_precompile_past_its_time_limit_abandons_what_is_still_compiling():
    # Members whose compile takes seconds (a worker imports JAX first), a limit of 0.05 s: the
    # first one or two start, none after, and the hard stop at 0.1 s kills the workers.
    from experiments.check_layer_reuse import _split
    from search_space import MnasNetSpace

    space = MnasNetSpace(32)
    specs = [space.decode_member(space.sample(np.random.default_rng(i), 1)) for i in range(3)]
    lines: list[str] = []
    summary = precompile(specs, _split(64, 32), TrainConfig(batch_size=32, compile_unit="padded"), 2,
                         log=lines.append, time_limit_s=0.05)
    # (a worker still starting at the stop is killed too: once, on a loaded 2-core machine, one
    # joined the pool after the only kill and compiled its member to the end)
    assert summary["members"] == 0 and summary["not_finished"] == 3 and 1 <= summary["abandoned"] <= 2, (
        summary, lines)
    assert any("time limit: no member started after 0 s" in line for line in lines)
    assert any("stopping at 0 s: members still compiling are abandoned" in line for line in lines)
