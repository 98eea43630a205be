"""Datasets read through torchvision's dataset classes, from the layout torchvision downloads.

The classes are always called with `download=False`: a missing copy is reported with the exact
call that fetches it. Datasets without an official split (EuroSAT, SUN397, Caltech-101) get a
seeded per-class split (`sources.per_class_split`) whose sizes follow the CLIP paper's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from genbench.datasets.base import LabeledImages
from genbench.datasets.images import square_rgb, stack_arrays
from genbench.datasets.sources import Source, label_map, per_class_split, read_class_folders, remap
from genbench.errors import GenBenchError


@dataclass(frozen=True)
class Recipe:
    """How one torchvision class is built and read. `build(root, split)` returns the dataset
    object; `select(dataset, split)` returns the indices of the split when the class has none;
    `names(dataset)` the class names the class reports, to check against the registry's."""

    marker: str | tuple[str, ...]
    build: Callable[[Path, str], Any]
    call: str
    select: Callable[[Any, str], np.ndarray] | None = None
    names: Callable[[Any], Sequence[str] | None] = lambda ds: getattr(ds, "classes", None)
    multilabel: bool = False


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


def read_recipe(recipe: Recipe, split: str, root: Path, size: int, classnames: Sequence[str],
                dataset: str) -> LabeledImages:
    ds = recipe.build(root, split)
    indices = recipe.select(ds, split) if recipe.select is not None else np.arange(len(ds))
    images, targets = [], []
    for i in indices:
        image, target = ds[int(i)]
        images.append(square_rgb(image, size))
        targets.append(target)
    stacked = stack_arrays(images, size)
    if recipe.multilabel:
        rows = [voc_multi_hot(t, classnames) for t in targets]
        labels = np.stack(rows) if rows else np.zeros((0, len(classnames)), dtype=np.int64)
        return LabeledImages(images=stacked, labels=labels)
    mapping = label_map(recipe.names(ds), classnames, dataset)
    return remap(stacked, np.asarray(targets, dtype=np.int64), mapping)


def torchvision_source(dataset: str) -> Source:
    recipe = RECIPES[dataset]

    def read(split: str, location: Path, size: int, classnames: Sequence[str]) -> LabeledImages:
        return read_recipe(recipe, split, location, size, classnames, dataset)

    return Source(kind="torchvision", subdir="", marker=recipe.marker, read=read, how_to_get=recipe.call)


def read_caltech101(split: str, location: Path, size: int, classnames: Sequence[str]) -> LabeledImages:
    """Caltech-101 in the layout torchvision downloads (caltech101/101_ObjectCategories/<class>/),
    read directly because torchvision's class leaves out the BACKGROUND_Google class that CLIP
    and VTAB keep. Split: 30 seeded training images per class, the rest test (CLIP's protocol)."""
    base = location / "caltech101" / "101_ObjectCategories"
    return read_class_folders(base, split, size, classnames, "caltech-101", train_per_class=30)


CALTECH101 = Source(
    kind="torchvision",
    subdir="",
    marker="caltech101/101_ObjectCategories",
    read=read_caltech101,
    how_to_get="torchvision.datasets.Caltech101(root='{location}', download=True)",
)
