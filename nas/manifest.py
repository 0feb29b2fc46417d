"""The manifest of an exported ensemble (``ensemble.json``, which `nas export` and `retrain-spec
--export` write): read and checked without JAX, for `nas predict` (nas.export.load_ensemble) and
for a SPEC argument naming an exported folder (`nas latency exp/pair`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from search_space.errors import UserError
from search_space.spec import ArchSpec, from_dict as spec_from_dict

MANIFEST = "ensemble.json"
FORMAT = "ensemble-nas/exported-ensemble/1"


def is_exported(folder: str | Path) -> bool:
    """Whether ``folder`` is a folder holding a manifest (checked when read)."""
    return Path(folder).is_dir() and (Path(folder) / MANIFEST).is_file()


def read_manifest(folder: str | Path) -> tuple[dict[str, Any], list[ArchSpec]]:
    """(the manifest, its members' specs) of an exported ensemble's folder. Raises UserError (one
    line) if it is not one."""
    folder = Path(folder)
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{folder}: not an exported ensemble (no {MANIFEST}; `nas export` writes one)") from None
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: unreadable ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise UserError(f"{path}: not an exported ensemble of this format ({FORMAT})")
    missing = [k for k in ("class_names", "image_size", "channels", "mean", "std", "members") if k not in manifest]
    if missing or not manifest["members"] or any("spec" not in m or "weights" not in m for m in manifest["members"]):
        raise UserError(f"{path}: malformed (missing {', '.join(missing) or 'a member spec or weights file'})")
    return manifest, [spec_from_dict(m["spec"]) for m in manifest["members"]]
