"""WebDataset tars read sample by sample.

A WebDataset tar keeps a sample's members together: a sample is a run of consecutive file
members whose names share a key, and the rest of each name (its extension) tells the members
apart. How a key is cut from a member name is the reader's (`key_of`): the pool and the CLIP
benchmark mirrors cut it differently.
"""

from __future__ import annotations

import tarfile
from typing import Callable, Iterator

# member name -> (sample key, extension), or None to skip the member
KeyOf = Callable[[str], "tuple[str, str] | None"]


def tar_samples(tar: tarfile.TarFile, key_of: KeyOf) -> Iterator[tuple[str, list[tuple[str, tarfile.TarInfo]]]]:
    """(key, [(extension, member), ...]) per sample of `tar`, in archive order; directories and
    other non-file members, and names `key_of` maps to None, are skipped."""
    current, members = None, []
    for info in tar:
        if not info.isfile():
            continue
        parsed = key_of(info.name)
        if parsed is None:
            continue
        key, extension = parsed
        if key != current and current is not None:
            yield current, members
            members = []
        current = key
        members.append((extension, info))
    if current is not None:
        yield current, members
