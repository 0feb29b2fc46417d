"""A run directory: config, append-only records, member cache, controller checkpoints, plots.

    RUN/config.json          the search config (written once)
    RUN/records.jsonl        one JSON line per evaluated ensemble, flushed and fsynced
    RUN/updates.jsonl        one JSON line per controller update (entropy, baseline, mean reward)
    RUN/launches.jsonl       one JSON line per `nas search` into the run (its command line, time):
                             how the run was started and resumed, for its report
    RUN/members/KEY.npz      validation logits and the summary of one trained member (also copied
                             to and from a shared member cache, ``nas search --member-cache DIR``)
    RUN/controller/sizeN.pkl the controller after its last update (written atomically)
    RUN/plots/               figures from `nas plot`
    RUN/round.json           the round the search trained last: its number and member keys
    RUN/search.lock          held (an OS file lock) by the `nas search` writing the run, and naming
                             it; `nas study` holds RUN/study.lock

A kill -9 can leave a half-written last line: it was never acknowledged, so it is ignored and
overwritten; a corrupt line anywhere else is an error that names it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import shlex
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from search_space.errors import DamagedCheckpoint, UserError


def member_seed(member: dict[str, Any], search_seed: int, position: int) -> int:
    """The seed a recorded member was trained with: its own, or, for records from before members
    carried one, what ``nas.search.member_jobs`` gives (search seed + position)."""
    return int(member.get("seed", search_seed + position))


def is_study(cfg: dict[str, Any]) -> bool:
    """Whether a run directory's config is a scaling study's (``nas.study.StudyConfig``)."""
    return "architectures" in cfg and "sizes" not in cfg


def process_umask() -> int:
    """The process's umask, read without changing it where Linux reports it: ``os.umask`` can only
    read by setting, which would race with other threads creating files (XLA's cache writes)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_error(folder: Path, create: bool = False) -> str | None:
    """Why a file cannot be written in ``folder`` (created first where ``create``), or None where
    one can: a probe file is written and removed, so permissions, read-only mounts and full quotas
    all answer, as the commands' own writes later would."""
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-check-"):
            pass
    except OSError as e:
        return e.strerror or str(e)
    return None


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all (a temporary file beside it, renamed over it), with the
    mode an ordinary new file gets: mkstemp's files are private (0600), which left a run's
    config.json unreadable to a colleague's `nas show` while its records.jsonl was not."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        if hasattr(os, "fchmod"):  # POSIX
            os.fchmod(fd, 0o666 & ~process_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _lock_holder(f: Any, mode: int) -> str | None:
    """Lock the open lock file ``f`` in ``mode`` (``fcntl.LOCK_EX`` or ``LOCK_SH``) without waiting:
    None once it is locked, else the line its holder wrote there (``RunDir.exclusive``)."""
    import fcntl

    try:
        fcntl.flock(f, mode | fcntl.LOCK_NB)
        return None
    except OSError:
        f.seek(0)
        return f.read().strip() or "another process"


class RunDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)

    # -- creation ---------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    def exists(self) -> bool:
        return self.config_path.is_file()

    def check_new(self) -> None:
        """One error line if a new run cannot start here: the folder already holds one."""
        if self.exists():
            raise UserError(f"--run-dir {self.path}: already holds a run; use --resume to continue it, "
                            "or choose another directory")

    def create(self, config: dict[str, Any]) -> None:
        self.check_new()
        try:
            for sub in ("", "members", "controller", "plots"):
                (self.path / sub).mkdir(parents=True, exist_ok=True)
            self.write_config(config)
        except OSError as e:
            raise UserError(f"--run-dir {self.path}: cannot write: {e.strerror}") from None

    @contextlib.contextmanager
    def exclusive(self, command: str) -> Iterator[None]:
        """Hold ``RUN/{command}.lock`` while ``nas {command}`` writes the run: a second one launched
        into it meanwhile (a ``--resume`` while the first still runs) is one error line naming the
        first, instead of a second writer appending the same samples and controller updates.

        An OS file lock (``flock``): the kernel releases it when its process ends, however it ends,
        so a search killed with SIGKILL never leaves its run locked. It locks between processes of
        one machine (not over every network file system); where ``fcntl`` is missing it locks
        nothing."""
        try:
            import fcntl
        except ImportError:  # not POSIX
            yield
            return
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            f = open(self.path / f"{command}.lock", "a+")
        except OSError as e:
            raise UserError(f"--run-dir {self.path}: cannot write: {e.strerror}") from None
        with f:
            holder = _lock_holder(f, fcntl.LOCK_EX)
            if holder is not None:
                raise UserError(f"--run-dir {self.path}: another `nas {command}` is writing this run ({holder}); "
                                "let it finish or stop it, then --resume")
            import socket

            f.seek(0)
            f.truncate()
            f.write(f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
            f.flush()
            yield  # closing the file releases the lock

    def writer(self, command: str) -> str | None:
        """Who holds ``RUN/{command}.lock`` (``exclusive``): its line (pid, host, start), or None when
        no ``nas {command}`` is writing the run. Probes with a shared lock, released at once."""
        try:
            import fcntl

            f = open(self.path / f"{command}.lock")
        except (ImportError, OSError):
            return None
        with f:
            return _lock_holder(f, fcntl.LOCK_SH)

    def write_config(self, config: dict[str, Any]) -> None:
        _atomic_write(self.config_path, json.dumps(config, indent=1, sort_keys=True).encode())

    def read_config(self) -> dict[str, Any]:
        if not self.exists():
            raise UserError(f"{self.path}: not a run directory (no config.json)")
        try:
            return json.loads(self.config_path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"{self.config_path}: unreadable: {e}") from None

    def check_writable(self, command: str) -> None:
        """One error line before any work where `nas {command}`, which writes its results into the
        run (fronts, plots, members, checkpoints), could not: a run on a read-only mount or another
        user's was a traceback at the first write, for `nas seeds` after training a member."""
        why = write_error(self.path)
        if why is not None:
            raise UserError(f"{self.path}: cannot write there ({why}); `nas {command}` writes its results "
                            "into the run: copy the run somewhere writable first")

    def read_search_config(self) -> dict[str, Any]:
        """``read_config`` for the commands that need a search run: a scaling study's directory
        (`nas study`) is one error line that says what it is."""
        cfg = self.read_config()
        if is_study(cfg):
            raise UserError(f"{self.path}: a scaling study's run (nas study), not a search; "
                            f"`nas report {self.path}` summarizes it")
        return cfg

    def read_study_config(self) -> dict[str, Any]:
        """``read_config`` for `nas study --resume`: a search's run directory is one error line
        that says what it is (its config's keys are not a study's)."""
        cfg = self.read_config()
        if not is_study(cfg):
            raise UserError(f"{self.path}: a search's run (nas search), not a scaling study; "
                            f"`nas search --run-dir {self.path} --resume` continues it")
        return cfg

    # -- records ----------------------------------------------------------------------------

    def _read_jsonl(self, name: str) -> list[dict[str, Any]]:
        path = self.path / name
        if not path.is_file():
            return []
        raw = path.read_bytes()
        lines = raw.split(b"\n")
        out = []
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            last = i == len(lines) - 1  # no newline after it: a write that never finished
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                if last:
                    break
                raise UserError(f"{path}:{i + 1}: corrupt record line; the run cannot be read until it is "
                                "repaired or removed") from None
        return out

    def _append_jsonl(self, name: str, record: dict[str, Any]) -> None:
        path = self.path / name
        with open(path, "ab+") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":  # drop a half-written line left by a kill
                    data = path.read_bytes()
                    f.truncate(data.rfind(b"\n") + 1)
            f.seek(0, os.SEEK_END)
            f.write(json.dumps(record, sort_keys=True).encode() + b"\n")
            f.flush()
            os.fsync(f.fileno())

    def records(self) -> list[dict[str, Any]]:
        return self._read_jsonl("records.jsonl")

    def append_record(self, record: dict[str, Any]) -> None:
        self._append_jsonl("records.jsonl", record)

    def updates(self) -> list[dict[str, Any]]:
        return self._read_jsonl("updates.jsonl")

    def append_update(self, update: dict[str, Any]) -> None:
        self._append_jsonl("updates.jsonl", update)

    def launches(self) -> list[dict[str, Any]]:
        return self._read_jsonl("launches.jsonl")

    def append_launch(self, argv: Sequence[str], resume: bool) -> None:
        """Record a `nas` command into this run: its arguments as given, whether it resumed, when."""
        self._append_jsonl("launches.jsonl", {"time": time.time(), "command": "nas " + shlex.join(argv),
                                              "resume": bool(resume)})

    def retrains(self) -> list[dict[str, Any]]:
        return self._read_jsonl("retrain.jsonl")

    def append_retrain(self, row: dict[str, Any]) -> None:
        self._append_jsonl("retrain.jsonl", row)

    # -- the round under way -----------------------------------------------------------------

    def write_round(self, round_info: dict[str, Any]) -> None:
        """The round the search is training (``round``, ``rounds``, ``members``: its member keys,
        ``started``), written atomically as it starts: what `nas show` reads mid-round."""
        _atomic_write(self.path / "round.json", json.dumps(round_info).encode())

    def read_round(self) -> dict[str, Any] | None:
        try:
            return json.loads((self.path / "round.json").read_text())
        except (OSError, json.JSONDecodeError):
            return None

    # -- validation labels ------------------------------------------------------------------

    @property
    def labels_path(self) -> Path:
        return self.path / "val_labels.npy"

    def write_validation_labels(self, labels: np.ndarray) -> None:
        """The labels of the split the members are scored on (int32; about 20 kB for 5,000 images),
        so that recombining members (``nas pool``) needs no data set; written once per run."""
        if not self.labels_path.is_file():
            buf = io.BytesIO()
            np.save(buf, np.asarray(labels, np.int32), allow_pickle=False)
            _atomic_write(self.labels_path, buf.getvalue())

    def validation_labels(self) -> np.ndarray | None:
        """The stored validation labels, or None for a run from before they were stored."""
        if not self.labels_path.is_file():
            return None
        return np.load(self.labels_path, allow_pickle=False)

    # -- member cache -----------------------------------------------------------------------

    def member_path(self, key: str) -> Path:
        return self.path / "members" / f"{key}.npz"

    def load_member(self, key: str) -> tuple[dict[str, Any], np.ndarray | None] | None:
        path = self.member_path(key)
        if not path.is_file():
            return None
        try:
            z = np.load(path, allow_pickle=False)
            summary = json.loads(str(z["summary"]))
            return summary, (z["logits"] if z["logits"].size else None)
        except Exception:  # noqa: BLE001 - a damaged cache entry is retrained, not trusted
            return None

    def save_member(self, key: str, summary: dict[str, Any], logits: np.ndarray | None) -> None:
        import io

        buf = io.BytesIO()
        np.savez(buf, summary=np.asarray(json.dumps(summary)),
                 logits=np.asarray(logits if logits is not None else np.zeros((0,)), np.float32))
        _atomic_write(self.member_path(key), buf.getvalue())

    def import_member(self, key: str, shared: Path) -> bool:
        """Copy member ``key`` from a shared member cache (``nas search --member-cache``) into this
        run, if it is there and readable; returns whether it was."""
        src = shared / f"{key}.npz"
        if not src.is_file():
            return False
        try:
            data = src.read_bytes()
            np.load(io.BytesIO(data), allow_pickle=False)["summary"]  # a damaged entry is not imported
        except Exception:  # noqa: BLE001
            return False
        _atomic_write(self.member_path(key), data)
        return True

    def export_member(self, key: str, shared: Path) -> None:
        """Copy member ``key`` of this run into a shared member cache (atomically, replacing an entry
        that was there: one this run could not import was damaged)."""
        _atomic_write(shared / f"{key}.npz", self.member_path(key).read_bytes())

    # -- controllers ------------------------------------------------------------------------

    def save_controller(self, size: int, state: dict[str, Any]) -> None:
        _atomic_write(self.path / "controller" / f"size{size}.pkl", pickle.dumps(state))

    def load_controller(self, size: int) -> dict[str, Any] | None:
        """The size's controller checkpoint; None where there is none. A damaged one (written whole,
        so damaged later: a disk error, a partial copy) raises ``DamagedCheckpoint``: the search
        then replays the controller from the run's records."""
        path = self.path / "controller" / f"size{size}.pkl"
        if not path.is_file():
            return None
        try:
            with open(path, "rb") as f:
                state = pickle.load(f)
        except Exception as e:  # noqa: BLE001 - whatever unpickling a damaged file raises
            raise DamagedCheckpoint(f"{path}: unreadable ({type(e).__name__}: {e})") from None
        if not isinstance(state, dict):
            raise DamagedCheckpoint(f"{path}: not a controller checkpoint")
        return state
