"""The worker side of ``--backend processes`` (nas/process_backend.py): a spawned worker's loop and
its clean-up when its driver dies.

Kept apart from the driver's module, with nothing but the standard library imported at the top: a
spawned worker imports the module that holds its target before running it, and the driver's module
imports JAX through the trainer (3.3 s on the 2-core CPU, 2026-12-04), during which a SIGTERM to the
process group (``timeout``) killed the worker before its handler existed and left the split copy
behind. From here the handler is in place about as soon as the interpreter has started.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import multiprocessing.connection

    from search_space.spec import ArchSpec
    from trainer.config import TrainConfig
    from trainer.data import Split
    from trainer.train import MemberResult

TrainFn = Callable[["ArchSpec", "Split", "TrainConfig", int], "MemberResult"]

SPLIT_ARRAYS = ("x_train", "y_train", "x_val", "y_val")


def worker_main(conn: multiprocessing.connection.Connection, env: dict[str, str], train_fn: TrainFn | None,
                driver_pid: int, scratch: str) -> None:
    """A worker's loop: receive (split_path, spec, config, seed), send back the MemberResult.
    ``scratch`` is the driver's folder of split copies, removed here if the driver dies first."""
    exit_with_parent(driver_pid, scratch)
    use_driver_env(env)
    from nas.evaluators import epoch_progress
    from nas.evaluators import failed_result as _failed
    from trainer.train import train_member

    splits: dict[str, Split] = {}
    while True:
        try:
            msg = conn.recv()
        except EOFError:  # the driver went away without stopping its workers (killed)
            remove_scratch(scratch)
            return
        if msg is None:
            return
        split_path, spec, config, seed, name, every_s = msg
        try:
            if split_path not in splits:
                splits.clear()
                splits[split_path] = read_split(split_path)
            if train_fn is None:  # progress lines go to this worker's stderr, the driver's
                result = train_member(spec, splits[split_path], config, seed, progress=epoch_progress(name, every_s))
            else:
                result = train_fn(spec, splits[split_path], config, seed)
        except Exception as e:  # noqa: BLE001 - a failing member is a result
            result = _failed(spec, e)
        conn.send(result)


def use_driver_env(env: dict[str, str]) -> None:
    """A worker's environment from its driver (``env`` on top of the inherited one), and the
    driver's persistent compilation cache, which only ``jax.config`` turns on for it."""
    os.environ.update(env)
    import jax

    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        jax.config.update("jax_compilation_cache_dir", os.environ["JAX_COMPILATION_CACHE_DIR"])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)


def read_arrays(folder: str | Path, names: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """What ``nas.process_backend.write_arrays`` wrote: its meta.json (name, class names) and the
    arrays ``names``, memory-mapped (N workers share one copy in host memory)."""
    import numpy as np

    meta = json.loads((Path(folder) / "meta.json").read_text())
    return meta, {name: np.load(Path(folder) / f"{name}.npy", mmap_mode="r") for name in names}


def read_split(folder: str) -> Split:
    """The split ``nas.process_backend.write_split`` wrote, its arrays memory-mapped."""
    from trainer.data import Split

    meta, arrays = read_arrays(folder, SPLIT_ARRAYS)
    return Split(meta["name"], class_names=tuple(meta["class_names"]), **arrays)


def remove_scratch(scratch: str) -> None:
    """Remove a dead driver's split copies (CIFAR-10's 45k/5k split is 154 MB of .npy files): a
    driver killed by SIGKILL or SIGTERM runs no cleanup of its own. Each of its workers tries; the
    files stay readable to a worker that still has them mapped. Not when the workers die with it:
    ``timeout`` sends its SIGTERM to the whole process group, and a benchmark stopped that way left
    its copy in the temporary folder (2026-12-03): hence ``exit_with_parent``'s SIGTERM handler."""
    import shutil

    shutil.rmtree(scratch, ignore_errors=True)


def exit_with_parent(driver_pid: int, scratch: str, poll_s: float = 1.0) -> None:
    """End this worker soon after its driver dies (a driver killed with SIGKILL cannot stop it), so a
    killed search leaves nothing holding the GPU before it is resumed, and no split copies in the
    temporary folder.

    The driver's pid comes from the driver: a spawned worker starts an interpreter and unpickles its
    arguments before this runs (about 0.1 s on the 2-core CPU; 3.3 s while this module's home
    imported JAX), and a driver killed meanwhile has already left the worker to another parent,
    which this worker would otherwise take for its own."""
    import signal
    import threading
    import time

    if os.getppid() != driver_pid:
        remove_scratch(scratch)
        os._exit(0)

    def on_sigterm(signum: int, frame: Any) -> None:
        # SIGTERM to the whole process group (`timeout`, `kill -TERM -PGID`) ends the driver too,
        # which removes nothing: wait a moment for it to go, then remove its split copies. A worker
        # terminated alone, its driver alive, just ends. While the main thread is inside XLA this
        # runs only afterwards, but the watch thread below cleans up within poll_s of the driver's end.
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            if os.getppid() != driver_pid:
                remove_scratch(scratch)
                break
            time.sleep(0.05)
        os._exit(128 + signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != driver_pid:
                remove_scratch(scratch)
                os._exit(0)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()
