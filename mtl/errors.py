"""Errors a user can act on: each names the file, column or row at fault and what to do."""


class MTLError(Exception):
    """Base class for every error the CLI reports without a traceback."""


class DataError(MTLError, ValueError):
    """A data file, column or cell that the task definition cannot use."""


class ConfigError(MTLError, ValueError):
    """A configuration value or key that cannot be used."""
