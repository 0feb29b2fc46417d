"""The project's exception hierarchy: user mistakes are one line and exit code 2 at the CLI."""


class NasError(Exception):
    """Base of every error this project raises on purpose."""


class UserError(NasError):
    """A user's mistake (bad spec, config, option or missing data): shown as one line, exit 2."""


class SpecError(UserError, ValueError):
    """An invalid architecture spec or decision vector; the message starts with the field name."""
