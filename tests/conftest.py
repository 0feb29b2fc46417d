"""Shared test helpers: where the optional real data sets live (``../shared/data`` beside the
checkout, or ``$NAS_SHARED_DIR``); tests that need them skip cleanly when they are absent."""

import contextlib
import io
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# One persistent XLA compilation cache for the session (and the CLI subprocesses it starts): the
# tests train the same small architectures again and again, and a cache hit turns a 20-35 s CPU
# compile into about a second.
_JAX_CACHE = pathlib.Path(os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                                                str(pathlib.Path("/tmp") / f"nas-test-jax-cache-{os.getuid()}")))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
SHARED = pathlib.Path(os.environ.get("NAS_SHARED_DIR", ROOT.parent / "shared"))
SHARED_DATA = SHARED / "data"


def shared_file(*parts: str) -> pathlib.Path:
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (the shared data folder is optional)")
    return path


@pytest.fixture(scope="session")
def dataset() -> str:
    """The name that loads real Fashion-MNIST: Debian's package (`apt-get install
    dataset-fashion-mnist`), else the shared folder's IDX files; skips when neither is here."""
    if os.path.isdir("/usr/share/datasets/fashion-mnist"):
        return "fashion_mnist"
    return f"idx:{shared_file('fashion_mnist_manual')}"


@pytest.fixture(scope="module")
def fashion(dataset):
    """Real Fashion-MNIST (``dataset``), decoded once per test module."""
    from trainer.data import load_dataset

    return load_dataset(dataset)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Each test session decodes into its own cache, never the user's."""
    monkeypatch.setenv("NAS_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "nas-cache"))


@pytest.fixture(autouse=True)
def _fresh_programs():
    """Each test starts with no compiled member programs of an earlier test in its worker
    (trainer.train.PROGRAMS), so what it traces does not depend on the tests run before it."""
    if "trainer.train" in sys.modules:
        sys.modules["trainer.train"].PROGRAMS.clear()


@pytest.fixture(autouse=True)
def _compile_profile(request):
    """With ``NAS_TEST_COMPILE_LOG=FOLDER``, each test's JAX compile events as a JSON line of
    FOLDER/<worker>.jsonl: seconds per event (tracing, lowering, XLA compiling or loading from the
    persistent cache, the compiling that cache saved) and each backend compile's function name and
    seconds. What the suite's time goes to (the README's paragraph on the tests); off, nothing is
    registered."""
    folder = os.environ.get("NAS_TEST_COMPILE_LOG")
    if not folder:
        yield
        return
    import json
    import time

    from jax import monitoring

    totals: dict[str, float] = {}
    compiles: list[tuple[str, float]] = []

    def listen(event: str, seconds: float, **kw) -> None:
        if not event.startswith(("/jax/core/compile/", "/jax/compilation_cache/")):
            return  # Orbax's checkpoint events among others
        totals[event] = totals.get(event, 0.0) + seconds
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append((str(kw.get("fun_name")), round(seconds, 3)))

    monitoring.register_event_duration_secs_listener(listen)
    start = time.perf_counter()
    try:
        yield
    finally:
        monitoring.unregister_event_duration_listener(listen)
        row = {"test": request.node.nodeid, "seconds": round(time.perf_counter() - start, 3),
               "events": {k: round(v, 3) for k, v in totals.items()}, "compiles": compiles}
        path = pathlib.Path(folder) / f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write(json.dumps(row) + "\n")


def logits_of(model, x) -> np.ndarray:
    """``model(x)`` as one compiled program, as a NumPy array. Called as it is, an NNX model runs
    each operation as a program of its own, compiled per shape: 250-350 small programs for a small
    MobileNetV2 or MnasNet-A1, which made up most of such a test's time from an empty compilation
    cache (tests/nas/test_export.py's took 44.6 s, 31.1 s compiled; 2-core CPU)."""
    import jax
    from flax import nnx

    graphdef, state = nnx.split(model)
    return np.asarray(jax.jit(lambda state, x: nnx.merge(graphdef, state)(x))(state, x))


def run_module(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    """``python -m ARGS`` from the checkout, unbuffered, output captured as text."""
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=check,
                          env={**os.environ, "PYTHONUNBUFFERED": "1"})


def nas_here(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``nas ARGS`` run by the CLI's ``main`` in this process, its output captured, failing on a
    non-zero exit as ``run_module(..., check=True)`` does: for commands that need no process of
    their own, sparing a Python start, the imports and JAX's set-up (5-6 s a command on the 2-core
    machines, twice that beside the rest of the suite). ``check=False``: any exit code is returned."""
    from nas.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    if check and code != 0:
        raise AssertionError(f"nas {' '.join(args)}: exit {code}\n{err.getvalue()[-3000:]}")
    return subprocess.CompletedProcess(["nas", *args], code, out.getvalue(), err.getvalue())


def script_here(module: str, *args: str) -> subprocess.CompletedProcess:
    """``python -m MODULE ARGS`` as ``run_module`` gives it, run by the module's ``main()`` in this
    process: for a script's bad-input checks, which stop before it starts any work, sparing a
    process start (3-6 s with JAX, on the 2-core machines beside the rest of the suite). The exit
    code is Python's for what ``main`` ended with: its return value, or ``sys.exit``'s code (a
    message: printed to stderr, exit 1)."""
    import importlib
    from unittest import mock

    main = importlib.import_module(module).main
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            mock.patch.object(sys, "argv", [module, *args]):
        try:
            code = main()
        except SystemExit as e:
            code = e.code
    if isinstance(code, str):
        print(code, file=err)
        code = 1
    return subprocess.CompletedProcess([sys.executable, "-m", module, *args], code or 0, out.getvalue(), err.getvalue())


def one_network_recorded_twice() -> tuple[dict, dict]:
    """The committed CPU search's one-member samples #9 and #12 (records.jsonl rows): one network
    and seed recorded under two ids, their specs differing only in block 2's skip (pool against
    identity on a layer whose 8 channels in and out match, where both add the input), written
    before decoding made such skips canonical."""
    import json

    run = ROOT / "experiments" / "results" / "cpu_search_2026-12-02"
    records = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    nine, twelve = (next(r for r in records if (r["size"], r["sample"]) == (1, s)) for s in (9, 12))
    return nine, twelve


def pytest_unconfigure(config: pytest.Config) -> None:
    """Let a worker exit within the 5 s pytest-xdist allows before it sends SIGINT. After the
    suite a worker holds millions of objects (traced programs, arrays), and pytest's last
    unraisable-exception check runs five full garbage collections over them: more than 5 s on the
    2-core machines (a faulthandler dump at exit found a worker still in them 2.5 s on), so the
    interrupt landed in JAX's garbage-collection callback and printed a
    PytestUnraisableExceptionWarning with a KeyboardInterrupt traceback under every passing run.
    Frozen, those objects are no longer traversed; the tests are over, so nothing they left is lost
    but that last check of them."""
    import gc

    gc.collect()  # what the tests left unreachable is still checked once
    gc.freeze()
