"""The one exception type for bad user input.

Raise `GenBenchError` with a one-line message that names the bad value and says what to do; the
CLI prints it as `error: <message>` and exits with status 2, before any output is written.
"""


class GenBenchError(Exception):
    """A problem with the user's input or environment that the user can fix."""


def run_first(stage: str, dataset: str | None = None) -> str:
    """What to do about an input an earlier DVC stage makes and has not made yet, in the kit's one
    wording: "run the embed stage first (dvc repro embed@digits)"."""
    return f"run the {stage} stage first (dvc repro {stage}{'@' + dataset if dataset else ''})"


class Interrupted(BaseException):
    """The process was asked to stop (SIGTERM); carries the signal number. A BaseException, like
    KeyboardInterrupt, so no `except Exception` swallows it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class DataFileError(GenBenchError, ValueError):
    """A file a stage reads is missing (`missing`) or fails its integrity check. Carries the path
    so the command line can say which stage rebuilds it."""

    def __init__(self, path, problem: str, *, missing: bool = False):
        super().__init__(f"{path} {problem}")
        self.path = str(path)
        self.missing = missing
