"""Dataset registry.

Contract: `DATASETS` maps a canonical name to its `DatasetSpec`; `get_dataset` also accepts any
alias, case-insensitively, and raises `GenBenchError` naming the known datasets otherwise.
"""

from __future__ import annotations

from genbench.datasets.base import DatasetSpec, LabeledImages
from genbench.datasets.digits import DIGITS
from genbench.datasets.genbench import GENBENCH, category_total
from genbench.errors import GenBenchError

DATASETS: dict[str, DatasetSpec] = {DIGITS.name: DIGITS, **{spec.name: spec for spec in GENBENCH}}


def _lookup() -> dict[str, DatasetSpec]:
    table = {}
    for spec in DATASETS.values():
        for key in (spec.name, *spec.aliases):
            table[key.lower()] = spec
    return table


def get_dataset(name: str) -> DatasetSpec:
    spec = _lookup().get(str(name).lower())
    if spec is None:
        raise GenBenchError(
            f"unknown dataset {name!r}; known datasets: {', '.join(sorted(DATASETS))} "
            "(run `genbench datasets` for the table)"
        )
    return spec


def register_image_folder(*args, **kwargs) -> DatasetSpec:
    """See `genbench.datasets.image_folder.register_image_folder`."""
    from genbench.datasets.image_folder import register_image_folder as register

    return register(*args, **kwargs)


__all__ = ["DATASETS", "GENBENCH", "DatasetSpec", "LabeledImages", "category_total", "get_dataset",
           "register_image_folder"]
