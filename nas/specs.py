"""Turn a user's SPEC argument (JSON file, named architecture or block strings) into a spec value."""

from __future__ import annotations

import os

from nas.manifest import MANIFEST, is_exported, read_manifest
from search_space import zoo
from search_space.blockstring import decode_blocks, scale_width
from search_space.errors import SpecError, UserError
from search_space.spec import AnySpec, EnsembleSpec, MobileNetSpec, WideResNetSpec, from_json


def _is_search_run(folder: str) -> bool:
    """Whether ``folder`` holds a search's run (a readable config, not a scaling study's)."""
    from nas.store import RunDir, is_study

    run = RunDir(folder)
    try:
        return run.exists() and not is_study(run.read_config())
    except UserError:  # an unreadable config: said as for any other folder
        return False


def resolve_spec(text: str, *, resolution: int | None = None, width_multiplier: float = 1.0,
                 stem: int = 32, head: int = 1280) -> AnySpec:
    """SPEC is a path to a JSON spec, an exported ensemble's folder (its members' specs, as trained),
    a named architecture, or a quoted list of block strings."""
    if not isinstance(text, str) or not text.strip():
        raise UserError("SPEC: empty; give a JSON file, a name such as mnasnet-a1, or block strings")
    if os.path.isdir(text):
        if not is_exported(text):
            if _is_search_run(text):
                raise UserError(f"SPEC: {text} is a search's run directory, not an architecture; `nas show {text} "
                                "--front --export DIR` writes each front point as a spec file")
            raise UserError(f"SPEC: {text} is a folder without an exported ensemble's {MANIFEST}; give a JSON "
                            "spec file, or a folder `nas export` wrote")
        members = read_manifest(text)[1]
        return _override(EnsembleSpec(tuple(members)), resolution, width_multiplier)
    if os.path.exists(text):
        try:
            with open(text) as f:
                spec = from_json(f.read())
        except OSError as e:
            raise UserError(f"SPEC: cannot read {text}: {e.strerror}") from None
        except SpecError as e:
            raise SpecError(f"{text}: {e}") from None
        return _override(spec, resolution, width_multiplier)
    if zoo.is_named(text):
        return zoo.get(text, resolution=resolution, width_multiplier=width_multiplier)
    if "_" in text and text.strip()[:1] == "r":
        spec = MobileNetSpec(blocks=decode_blocks(text), stem_filters=stem, head_filters=head,
                             resolution=resolution or 224)
        return scale_width(spec, width_multiplier, "never")
    if text.endswith(".json"):
        raise UserError(f"SPEC: no such file: {text}")
    raise UserError(f"SPEC: {text!r} is not a file, a known architecture ({', '.join(zoo.named_architectures())}) "
                    "or block strings like 'r1_k3_s11_e1_i32_o16'")


def _override(spec: AnySpec, resolution: int | None, width_multiplier: float) -> AnySpec:
    if isinstance(spec, EnsembleSpec):
        return EnsembleSpec(tuple(_override(m, resolution, width_multiplier) for m in spec.members))  # type: ignore[misc]
    if resolution is not None:
        spec = spec.replace(resolution=resolution)
    if width_multiplier != 1.0:
        if isinstance(spec, WideResNetSpec):
            raise UserError("--width-multiplier: WRN specs are scaled by their width k")
        spec = scale_width(spec, width_multiplier, "never")
    return spec

