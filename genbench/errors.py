"""The one exception type for bad user input.

Raise `GenBenchError` with a one-line message that names the bad value and says what to do; the
CLI prints it as `error: <message>` and exits with status 2, before any output is written.
"""


class GenBenchError(Exception):
    """A problem with the user's input or environment that the user can fix."""
