"""Datasets a user downloads by hand: ImageNet-1K, FER-2013 and Hateful Memes (licence-restricted)
and RESISC-45 (distributed by its authors through a file-sharing link, no torchvision class).

Each source reads the files as their publishers distribute them, below the data root.

RESISC-45 (NWPU-RESISC45/<class>/*.jpg, 700 images per class) has no official split: 560 seeded
test images per class (25,200, Table 4's validation size, the CLIP paper's test size), the other
140 per class are train.

Hateful Memes labels follow the dataset's own documentation (the README shipped with the data:
`label` is 1 for a hateful meme and 0 for a non-hateful one), so label id 1 is the registry's
"hatespeech meme" and 0 is "meme". The GenBench paper's released packing code inverts them.
The "test" split is dev_seen.jsonl (500 memes, Table 4's validation size); "train" is train.jsonl.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np

from genbench.datasets.access import SplitReader
from genbench.datasets.sources import Source, class_folders_source, image_file_decoder
from genbench.datasets.torchvision_source import Recipe, recipe_source, tv_datasets
from genbench.errors import GenBenchError

HATEFUL_MEMES_LABELS = {0: "not hateful", 1: "hateful"}
HATEFUL_MEMES_FILES = {"train": "train.jsonl", "test": "dev_seen.jsonl"}


def open_hateful_memes(split: str, location: Path, size: int, classnames: Sequence[str]) -> SplitReader:
    """Labels from the jsonl file; each meme's image decoded when asked for."""
    path = location / HATEFUL_MEMES_FILES[split]
    if not path.is_file():
        raise GenBenchError(f"dataset 'hateful-memes': {path} is missing; unpack the full release into {location}")
    files, labels = [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        row = json.loads(line)
        if "label" not in row:
            raise GenBenchError(f"dataset 'hateful-memes': line {number} of {path} has no label")
        label = int(row["label"])
        if label not in HATEFUL_MEMES_LABELS:
            raise GenBenchError(f"dataset 'hateful-memes': line {number} of {path} has label {label}, expected 0 or 1")
        files.append(location / row["img"])
        labels.append(label)
    return SplitReader(labels=np.asarray(labels, dtype=np.int64), decode_one=image_file_decoder(files, size),
                       image_size=size)


HATEFUL_MEMES = Source(
    kind="manual",
    subdir="hateful_memes",
    marker="dev_seen.jsonl",
    open=open_hateful_memes,
    how_to_get="licensed by Meta for research use: request it at https://hatefulmemeschallenge.com "
    "(or accept the terms of a gated copy on the Hugging Face hub) and unpack it so that "
    "{location}/dev_seen.jsonl, {location}/train.jsonl and {location}/img/ exist",
)

RESISC45 = class_folders_source(
    "resisc-45",
    kind="manual",
    subdir="NWPU-RESISC45",
    marker="airplane",
    test_per_class=560,
    how_to_get="download NWPU-RESISC45.rar, the authors' release (linked from TensorFlow Datasets' "
    "resisc45 page, https://www.tensorflow.org/datasets/catalog/resisc45), and unpack it so that "
    "{location}/<class>/*.jpg exist",
)

_IMAGENET = Recipe(
    marker=("meta.bin", "ILSVRC2012_devkit_t12.tar.gz"),
    build=lambda r, s: tv_datasets().ImageNet(str(r), split="train" if s == "train" else "val"),
    call="accept the terms at https://image-net.org/download-images, download ILSVRC2012_devkit_t12.tar.gz and "
    "ILSVRC2012_img_val.tar (ILSVRC2012_img_train.tar for the train split) into {location}; "
    "torchvision.datasets.ImageNet unpacks them on first use",
    names=lambda ds: None,
)

_FER2013 = Recipe(
    marker=("fer2013/fer2013.csv", "fer2013/icml_face_data.csv"),
    build=lambda r, s: tv_datasets().FER2013(str(r), split=s),
    call="sign in to Kaggle, accept the rules of https://www.kaggle.com/c/"
    "challenges-in-representation-learning-facial-expression-recognition-challenge and put fer2013.csv "
    "(inside fer2013.tar.gz) or icml_face_data.csv in {location}/fer2013",
    names=lambda ds: None,
)


IMAGENET = recipe_source(_IMAGENET, "imagenet-1k", kind="manual", subdir="imagenet")
FER2013 = recipe_source(_FER2013, "fer-2013", kind="manual")
