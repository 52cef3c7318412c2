"""The two errors of a simulation, each a one-line message for the user."""


class SimConfigError(ValueError):
    """A simulation config that cannot be read or is inconsistent; one line naming the field."""


class SimError(RuntimeError):
    """A simulation that cannot be run as asked (e.g. the output exists); one line."""
