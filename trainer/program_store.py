"""Compiled programs kept on disk, loaded instead of compiled.

A trainer's two programs (its epoch and its scoring, ``trainer.train.compile_programs``) can be
compiled once, anywhere, and written here; a process that sets ``NAS_PROGRAM_STORE=DIR`` then loads
a program it finds there instead of tracing and compiling it. What it is for: a stacked frame
(trainer/stacked.py) serves every member of its input resolution, so the four frames of the
CIFAR-10 space can be compiled ahead, on a CPU machine, for a GPU that is described rather than
attached (XLA's deviceless compilation; experiments/ship_programs.py), and carried to the GPU
machine: its session then trains from its first minute where it would spend minutes compiling
frames (the 32 px frame's epoch program alone compiled in 213-241 s on one CPU core, its scoring
program in 122 s more beside another compile, experiments/results/ship_programs_cpu_2026-12-08).

A program is found by a hash of the trainer's ``program_key()`` (what its trace depends on,
including the backend it is built for), the program's name and the jax and jaxlib versions, so a
store never serves a program built for other shapes, settings or versions. It holds XLA's
serialized executable (``jax.experimental.serialize_executable``) and the text of the argument and
result structures it was compiled with, which the loading trainer's own must match. A program that
cannot be loaded (a store from another version, another GPU, a damaged file) is compiled as if the
store had not held it, with one line on stderr saying why.

Loading runs code XLA compiled elsewhere: use stores you made.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import jax

STORE_ENV = "NAS_PROGRAM_STORE"
SUFFIX = ".xla"


class StoreMismatch(ValueError):
    """A stored program that does not fit the trainer asking for it."""


def store_dir() -> Path | None:
    """The program store ``NAS_PROGRAM_STORE`` names, or None."""
    root = os.environ.get(STORE_ENV)
    return Path(root) if root else None


def versions() -> tuple[str, str]:
    """jax's and jaxlib's versions: part of every program's address (an executable is theirs)."""
    import jaxlib

    return jax.__version__, jaxlib.__version__


def program_file(root: Path, program_key: tuple, name: str) -> Path:
    """Where ``name`` ("epoch" or "eval") of the programs keyed ``program_key`` is kept in ``root``."""
    digest = hashlib.sha256(repr((program_key, name, versions())).encode()).hexdigest()[:32]
    return root / f"{digest}.{name}{SUFFIX}"


def save_program(root: Path, program_key: tuple, name: str, compiled: Any, in_tree: Any, out_tree: Any,
                 about: dict[str, Any] | None = None) -> Path:
    """Write a compiled program (``jax.stages.Compiled``) to ``root``; ``in_tree`` and ``out_tree``: the
    structures of its ``((args), {})`` and of its result, as the loading trainer will build them;
    ``about``: what to record beside it (where and for what it was compiled). Returns the file."""
    from jax.experimental.serialize_executable import serialize

    payload, _, _ = serialize(compiled)
    root.mkdir(parents=True, exist_ok=True)
    path = program_file(root, program_key, name)
    record = {"payload": payload, "in_tree": str(in_tree), "out_tree": str(out_tree)}  # the rest: the JSON note
    tmp = path.with_suffix(".tmp")
    with lzma.open(tmp, "wb") as f:  # xz: a 32 px frame's epoch program 12.1 MB -> 6.9 MB
        pickle.dump(record, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)  # a reader never sees half a file
    path.with_suffix(".json").write_text(json.dumps(
        {"name": name, "versions": list(versions()), "bytes": len(payload), "program_key": repr(program_key),
         **(about or {})}, indent=1))
    return path


def load_program(root: Path, program_key: tuple, name: str, in_tree: Any, out_tree: Any,
                 arguments: tuple | None = None) -> Any | None:
    """The program ``save_program`` wrote for ``program_key`` and ``name``, loaded onto this process's
    default backend; None when the store has none; ``StoreMismatch`` when the stored structures, or
    the shapes and dtypes it takes, are not those of the trainer's ``arguments``."""
    from jax.experimental.serialize_executable import deserialize_and_load

    path = program_file(root, program_key, name)
    if not path.is_file():
        return None
    with lzma.open(path, "rb") as f:
        record = pickle.load(f)
    for what, mine in (("in_tree", in_tree), ("out_tree", out_tree)):
        if record[what] != str(mine):
            raise StoreMismatch(f"{path.name}: its {what} is not this trainer's")
    program = deserialize_and_load(record["payload"], in_tree, out_tree)
    if arguments is not None:  # caught here rather than as a TypeError in the member's first epoch
        takes = [(tuple(a.shape), str(a.dtype)) for a in jax.tree.leaves(program.args_info)]
        given = [(tuple(a.shape), str(a.dtype)) for a in jax.tree.leaves(arguments)]
        if takes != given:
            wrong = next((i for i, (t, g) in enumerate(zip(takes, given)) if t != g), min(len(takes), len(given)))
            raise StoreMismatch(f"{path.name}: argument {wrong} is "
                                f"{given[wrong] if wrong < len(given) else 'missing'}, the program takes "
                                f"{takes[wrong] if wrong < len(takes) else 'fewer arguments'}")
    return program


def load_programs(root: Path, program_key: tuple, trees: dict[str, tuple[Any, Any]],
                  arguments: dict[str, tuple]) -> tuple[Any, ...] | None:
    """Every program ``trees`` names (name -> (in_tree, out_tree)), to take ``arguments`` (name ->
    its arguments), from the store, in order, or None when any is missing or will not load (then
    one line on stderr says why)."""
    start = time.perf_counter()
    programs = []
    try:
        for name, (in_tree, out_tree) in trees.items():
            program = load_program(root, program_key, name, in_tree, out_tree, arguments[name])
            if program is None:  # not in the store: the trainer compiles both
                return None
            programs.append(program)
    except Exception as e:  # noqa: BLE001 - a store that cannot serve compiles instead
        print(f"program store {root}: not loaded, compiling instead ({type(e).__name__}: {str(e)[:200]})",
              file=sys.stderr, flush=True)
        return None
    print(f"program store {root}: loaded {', '.join(trees)} in {time.perf_counter() - start:.1f} s",
          file=sys.stderr, flush=True)
    return tuple(programs)


def shapes_on(tree: Any, device: Any) -> Any:
    """``tree``'s arrays as shapes and dtypes placed on ``device``: what a program is lowered with to
    compile it for a device it will not run on here (a described GPU, ``jax.experimental.topologies``)."""
    sharding = jax.sharding.SingleDeviceSharding(device)
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding), tree)


def compile_into_store(trainer: Any, epoch_key: Any, root: Path, device: Any = None,
                       compiler_options: dict[str, Any] | None = None,
                       about: dict[str, Any] | None = None) -> dict[str, float]:
    """Compile a trainer's two programs (as ``trainer.train.compile_programs`` would) and write them
    to the store ``root`` under its ``program_key()``. ``device``: the device to compile for, by
    default where the trainer's arrays live; a device of a described GPU
    (``jax.experimental.topologies``) compiles for that GPU without one. Returns the seconds spent
    tracing and compiling each, and the bytes written."""
    from trainer.train import program_arguments, program_trees

    if jax.config.jax_compilation_cache_dir and jax.config.jax_enable_compilation_cache:
        # An executable JAX took from its persistent compilation cache serializes without its code on
        # the CPU (jax 0.10.2: loaded, it fails with "Function iota_convert_fusion not found"), and
        # the cache, once on, cannot be turned off for one compile: compile stores in a process of
        # their own, without it (experiments/ship_programs.py).
        raise ValueError("compile_into_store: JAX's persistent compilation cache is on "
                         f"({jax.config.jax_compilation_cache_dir}); compile stores without it")
    arguments = program_arguments(trainer, epoch_key)
    trees = program_trees(trainer, arguments)
    if device is not None:  # only shapes: the programs run elsewhere
        arguments = {name: shapes_on(args, device) for name, args in arguments.items()}
    key, times = trainer.program_key(), {}
    for name, args in arguments.items():
        start = time.perf_counter()
        lowered = getattr(trainer, f"_{name}").lower(*args)
        traced = time.perf_counter()
        compiled = lowered.compile(compiler_options)
        done = time.perf_counter()
        meta = {**(about or {}), "trace_s": round(traced - start, 2), "compile_s": round(done - traced, 2)}
        path = save_program(root, key, name, compiled, *trees[name], about=meta)
        times.update({f"{name}_trace_s": traced - start, f"{name}_compile_s": done - traced,
                      f"{name}_bytes": path.stat().st_size})
    return times
