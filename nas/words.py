"""How the commands count things in their lines: "1 member", "3 members", "? epochs"."""

from __future__ import annotations

from typing import Any


def counted(n: Any, word: str, plural: str | None = None) -> str:
    """``n`` and ``word``, in the plural (``plural``, else ``word`` + "s") unless ``n`` is 1; a
    float as ``:g`` writes it, anything else (an int, a "?") as it is."""
    number = f"{n:g}" if isinstance(n, float) else f"{n}"
    return f"{number} {word if n == 1 else plural or word + 's'}"
