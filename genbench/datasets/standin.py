"""Reading stand-in copies (`genbench.rehearsal.data`) through torchvision's own parsers.

torchvision compares a few local files with the MD5 sums of the published archives (CIFAR's
batches, Flowers-102's .mat files, FER-2013's csv), which a stand-in cannot match. With
GENBENCH_STANDIN_DATA=1 in the environment, as the rehearsal sets it, those comparisons only
check that the file exists; everything else torchvision reads as it always does. Unset, nothing
changes.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

STANDIN_ENV = "GENBENCH_STANDIN_DATA"
CHECKSUMMING_MODULES = ("torchvision.datasets.cifar", "torchvision.datasets.flowers102",
                        "torchvision.datasets.fer2013")


def file_exists(fpath: str | Path, md5: str | None = None) -> bool:
    """torchvision's `check_integrity` without the MD5 comparison."""
    return os.path.isfile(fpath)


def accept_standin_files() -> bool:
    """Follow GENBENCH_STANDIN_DATA: when 1, torchvision's checksumming dataset modules accept
    stand-in files; otherwise they check MD5 sums again. Returns whether the switch is on."""
    from torchvision.datasets.utils import check_integrity

    on = os.environ.get(STANDIN_ENV) == "1"
    for name in CHECKSUMMING_MODULES:
        module = importlib.import_module(name)
        if on:
            module.check_integrity = file_exists
        elif module.check_integrity is file_exists:
            module.check_integrity = check_integrity
    return on
