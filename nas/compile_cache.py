"""XLA's persistent compilation cache: one rule for every command that turns it on."""

from __future__ import annotations

import os
from pathlib import Path


def use_compilation_cache(folder: Path, min_compile_s: float) -> bool:
    """Keep compiled programs that took at least ``min_compile_s`` seconds in ``folder``, unless
    JAX_COMPILATION_CACHE_DIR or jax's config already names a cache (the user's, or a test
    session's); returns whether it turned the cache on. A folder that cannot be created leaves it off."""
    import jax

    if os.environ.get("JAX_COMPILATION_CACHE_DIR") or jax.config.jax_compilation_cache_dir:
        return False
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_s)
    return True
