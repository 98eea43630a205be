"""The one device rule of the kit: 'auto' is CUDA where this process sees a GPU, else the CPU;
'cpu' and 'cuda[:N]' are taken as given, and a CUDA device where none is visible is an error."""

from __future__ import annotations

import re
import socket

from genbench.errors import GenBenchError

DEVICE_FORMS = "auto, cpu or cuda[:N]"


def device_problem(name: str) -> str | None:
    """Why `name` is not auto, cpu or cuda[:N] (as a params check's text), or None."""
    return None if name in ("auto", "cpu") or re.fullmatch(r"cuda(:\d+)?", name) else f"must be {DEVICE_FORMS}"


def resolve_device(name: str, key: str | None = None) -> str:
    """The torch device for `name`: 'auto' -> 'cuda' when CUDA is available, else 'cpu'; a CUDA
    device without CUDA raises GenBenchError naming the params `key` it came from (or the host,
    for a distributed worker)."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        where = f"params key '{key}' = {name!r}" if key else f"device {name!r} asked for"
        raise GenBenchError(f"{where}, but {socket.gethostname()} sees no CUDA device; use 'cpu' or 'auto'")
    return name
