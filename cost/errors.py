"""Errors and warnings of the cost layer (kept apart from genbench so `cost` imports on its own).

Raise `CostError` with a one-line message that names the bad value and says what to do; the CLI
prints it as `error: <message>` and exits with status 2.
"""


class CostError(Exception):
    """A problem with the user's input, price data or environment that the user can fix."""


class StaleSnapshotWarning(UserWarning):
    """A price snapshot is older than the age the caller accepts."""
