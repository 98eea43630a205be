"""Datasets read through torchvision's dataset classes, from the layout torchvision downloads.

The classes are always called with `download=False`: a missing copy is reported with the exact
call that fetches it. Datasets without an official split (EuroSAT, SUN397, Caltech-101) get a
seeded per-class split (`sources.per_class_split`) whose sizes follow the CLIP paper's.

Labels are read from what a dataset object holds without decoding (its `targets`, `_labels` or
`_samples` lists; PatchCamelyon's label file; VOC's annotation XML); `ds[i]` decodes image i
only when it is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from genbench.datasets.access import SplitReader
from genbench.datasets.images import square_rgb
from genbench.datasets.sources import Source, class_folders_source, label_map, map_labels, per_class_split
from genbench.errors import GenBenchError


@dataclass(frozen=True)
class Recipe:
    """How one torchvision class is built and read. `build(root, split)` returns the dataset
    object; `select(dataset, split)` returns the indices of the split when the class has none;
    `names(dataset)` the class names the class reports, to check against the registry's;
    `targets(dataset)` every image's label as the class gives it, read without decoding."""

    marker: str | tuple[str, ...]
    build: Callable[[Path, str], Any]
    call: str
    select: Callable[[Any, str], np.ndarray] | None = None
    names: Callable[[Any], Sequence[str] | None] = lambda ds: getattr(ds, "classes", None)
    multilabel: bool = False
    targets: Callable[[Any], np.ndarray] = lambda ds: listed_targets(ds)


def listed_targets(ds) -> np.ndarray:
    """The label list torchvision dataset classes keep beside their file lists."""
    for attr in ("targets", "_labels"):
        if hasattr(ds, attr):
            return np.asarray(getattr(ds, attr), dtype=np.int64)
    for attr in ("_samples", "samples"):
        if hasattr(ds, attr):
            return np.asarray([sample[1] for sample in getattr(ds, attr)], dtype=np.int64)
    raise ValueError(f"{type(ds).__name__} keeps no label list (targets, _labels or _samples)")


def pcam_targets(ds) -> np.ndarray:
    """PatchCamelyon's labels, read from its `_y.h5` file (as `PCAM.__getitem__` reads them)."""
    import h5py

    with h5py.File(ds._base_folder / ds._FILES[ds._split]["targets"][0]) as targets:
        return np.asarray(targets["y"][:, 0, 0, 0], dtype=np.int64)


def voc_annotations(ds) -> list[dict]:
    """Every image's annotation, parsed from its XML file as `VOCDetection.__getitem__` does."""
    from xml.etree.ElementTree import parse

    return [ds.parse_voc_xml(parse(path).getroot()) for path in ds.annotations]


def tv_datasets():
    import torchvision.datasets as tvd

    from genbench.datasets.standin import accept_standin_files

    accept_standin_files()
    return tvd


def _train_test(split: str, train: str = "train", test: str = "test") -> str:
    return train if split == "train" else test


def _pcam(root: Path, split: str):
    try:
        import h5py  # noqa: F401
    except ImportError as exc:
        raise GenBenchError("PatchCamelyon's torchvision copy needs h5py: pip install h5py") from exc
    return tv_datasets().PCAM(str(root), split=split, download=False)


RECIPES: dict[str, Recipe] = {
    # registry name -> how torchvision reads it (paths relative to the data root)
    "cifar-10": Recipe(
        "cifar-10-batches-py/test_batch",
        lambda r, s: tv_datasets().CIFAR10(str(r), train=s == "train", download=False),
        "torchvision.datasets.CIFAR10(root='{location}', train=False, download=True)",
    ),
    "cifar-100": Recipe(
        "cifar-100-python/test",
        lambda r, s: tv_datasets().CIFAR100(str(r), train=s == "train", download=False),
        "torchvision.datasets.CIFAR100(root='{location}', train=False, download=True)",
    ),
    "mnist": Recipe(
        "MNIST/raw/t10k-images-idx3-ubyte",
        lambda r, s: tv_datasets().MNIST(str(r), train=s == "train", download=False),
        "torchvision.datasets.MNIST(root='{location}', train=False, download=True)",
    ),
    "food-101": Recipe(
        "food-101/meta/test.json",
        lambda r, s: tv_datasets().Food101(str(r), split=s, download=False),
        "torchvision.datasets.Food101(root='{location}', split='test', download=True)",
    ),
    "oxford-pets": Recipe(
        "oxford-iiit-pet/annotations/test.txt",
        lambda r, s: tv_datasets().OxfordIIITPet(str(r), split=_train_test(s, "trainval"), download=False),
        "torchvision.datasets.OxfordIIITPet(root='{location}', split='test', download=True)",
    ),
    "oxford-flowers": Recipe(
        "flowers-102/imagelabels.mat",
        lambda r, s: tv_datasets().Flowers102(str(r), split=s, download=False),
        "torchvision.datasets.Flowers102(root='{location}', split='test', download=True)",
    ),
    "stanford-cars": Recipe(
        "stanford_cars/cars_test_annos_withlabels.mat",
        lambda r, s: tv_datasets().StanfordCars(str(r), split=s, download=False),
        "torchvision cannot download it any more (the original URL is gone): put devkit/, cars_train/, "
        "cars_test/ and cars_test_annos_withlabels.mat of the Stanford Cars release in {location}/stanford_cars",
    ),
    "fgvc-aircraft": Recipe(
        "fgvc-aircraft-2013b/data/images_variant_test.txt",
        lambda r, s: tv_datasets().FGVCAircraft(str(r), split=_train_test(s, "trainval"), annotation_level="variant",
                                        download=False),
        "torchvision.datasets.FGVCAircraft(root='{location}', split='test', download=True)",
    ),
    "country-211": Recipe(
        "country211/test",
        lambda r, s: tv_datasets().Country211(str(r), split=s, download=False),
        "torchvision.datasets.Country211(root='{location}', split='test', download=True)",
    ),
    "patchcamelyon": Recipe(
        "pcam/camelyonpatch_level_2_split_test_x.h5",
        _pcam,
        "pip install h5py, then torchvision.datasets.PCAM(root='{location}', split='test', download=True)",
        names=lambda ds: None,
        targets=pcam_targets,
    ),
    "eurosat": Recipe(
        "eurosat/2750",
        lambda r, s: tv_datasets().EuroSAT(str(r), download=False),
        "torchvision.datasets.EuroSAT(root='{location}', download=True)",
        select=lambda ds, s: per_class_split(np.asarray(ds.targets), s, test_per_class=500),
    ),
    "gtsrb": Recipe(
        "gtsrb/GT-final_test.csv",
        lambda r, s: tv_datasets().GTSRB(str(r), split=s, download=False),
        "torchvision.datasets.GTSRB(root='{location}', split='test', download=True)",
        names=lambda ds: None,
    ),
    "rendered-sst2": Recipe(
        "rendered-sst2/test",
        lambda r, s: tv_datasets().RenderedSST2(str(r), split=s, download=False),
        "torchvision.datasets.RenderedSST2(root='{location}', split='test', download=True)",
    ),
    "dtd": Recipe(
        "dtd/dtd/labels/test1.txt",
        lambda r, s: tv_datasets().DTD(str(r), split=s, partition=1, download=False),
        "torchvision.datasets.DTD(root='{location}', split='test', download=True)",
    ),
    "sun-397": Recipe(
        "SUN397/ClassName.txt",
        lambda r, s: tv_datasets().SUN397(str(r), download=False),
        "torchvision.datasets.SUN397(root='{location}', download=True)",
        select=lambda ds, s: per_class_split(np.asarray(ds._labels), s, test_per_class=50),
    ),
    "voc-2007": Recipe(
        "VOCdevkit/VOC2007/ImageSets/Main/test.txt",
        lambda r, s: tv_datasets().VOCDetection(str(r), year="2007", image_set=_train_test(s, "trainval"), download=False),
        "torchvision.datasets.VOCDetection(root='{location}', year='2007', image_set='test', download=True)",
        names=lambda ds: None,
        multilabel=True,
        targets=voc_annotations,
    ),
}


def voc_multi_hot(annotation: dict, classnames: Sequence[str]) -> np.ndarray:
    """A VOC annotation (as torchvision parses the XML) -> multi-hot vector over `classnames`.
    A class is present when at least one of its objects is not marked difficult."""
    index = {name: i for i, name in enumerate(classnames)}
    row = np.zeros(len(classnames), dtype=np.int64)
    objects = annotation["annotation"].get("object", [])
    for obj in objects if isinstance(objects, list) else [objects]:
        if str(obj.get("difficult", "0")).strip() != "1":
            row[index[obj["name"]]] = 1
    return row


def open_recipe(recipe: Recipe, split: str, root: Path, size: int, classnames: Sequence[str],
                dataset: str) -> SplitReader:
    """The split's labels from the dataset object's lists; image i decoded by `ds[i]` on demand."""
    ds = recipe.build(root, split)
    indices = recipe.select(ds, split) if recipe.select is not None else np.arange(len(ds))
    targets = recipe.targets(ds)
    if recipe.multilabel:
        rows = [voc_multi_hot(targets[int(i)], classnames) for i in indices]
        labels = np.stack(rows) if rows else np.zeros((0, len(classnames)), dtype=np.int64)
    else:
        labels = map_labels(np.asarray(targets, dtype=np.int64)[indices], label_map(recipe.names(ds), classnames, dataset))

    def decode_one(j: int) -> np.ndarray:
        return square_rgb(ds[int(indices[j])][0], size)

    return SplitReader(labels=labels, decode_one=decode_one, image_size=size)


def recipe_source(recipe: Recipe, dataset: str, *, kind: str = "torchvision", subdir: str = "") -> Source:
    """A Source that reads `recipe` (`open_recipe`) from `<data root>/<subdir>`."""
    def open_split(split: str, location: Path, size: int, classnames: Sequence[str]) -> SplitReader:
        return open_recipe(recipe, split, location, size, classnames, dataset)

    return Source(kind=kind, subdir=subdir, marker=recipe.marker, open=open_split, how_to_get=recipe.call)


def torchvision_source(dataset: str) -> Source:
    return recipe_source(RECIPES[dataset], dataset)


# Caltech-101 in the layout torchvision downloads (caltech101/101_ObjectCategories/<class>/), read
# directly because torchvision's class leaves out the BACKGROUND_Google class that CLIP and VTAB
# keep. Split: 30 seeded training images per class, the rest test (CLIP's protocol).
CALTECH101 = class_folders_source(
    "caltech-101",
    kind="torchvision",
    subdir="",
    marker="caltech101/101_ObjectCategories",
    how_to_get="torchvision.datasets.Caltech101(root='{location}', download=True)",
    folder="caltech101/101_ObjectCategories",
    train_per_class=30,
)
