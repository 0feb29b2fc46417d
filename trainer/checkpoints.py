"""What a retraining's checkpoint folder holds, read without loading Orbax: `nas show` lists the
retrainings stopped mid-way, and importing Orbax (trainer/retrain.py) would add about 1.4 s to it
on the 2-core CPU."""

from __future__ import annotations

from pathlib import Path


def checkpoint_steps(checkpoint_dir: str | Path) -> list[int]:
    """The epochs after which ``checkpoint_dir`` holds a checkpoint (Orbax names each by its step),
    in no order; none where the folder does not exist."""
    path = Path(checkpoint_dir)
    return [int(p.name) for p in path.iterdir() if p.name.isdigit()] if path.is_dir() else []
