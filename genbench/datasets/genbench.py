"""The 22 GenBench datasets (Table 4 of the paper): concept group, real label set, CLIP prompt
templates, evaluation metric, task type and the sources each can be loaded from.

Sources are tried in the order listed: the torchvision layout (or the manual download for
licence-restricted data), then a local copy of the CLIP benchmark WebDataset mirror.

Where the kit departs from Table 4, on purpose (`category_total()` sums the classes):
- FER-2013 has 7 expression classes; Table 4 says 2.
- Caltech-101 has 102 classes, "background" included, as in the CLIP and VTAB versions whose
  6,085 test images Table 4 lists; Table 4 says 101. With both, the total is the paper's 2,548.
"""

from __future__ import annotations

from genbench.datasets import manual
from genbench.datasets.base import DatasetSpec
from genbench.datasets.label_sets import CLASSNAMES, TEMPLATES
from genbench.datasets.sources import Source, SourceLoader
from genbench.datasets.torchvision_source import CALTECH101, torchvision_source
from genbench.datasets.webdataset_source import HUB_ORG, webdataset_source

PAPER_CATEGORY_TOTAL = 2548  # the paper's text ("22 datasets with 2548 categories")

# registry name -> (name in the paper's tables, #categories in Table 4, validation size in Table 4)
TABLE4: dict[str, tuple[str, int, int]] = {
    "imagenet-1k": ("ImageNet-1K", 1000, 50000),
    "cifar-10": ("CIFAR-10", 10, 10000),
    "cifar-100": ("CIFAR-100", 100, 10000),
    "caltech-101": ("Caltech-101", 101, 6085),
    "voc-2007": ("VOC-2007", 20, 4952),
    "mnist": ("MNIST", 10, 10000),
    "sun-397": ("SUN-397", 397, 19850),
    "food-101": ("Food-101", 101, 25250),
    "oxford-pets": ("Oxford-IIIT Pets", 37, 3669),
    "oxford-flowers": ("Oxford Flowers", 102, 6149),
    "stanford-cars": ("Stanford Cars", 196, 8041),
    "fgvc-aircraft": ("FGVC-Aircraft", 100, 3333),
    "country-211": ("Country-211", 211, 21100),
    "patchcamelyon": ("PatchCamelyon", 2, 32768),
    "eurosat": ("EuroSAT", 10, 5000),
    "gtsrb": ("GTSRB", 43, 12630),
    "rendered-sst2": ("Rendered-SST2", 2, 1821),
    "fer-2013": ("FER-2013", 2, 3574),
    "resisc-45": ("RESISC-45", 45, 25200),
    "hateful-memes": ("Hateful Memes", 2, 500),
    "dtd": ("Desc. Textures", 47, 1880),
    "kitti-distance": ("KITTI Distance", 4, 711),
}


def _describe(sources: tuple[Source, ...]) -> str:
    parts = []
    for src in sources:
        if src.kind == "webdataset":
            parts.append(f"WebDataset {HUB_ORG}/{src.subdir}")
        else:
            parts.append(src.kind)
    return ", ".join(parts)


def _unique_aliases(name: str, aliases: tuple[str, ...]) -> tuple[str, ...]:
    """Aliases without repeats or the name itself, compared case-insensitively (as lookup is)."""
    seen, kept = {name.lower()}, []
    for alias in aliases:
        if alias.lower() not in seen:
            seen.add(alias.lower())
            kept.append(alias)
    return tuple(kept)


def _spec(name: str, group: str, metric: str, sources: tuple[Source, ...], aliases: tuple[str, ...] = (),
          task: str = "multiclass", notes: str = "", **extra) -> DatasetSpec:
    paper_name, paper_classes, paper_size = TABLE4[name]
    classnames = CLASSNAMES[name]
    return DatasetSpec(
        name=name,
        group=group,
        classnames=classnames,
        templates=TEMPLATES[name],
        metric=metric,
        loader=SourceLoader(name, classnames, sources),
        task=task,
        aliases=_unique_aliases(name, (paper_name, *aliases)),
        source=_describe(sources),
        notes=notes,
        extra={"paper_name": paper_name, "paper_num_classes": paper_classes, "paper_validation_size": paper_size,
               **extra},
    )


def _tv_wds(name: str, repo: str) -> tuple[Source, ...]:
    return torchvision_source(name), webdataset_source(name, repo)


GENBENCH: tuple[DatasetSpec, ...] = (
    _spec("imagenet-1k", "Common", "accuracy", (manual.IMAGENET, webdataset_source("imagenet-1k", "wds_imagenet1k")),
          aliases=("imagenet", "imagenet1k"),
          notes="Licence-restricted (ImageNet terms): manual download. Test split: ILSVRC2012 val (50,000)."),
    _spec("cifar-10", "Common", "accuracy", _tv_wds("cifar-10", "wds_cifar10"), aliases=("cifar10",)),
    _spec("cifar-100", "Common", "accuracy", _tv_wds("cifar-100", "wds_cifar100"), aliases=("cifar100",)),
    _spec("caltech-101", "Common", "mean_per_class",
          (CALTECH101, webdataset_source("caltech-101", "wds_vtab-caltech101")), aliases=("caltech101",),
          notes="102 classes (background + 101 objects) as in CLIP/VTAB, the version whose 6,085 test images "
                "Table 4 lists; Table 4 says 101. No official split: 30 seeded train images per class, rest test."),
    _spec("voc-2007", "Common", "map_11point", _tv_wds("voc-2007", "wds_voc2007_multilabel"),
          aliases=("voc2007", "voc 2007", "pascal-voc-2007", "voc-2007-classification"), task="multilabel",
          notes="Multi-label; test = VOC2007 test (4,952). A class is present when one of its objects is not "
                "marked difficult."),
    _spec("mnist", "Common", "accuracy", _tv_wds("mnist", "wds_mnist")),
    _spec("sun-397", "Common", "accuracy", _tv_wds("sun-397", "wds_sun397"), aliases=("sun397",),
          notes="torchvision's copy has no split: 50 seeded test images per class (19,850 = Table 4), rest train."),
    _spec("food-101", "Fine-grained", "accuracy", _tv_wds("food-101", "wds_food101"), aliases=("food101",)),
    _spec("oxford-pets", "Fine-grained", "mean_per_class", _tv_wds("oxford-pets", "wds_vtab-pets"),
          aliases=("pets", "oxford-iiit-pets", "oxford-iiit-pet"), notes="train = trainval (3,680), test = 3,669."),
    _spec("oxford-flowers", "Fine-grained", "mean_per_class", _tv_wds("oxford-flowers", "wds_vtab-flowers"),
          aliases=("flowers", "flowers102", "oxford-flower-102")),
    _spec("stanford-cars", "Fine-grained", "accuracy", _tv_wds("stanford-cars", "wds_cars"),
          aliases=("cars", "stanfordcars"),
          notes="torchvision can no longer download it (original URL gone): copy the release in by hand or use "
                "the WebDataset mirror."),
    _spec("fgvc-aircraft", "Fine-grained", "mean_per_class", _tv_wds("fgvc-aircraft", "wds_fgvc_aircraft"),
          aliases=("aircraft", "fgvc_aircraft", "fgvc aircraft"), notes="100 variants; train = trainval."),
    _spec("country-211", "Fine-grained", "accuracy", _tv_wds("country-211", "wds_country211"),
          aliases=("country211",)),
    _spec("patchcamelyon", "Rare", "accuracy", _tv_wds("patchcamelyon", "wds_vtab-pcam"),
          aliases=("pcam", "patch-camelyon"), notes="torchvision's copy needs h5py (pip install h5py)."),
    _spec("eurosat", "Rare", "accuracy", _tv_wds("eurosat", "wds_vtab-eurosat"),
          notes="torchvision's copy has no split: 500 seeded test images per class (5,000 = Table 4), rest train."),
    _spec("gtsrb", "Rare", "accuracy", _tv_wds("gtsrb", "wds_gtsrb")),
    _spec("rendered-sst2", "Rare", "accuracy", _tv_wds("rendered-sst2", "wds_renderedsst2"),
          aliases=("renderedsst2", "sst2")),
    _spec("fer-2013", "Rare", "accuracy", (manual.FER2013, webdataset_source("fer-2013", "wds_fer2013")),
          aliases=("fer2013", "fer 2013"),
          notes="7 expression classes; Table 4 says 2. Licence-restricted (Kaggle rules): manual download. "
                "Labels are the csv's emotion ids (0 angry .. 6 neutral). torchvision's test split of fer2013.csv "
                "is PublicTest+PrivateTest (7,178); Table 4 lists 3,574 (the CLIP paper's count)."),
    _spec("resisc-45", "Rare", "accuracy", (manual.RESISC45, webdataset_source("resisc-45", "wds_vtab-resisc45")),
          aliases=("resisc45", "nwpu-resisc45", "resisc45_clip"),
          notes="No torchvision class: the authors' release by hand (560 seeded test images per class = 25,200) "
                "or the WebDataset mirror."),
    _spec("hateful-memes", "Rare", "roc_auc", (manual.HATEFUL_MEMES,), aliases=("hatefulmemes",),
          notes="Licence-restricted (Meta): manual download. Label 1 = hateful ('hatespeech meme'), 0 = not "
                "hateful ('meme'), per the dataset's README; the paper's released code inverts them. ROC AUC "
                "scores class 1. Test = dev_seen (500).",
          positive_class=1),
    _spec("dtd", "Rare", "accuracy", _tv_wds("dtd", "wds_vtab-dtd"),
          aliases=("describable-textures", "describable textures", "textures"), notes="Partition 1."),
    _spec("kitti-distance", "Rare", "accuracy",
          (webdataset_source("kitti-distance", "wds_vtab-kitti_closest_vehicle_distance"),),
          aliases=("kitti", "kitti_closest_vehicle_distance", "kitti distance"),
          notes="VTAB closest-vehicle distance, labels as genbench.datasets.kitti defines them "
                "(0 <= 8 m, 1 8-20 m, 2 > 20 m, 3 no vehicle); test = VTAB's 711 images (WebDataset mirror)."),
)


def category_total() -> dict:
    """Classes summed over the 22 GenBench datasets, beside the paper's two totals: its text's
    2,548 and the sum of Table 4's column, with the datasets whose count differs from Table 4."""
    total = sum(spec.num_classes for spec in GENBENCH)
    table4_sum = sum(classes for _, classes, _ in TABLE4.values())
    differences = {
        spec.name: {"kit": spec.num_classes, "table4": TABLE4[spec.name][1]}
        for spec in GENBENCH
        if spec.num_classes != TABLE4[spec.name][1]
    }
    return {
        "datasets": len(GENBENCH),
        "total": total,
        "paper_text_total": PAPER_CATEGORY_TOTAL,
        "table4_sum": table4_sum,
        "difference_from_paper_text": total - PAPER_CATEGORY_TOTAL,
        "difference_from_table4_sum": total - table4_sum,
        "differences": differences,
    }
