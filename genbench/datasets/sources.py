"""Where a dataset's images come from, and the loader that tries its sources in turn.

A `Source` is one on-disk copy of a dataset below the data root (a torchvision layout, a CLIP
benchmark WebDataset mirror, a manual download, an image folder). `SourceLoader` is the
`Loader` of every registered benchmark dataset: it opens the first source present and, when
none is, raises one `GenBenchError` naming the dataset, each place it looked and how to get it.
Sources open a split label first (`access.SplitReader`): labels without decoding, then only the
images asked for.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from genbench.datasets.access import SplitReader
from genbench.datasets.base import LabeledImages
from genbench.datasets.images import square_rgb
from genbench.errors import GenBenchError

SPLITS = ("train", "test")
READ_ERRORS = (OSError, RuntimeError, ValueError, KeyError, EOFError)

# open(split, location, image_size, classnames) -> SplitReader, labels in the registry's class order
SourceOpener = Callable[[str, Path, int, Sequence[str]], SplitReader]


@dataclass(frozen=True)
class Source:
    """One copy of a dataset: `subdir` below the data root, present when `subdir/marker` (or one of
    several markers) exists. `how_to_get` tells a user how to put it there; `{location}` in it
    becomes the full path of `subdir`."""

    kind: str
    subdir: str
    marker: str | tuple[str, ...]
    open: SourceOpener
    how_to_get: str

    def location(self, root: Path) -> Path:
        return Path(root) / self.subdir

    def markers(self) -> tuple[str, ...]:
        return (self.marker,) if isinstance(self.marker, str) else tuple(self.marker)

    def available(self, root: Path) -> bool:
        return any((self.location(root) / m).exists() for m in self.markers())

    def hint(self, root: Path) -> str:
        where = " or ".join(str(self.location(root) / m) for m in self.markers())
        return f"a {self.kind} copy at {where} (to get it: {self.how_to_get.format(location=self.location(root))})"


class SourceLoader:
    """The loader of a registered dataset: (split, root, image_size) -> LabeledImages."""

    def __init__(self, dataset: str, classnames: Sequence[str], sources: Sequence[Source]):
        self.dataset = dataset
        self.classnames = tuple(classnames)
        self.sources = tuple(sources)

    def available(self, root: Path) -> Source | None:
        return next((src for src in self.sources if src.available(Path(root))), None)

    def open(self, split: str, root: Path, image_size: int) -> SplitReader:
        """The split's label-first reader; a copy that cannot be read, now or when an image is
        decoded later, is one `GenBenchError` saying how to replace it."""
        if split not in SPLITS:
            raise GenBenchError(f"split {split!r} of dataset {self.dataset!r} does not exist; use one of {SPLITS}")
        if not isinstance(image_size, int) or image_size <= 0:
            raise GenBenchError(f"image size {image_size!r} must be a positive integer")
        source = self.available(Path(root))
        if source is None:
            raise GenBenchError(self.missing_message(Path(root)))
        location = source.location(Path(root))
        with self._reported(source, location):
            reader = source.open(split, location, image_size, self.classnames)

        def decode_one(i: int) -> np.ndarray:
            with self._reported(source, location):
                return reader.decode_one(i)

        return SplitReader(labels=reader.labels, decode_one=decode_one, image_size=reader.image_size)

    def __call__(self, split: str, root: Path, image_size: int) -> LabeledImages:
        return self.open(split, root, image_size).load()

    @contextmanager
    def _reported(self, source: Source, location: Path):
        try:
            yield
        except GenBenchError:
            raise
        except READ_ERRORS as exc:
            first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise GenBenchError(
                f"dataset {self.dataset!r}: the {source.kind} copy at {location} could not be read ({first_line}); "
                f"replace it with a complete copy: {source.how_to_get.format(location=location)}"
            ) from exc

    def missing_message(self, root: Path) -> str:
        looked = "; or ".join(src.hint(root) for src in self.sources)
        return f"dataset {self.dataset!r} is not available under data root {root}: expected {looked}"


def normalise(name: str) -> str:
    """Class-name key for matching a source's names to the registry's: case, '_' and '/' ignored."""
    return re.sub(r"\s+", " ", re.sub(r"[_/]", " ", str(name))).strip().lower()


def label_map(source_names: Sequence[str] | None, classnames: Sequence[str], dataset: str) -> np.ndarray:
    """Index array turning a source's label ids into the registry's.

    Same names in the same order, or no names: identity. The same set of names in another order:
    mapped by name. Otherwise, the same number of classes: identity, as both follow the dataset's
    own label ids (e.g. torchvision's "0 - zero" for MNIST's "0", EuroSAT's "AnnualCrop").
    """
    n = len(classnames)
    if source_names is None:
        return np.arange(n)
    src = [normalise(s) for s in source_names]
    ours = [normalise(c) for c in classnames]
    if src == ours:
        return np.arange(n)
    index = {name: i for i, name in enumerate(ours)}
    if len(index) == n == len(src) and set(src) == set(index):
        return np.array([index[s] for s in src])
    if len(src) == n:
        return np.arange(n)
    raise GenBenchError(
        f"dataset {dataset!r}: the source lists {len(src)} classes ({', '.join(source_names[:3])}, ...) "
        f"but the registry has {n}; use a complete copy of the dataset"
    )


def per_class_split(labels: np.ndarray, split: str, *, test_per_class: int | None = None,
                    train_per_class: int | None = None, seed: int = 0) -> np.ndarray:
    """Sorted indices of `split` for datasets without an official split: within each class (in
    label order) a seeded permutation, the first `test_per_class` (or all but the first
    `train_per_class`) images go to test, the rest to train."""
    if (test_per_class is None) == (train_per_class is None):
        raise ValueError("give exactly one of test_per_class, train_per_class")
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    chosen = []
    for c in np.unique(labels):
        perm = rng.permutation(np.flatnonzero(labels == c))
        if test_per_class is not None:
            test, train = perm[:test_per_class], perm[test_per_class:]
        else:
            train, test = perm[:train_per_class], perm[train_per_class:]
        chosen.append(test if split == "test" else train)
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def map_labels(labels: np.ndarray, mapping: np.ndarray) -> np.ndarray:
    """Apply a `label_map` to single-label ids."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= len(mapping)):
        raise GenBenchError(f"label {int(labels.max())} is outside the {len(mapping)} classes of the dataset")
    return mapping[labels].astype(np.int64)


def remap(images: np.ndarray, labels: np.ndarray, mapping: np.ndarray) -> LabeledImages:
    """Apply a `label_map` to single-label data."""
    return LabeledImages(images=images, labels=map_labels(labels, mapping))


def image_file_decoder(files: Sequence[Path], size: int):
    """decode(i) of a list of image files: the i-th file, square and resized (`square_rgb`)."""
    from PIL import Image

    def decode_one(i: int) -> np.ndarray:
        with Image.open(files[i]) as image:
            return square_rgb(image, size)

    return decode_one


def open_class_folders(base: Path, split: str, size: int, classnames: Sequence[str], dataset: str,
                       **split_sizes: int) -> SplitReader:
    """`<base>/<class>/*.jpg` without an official split: the sorted folders are the label ids and
    `per_class_split(..., **split_sizes)` picks the split's images; labels come from the paths."""
    folders = sorted(p for p in base.iterdir() if p.is_dir())
    files, labels = [], []
    for label, folder in enumerate(folders):
        for path in sorted(folder.glob("*.jpg")):
            files.append(path)
            labels.append(label)
    labels = np.asarray(labels, dtype=np.int64)
    chosen = per_class_split(labels, split, **split_sizes)
    mapping = label_map([f.name for f in folders], classnames, dataset)
    return SplitReader(labels=map_labels(labels[chosen], mapping),
                       decode_one=image_file_decoder([files[i] for i in chosen], size), image_size=size)


def class_folders_source(dataset: str, *, kind: str, subdir: str, marker: str, how_to_get: str, folder: str = "",
                         **split_sizes: int) -> Source:
    """A Source of `<location>/<folder>/<class>/*.jpg`, read by `open_class_folders` with `split_sizes`."""
    def open_split(split: str, location: Path, size: int, classnames: Sequence[str]) -> SplitReader:
        return open_class_folders(location / folder, split, size, classnames, dataset, **split_sizes)

    return Source(kind=kind, subdir=subdir, marker=marker, open=open_split, how_to_get=how_to_get)
