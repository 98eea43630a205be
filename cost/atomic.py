"""Atomic file writes: a temporary file beside the target, fsync, the user's umask mode, then rename over it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def umask_mode(full: int = 0o666) -> int:
    """`full` as the user's umask lets it be (mkstemp's own 0600 is not what the user asked for)."""
    mask = os.umask(0)
    os.umask(mask)
    return full & ~mask


def atomic_write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
