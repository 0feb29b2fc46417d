"""The project's exception hierarchy: user mistakes are one line and exit code 2 at the CLI."""


class NasError(Exception):
    """Base of every error this project raises on purpose."""


class UserError(NasError):
    """A user's mistake (bad spec, config, option or missing data): shown as one line, exit 2."""


class SpecError(UserError, ValueError):
    """An invalid architecture spec or decision vector; the message starts with the field name."""


class DamagedCheckpoint(UserError):
    """A checkpoint (a search's controller, a retraining's weights) that exists but cannot be read
    back: damaged after it was written whole (a disk error, a partial copy)."""


# Seeds go to numpy's generators (non-negative only) and to jax.random.key (below 2**63); a search's
# controllers take seed * 1000 + size. 2**31 - 1 leaves room for both and for any seed one types.
MAX_SEED = 2**31 - 1


def check_seed(seed: object, name: str = "seed") -> None:
    """``seed`` is an int in 0..MAX_SEED; else one error line naming ``name``."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise UserError(f"{name}: must be an int in 0..{MAX_SEED}, got {seed!r}")


def seed_arg(text: str) -> int:
    """An argparse ``type`` for ``--seed`` options: an int in 0..MAX_SEED, else argparse's usage error."""
    import argparse

    try:
        value = int(text)
        check_seed(value)
    except (ValueError, UserError):
        raise argparse.ArgumentTypeError(f"expected an integer in 0..{MAX_SEED}, got {text!r}") from None
    return value
