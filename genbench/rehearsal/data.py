"""Stand-in data for a dress rehearsal: every registered benchmark dataset written in the on-disk
layout its first source reads, and a caption pool in the layout `index.pool` reads.

A stand-in dataset has every class of the real label set and a few small synthetic images per
class and split (`genbench.rehearsal.painter`: a seeded stripe pattern per class, so classes are
separable). Where the dataset's reader splits by a fixed per-class rule, as many images are
written as the rule needs (`SPLIT_RULES`); the record says what the reader will see. Where the
rule forces more test images than asked (SUN-397, EuroSAT, RESISC-45), each class has at least
16 distinct images and its other files are hard links to them, which keeps writing fast.

torchvision compares a few local files with the published archives' MD5 sums; read stand-ins
with GENBENCH_STANDIN_DATA=1 (`genbench.datasets.standin`).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from genbench import storage
from genbench.datasets import GENBENCH, get_dataset
from genbench.datasets.sources import Source
from genbench.errors import GenBenchError
from genbench.rehearsal import download_layouts as dl
from genbench.rehearsal import torchvision_layouts as tv
from genbench.rehearsal.painter import Painter, encode
from genbench.rehearsal.plan import SPLITS, Plan

MARKER = "genbench-standin.json"  # written into every stand-in folder; only such folders are replaced

# registry name -> writer(plan, folder) of the layout the dataset's first source reads
WRITERS: dict[str, Callable[[Plan, Path], dict | None]] = {
    "imagenet-1k": tv.imagenet,
    "cifar-10": tv.cifar10,
    "cifar-100": tv.cifar100,
    "caltech-101": tv.caltech101,
    "voc-2007": tv.voc2007,
    "mnist": tv.mnist,
    "sun-397": tv.sun397,
    "food-101": tv.food101,
    "oxford-pets": tv.oxford_pets,
    "oxford-flowers": tv.oxford_flowers,
    "stanford-cars": tv.stanford_cars,
    "fgvc-aircraft": tv.fgvc_aircraft,
    "country-211": tv.country211,
    "patchcamelyon": tv.patchcamelyon,
    "eurosat": tv.eurosat,
    "gtsrb": tv.gtsrb,
    "rendered-sst2": tv.rendered_sst2,
    "fer-2013": dl.fer2013,
    "resisc-45": dl.resisc45,
    "hateful-memes": dl.hateful_memes,
    "dtd": tv.dtd,
    "kitti-distance": dl.webdataset_mirror,
}

# registry name -> (split, images per class) its reader fixes: Caltech-101 takes 30 seeded training
# images per class (torchvision_source.read_caltech101), SUN-397 and EuroSAT 50 and 500 test
# images per class (torchvision_source.RECIPES), RESISC-45 560 (manual.read_resisc45).
SPLIT_RULES: dict[str, tuple[str, int]] = {
    "caltech-101": ("train", 30),
    "sun-397": ("test", 50),
    "eurosat": ("test", 500),
    "resisc-45": ("test", 560),
}


def first_source(name: str) -> Source:
    return get_dataset(name).loader.sources[0]


def standin_folder(name: str, data_root: str | Path) -> Path:
    """The folder below the data root that holds the dataset's first source."""
    source = first_source(name)
    return Path(data_root) / (source.subdir or source.markers()[0].split("/")[0])


def _positive_int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise GenBenchError(f"{what} = {value!r} must be a positive integer")
    return int(value)


def _seed(value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise GenBenchError(f"stand-in seed = {value!r} must be a non-negative integer")
    return int(value)


def _per_split(name: str, train: int, test: int) -> tuple[dict[str, int], dict[str, int]]:
    """(images per class per split the reader will see, the splits a rule fixed)."""
    per_split = {"train": train, "test": test}
    if name not in SPLIT_RULES:
        return per_split, {}
    split, fixed = SPLIT_RULES[name]
    if per_split[split] > fixed:
        raise GenBenchError(f"{name}'s reader takes exactly {fixed} {split} images per class; "
                            f"ask for at most {fixed} {split} images per class, not {per_split[split]}")
    per_split[split] = fixed
    return per_split, {split: fixed}


def _claim(folder: Path) -> None:
    if folder.exists() and not (folder / MARKER).is_file():
        raise GenBenchError(f"{folder} exists and is not a stand-in (no {MARKER}); "
                            "choose an empty data root for stand-in data")


def _bytes_below(folder: Path, seen: set | None = None) -> int:
    """Bytes of the files below `folder`, each hard-linked file counted once."""
    seen = set() if seen is None else seen
    total = 0
    for entry in os.scandir(folder):
        if entry.is_dir(follow_symlinks=False):
            total += _bytes_below(Path(entry.path), seen)
            continue
        stat = entry.stat(follow_symlinks=False)
        if (stat.st_dev, stat.st_ino) not in seen:
            seen.add((stat.st_dev, stat.st_ino))
            total += stat.st_size
    return total


def write_standin_dataset(name: str, data_root: str | Path, *, train_per_class: int, test_per_class: int,
                          image_size: int, seed: int) -> dict:
    """Write a stand-in of dataset `name` below `data_root` in its first source's layout, replacing
    an earlier stand-in there; returns its record: name, layout (the source kind), path, images
    (files or entries the reader sees), linked (of those, hard links to a class's earlier images,
    where a split rule forced more than asked), bytes (on disk), per_class (label counts per split
    as the reader sees them; VOC: positives per class), forced (the splits a reader rule fixed)
    and seconds."""
    started = time.perf_counter()
    spec = get_dataset(name)
    if spec.name not in WRITERS:
        raise GenBenchError(f"dataset {name!r} has no stand-in; stand-ins exist for {', '.join(WRITERS)}")
    train = _positive_int(train_per_class, "train images per class")
    test = _positive_int(test_per_class, "test images per class")
    size = _positive_int(image_size, "stand-in image size")
    if size < 8:
        raise GenBenchError(f"stand-in image size = {size} must be at least 8 pixels")
    seed = _seed(seed)
    per_split, forced = _per_split(spec.name, train, test)
    folder = standin_folder(spec.name, data_root)
    _claim(folder)
    plan = Plan(spec.name, spec.classnames, per_split, size, Painter(spec.name, seed), spec.templates,
                requested={"train": train, "test": test})
    with storage.atomic_dir(folder) as tmp:
        counts = WRITERS[spec.name](plan, tmp) or {s: [per_split[s]] * plan.num_classes for s in SPLITS}
        record = {"name": spec.name, "layout": first_source(spec.name).kind, "path": str(folder),
                  "images": plan.images, "linked": plan.links, "per_class": counts, "forced": forced, "image_size": size, "seed": seed}
        (tmp / MARKER).write_text(json.dumps(record, indent=1) + "\n")
        record["bytes"] = _bytes_below(tmp)
    if spec.loader.available(Path(data_root)) is not first_source(spec.name):
        raise RuntimeError(f"stand-in of {spec.name} at {folder} is not what its first source looks for")
    record["seconds"] = round(time.perf_counter() - started, 3)
    return record


def write_standin_data(names: Sequence[str], data_root: str | Path, *, train_per_class: int, test_per_class: int,
                       image_size: int, seed: int) -> list[dict]:
    """`write_standin_dataset` for each name (a progress bar over datasets); the records in order."""
    names = [get_dataset(n).name for n in names]
    return [write_standin_dataset(n, data_root, train_per_class=train_per_class, test_per_class=test_per_class,
                                  image_size=image_size, seed=seed)
            for n in tqdm(names, desc="stand-in datasets", unit="dataset")]


ALL_DATASETS = tuple(spec.name for spec in GENBENCH)

# --- caption pool ---------------------------------------------------------------------------

POOL_LAYOUTS = ("parquet", "webdataset")
CLASS_CAPTIONS = ("{c}", "a photo of {c}", "{c} stock photo", "close-up of {c}", "my {c}", "picture of a {c}",
                  "{c} - high resolution image", "{c} in the wild", "vintage photograph: {c}", "the best {c} ever")
VAGUE_CAPTIONS = ("image", "untitled", "photo", "IMG_0042.JPG", "a picture", "click to enlarge", "wallpaper",
                  "free download")
UNRELATED_CAPTIONS = ("sunset over the ocean", "a bowl of soup on a wooden table", "abstract background texture",
                      "grey gradient", "blurry snapshot at night", "logo design template")
VAGUE_FRACTION = 0.1       # vague captions (naming nothing) per class caption
DISTRACTOR_FRACTION = 0.1  # images of no class per class caption: half captioned with a class name (spam), half unrelated
POOL_NOISE_STREAM = 2      # pool images share the classes' patterns but not the datasets' images


def _pool_records(names: list[str], per_class: int, size: int, seed: int) -> list[dict]:
    rng = np.random.default_rng([int(seed), 3])
    records, all_names = [], []
    for name in names:
        spec = get_dataset(name)
        painter = Painter(spec.name, seed, stream=POOL_NOISE_STREAM)
        for k, classname in enumerate(spec.classnames):
            all_names.append(classname)
            for _ in range(per_class):
                caption = CLASS_CAPTIONS[rng.integers(len(CLASS_CAPTIONS))].format(c=classname)
                records.append({"caption": caption, "image": painter.rgb(k, size), "dataset": spec.name,
                                "class_index": k, "class_name": classname, "kind": "class"})
    clutter = Painter("pool clutter", seed)
    class_items = len(records)
    for _ in range(math.ceil(VAGUE_FRACTION * class_items)):
        records.append({"caption": VAGUE_CAPTIONS[rng.integers(len(VAGUE_CAPTIONS))], "image": clutter.clutter(size),
                        "dataset": "", "class_index": -1, "class_name": "", "kind": "vague"})
    for n in range(math.ceil(DISTRACTOR_FRACTION * class_items)):
        caption = (CLASS_CAPTIONS[rng.integers(len(CLASS_CAPTIONS))].format(c=all_names[rng.integers(len(all_names))])
                   if n % 2 == 0 else UNRELATED_CAPTIONS[rng.integers(len(UNRELATED_CAPTIONS))])
        records.append({"caption": caption, "image": clutter.clutter(size), "dataset": "", "class_index": -1,
                        "class_name": "", "kind": "distractor"})
    return [records[i] for i in rng.permutation(len(records))]


def _pool_columns(chunk: list[dict], start: int, size: int) -> dict[str, list]:
    keys = [f"{start + j:09d}" for j in range(len(chunk))]
    return {"key": keys, "caption": [r["caption"] for r in chunk],
            "url": [f"https://standin.invalid/{k}.jpg" for k in keys],
            "width": [size] * len(chunk), "height": [size] * len(chunk), "status": ["success"] * len(chunk),
            "jpg": [encode(r["image"], "JPEG") for r in chunk],
            "dataset": [r["dataset"] for r in chunk], "class_index": [r["class_index"] for r in chunk],
            "class_name": [r["class_name"] for r in chunk],
            "kind": [r["kind"] for r in chunk]}


def _write_parquet_shard(path: Path, columns: dict[str, list]) -> None:
    table = pa.table({**columns, "jpg": pa.array(columns["jpg"], type=pa.binary())})
    pq.write_table(table, path)


def _write_tar_shard(path: Path, columns: dict[str, list]) -> None:
    import tarfile

    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for j, key in enumerate(columns["key"]):
            meta = {c: columns[c][j] for c in columns if c != "jpg"}
            for suffix, payload in (("jpg", columns["jpg"][j]), ("txt", columns["caption"][j].encode()),
                                    ("json", json.dumps(meta, sort_keys=True).encode())):
                dl._add(tar, f"{key}.{suffix}", payload)


def write_standin_pool(dataset_names: Sequence[str], pool_dir: str | Path, *, per_class: int, seed: int,
                       layout: str = "parquet", image_size: int = 32, shard_size: int = 10_000) -> dict:
    """Write a stand-in caption pool into `pool_dir` (replacing an earlier stand-in pool there):
    `per_class` captions naming each class of each dataset (the registry's class names, as the
    retrieval query uses them) with an image of that class, plus vague captions and distractors.
    Layout `parquet` is img2dataset's LAION output (shards 00000.parquet, ... with key, caption,
    url, width, height, status, jpg), `webdataset` its tar output (<key>.jpg/.txt/.json); extra
    columns dataset, class_index, class_name and kind (class, vague, distractor; -1 and '' where
    no class) say what each item is."""
    started = time.perf_counter()
    if layout not in POOL_LAYOUTS:
        raise GenBenchError(f"pool layout {layout!r} is not one of {', '.join(POOL_LAYOUTS)}")
    per_class = _positive_int(per_class, "pool captions per class")
    size = _positive_int(image_size, "pool image size")
    shard_size = _positive_int(shard_size, "pool shard size")
    seed = _seed(seed)
    names = [get_dataset(n).name for n in dataset_names]
    if not names:
        raise GenBenchError("a stand-in pool needs at least one dataset")
    pool_dir = Path(pool_dir)
    _claim(pool_dir)
    records = _pool_records(names, per_class, size, seed)
    write_shard, suffix = (_write_parquet_shard, "parquet") if layout == "parquet" else (_write_tar_shard, "tar")
    with storage.atomic_dir(pool_dir) as tmp:
        starts = range(0, len(records), shard_size)
        for shard, start in enumerate(tqdm(starts, desc="stand-in pool shards", unit="shard")):
            write_shard(tmp / f"{shard:05d}.{suffix}", _pool_columns(records[start:start + shard_size], start, size))
        kinds = {k: sum(r["kind"] == k for r in records) for k in ("class", "vague", "distractor")}
        record = {"layout": layout, "path": str(pool_dir), "datasets": names, "per_class": per_class,
                  "items": len(records), "class_items": kinds["class"], "vague": kinds["vague"],
                  "distractors": kinds["distractor"], "shards": len(starts), "image_size": size, "seed": seed}
        (tmp / MARKER).write_text(json.dumps(record, indent=1) + "\n")
        record["bytes"] = _bytes_below(tmp)
    record["seconds"] = round(time.perf_counter() - started, 3)
    return record
