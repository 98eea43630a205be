"""A user's own data as an image folder: `<root>/<split>/<class name>/<image>` (split: train, test;
images: .png, .jpg, .jpeg, .webp, .bmp, .ppm), registered under a name of the user's choice.

Folder names are matched to class names ignoring case, '_' and '/' ("golden_retriever" is the
class "golden retriever"); label i is the i-th class name. Without explicit class names, the
sorted folder names of the test split (else the train split) are the classes. A relative root is
taken from the current directory when the dataset is registered; the data root is not used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np

from genbench.datasets.access import SplitReader
from genbench.datasets.base import METRICS, DatasetSpec
from genbench.datasets.sources import Source, SourceLoader, image_file_decoder, normalise
from genbench.errors import GenBenchError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".ppm")
DEFAULT_TEMPLATES = ("a photo of a {c}.",)


def class_folders(root: Path) -> list[str]:
    """Sorted class folder names of the test split, else of the train split."""
    for split in ("test", "train"):
        split_dir = root / split
        if split_dir.is_dir():
            return sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    return []


def open_image_folder(split: str, location: Path, size: int, classnames: Sequence[str],
                      dataset: str) -> SplitReader:
    """The split's labels from its folder names; images decoded only when asked for."""
    split_dir = location / split
    if not split_dir.is_dir():
        raise GenBenchError(f"dataset {dataset!r}: image folder {location} has no {split!r} split ({split_dir} is missing)")
    index = {normalise(c): i for i, c in enumerate(classnames)}
    files, labels = [], []
    for folder in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        label = index.get(normalise(folder.name))
        if label is None:
            raise GenBenchError(
                f"dataset {dataset!r}: folder {folder} is not one of its classes ({', '.join(classnames[:5])}, ...); "
                "rename it or pass its name in classnames"
            )
        with os.scandir(folder) as entries:
            names = sorted(e.name for e in entries if os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES)
        files.extend(folder / n for n in names)
        labels.extend([label] * len(names))
    return SplitReader(labels=np.asarray(labels, dtype=np.int64), decode_one=image_file_decoder(files, size),
                       image_size=size)


def image_folder_spec(name: str, root: str | Path, classnames: Sequence[str] | None = None,
                      templates: Sequence[str] | None = None, metric: str = "accuracy") -> DatasetSpec:
    """The DatasetSpec of an image folder (not registered; see `register_image_folder`)."""
    root = Path(root).expanduser().resolve()
    if metric not in METRICS:
        raise GenBenchError(f"metric {metric!r} of dataset {name!r} is not one of {', '.join(METRICS)}")
    templates = tuple(templates) if templates else DEFAULT_TEMPLATES
    bad = [t for t in templates if "{c}" not in t]
    if bad:
        raise GenBenchError(f"template {bad[0]!r} of dataset {name!r} has no '{{c}}' placeholder for the class name")
    if classnames is None:
        classnames = class_folders(root)
        if not classnames:
            raise GenBenchError(
                f"image folder {root} for dataset {name!r} has no test/<class>/ or train/<class>/ folders; "
                "create them or pass classnames"
            )
    classnames = tuple(str(c) for c in classnames)
    if len({normalise(c) for c in classnames}) != len(classnames):
        raise GenBenchError(f"class names of dataset {name!r} repeat (ignoring case and '_'): {classnames}")

    def open_split(split: str, location: Path, size: int, names: Sequence[str]) -> SplitReader:
        return open_image_folder(split, location, size, names, name)

    source = Source(
        kind="image_folder",
        subdir=str(root),
        marker="test",
        open=open_split,
        how_to_get="create {location}/test/<class name>/ (and train/) folders of images",
    )
    return DatasetSpec(
        name=name,
        group="Custom",
        classnames=classnames,
        templates=templates,
        metric=metric,
        loader=SourceLoader(name, classnames, [source]),
        source=f"image folder {root}",
        notes="registered by the user",
    )


def register_image_folder(name: str, root: str | Path, classnames: Sequence[str] | None = None,
                          templates: Sequence[str] | None = None, metric: str = "accuracy") -> DatasetSpec:
    """Add an image-folder dataset to the registry under `name` (replacing an image folder of
    the same name, never a built-in dataset) and return its spec."""
    from genbench.datasets import DATASETS, get_dataset

    if not isinstance(name, str) or not name.strip():
        raise GenBenchError(f"image folder dataset name {name!r} must be a non-empty string")
    try:
        existing = get_dataset(name)
    except GenBenchError:
        existing = None
    if existing is not None and existing.group != "Custom":
        raise GenBenchError(f"dataset name {name!r} is taken by the built-in dataset {existing.name!r}; choose another")
    if existing is not None:
        DATASETS.pop(existing.name, None)
    spec = image_folder_spec(name, root, classnames, templates, metric)
    DATASETS[spec.name] = spec
    return spec
