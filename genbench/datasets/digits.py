"""The embedded default: scikit-learn's handwritten digits (1,797 real 8x8 greyscale scans of
10 classes, shipped inside scikit-learn, so it needs no download).

The split is fixed: a stratified 70/30 train/test split with seed 0 (1,257 train, 540 test).
Images are scaled from 0..16 to 0..255, resized bilinearly to the requested size and repeated
over three channels.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from genbench.datasets.access import ReaderLoader, SplitReader
from genbench.datasets.base import DatasetSpec, LabeledImages

SPLIT_SEED = 0
TEST_FRACTION = 0.3

CLASSNAMES = tuple(str(d) for d in range(10))
TEMPLATES = (
    "a photo of the digit {c}.",
    "a photo of the number {c}.",
    "a handwritten digit {c}.",
    "a black and white photo of the digit {c}.",
    "a blurry photo of the number {c}.",
    "a scan of a handwritten {c}.",
)


@lru_cache(maxsize=1)
def _split_indices() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    labels = load_digits().target
    train, test = train_test_split(
        np.arange(len(labels)), test_size=TEST_FRACTION, stratify=labels, random_state=SPLIT_SEED
    )
    return {"train": np.sort(train), "test": np.sort(test)}


def to_rgb(images8: np.ndarray, size: int) -> np.ndarray:
    """(N, 8, 8) floats in 0..16 -> (N, size, size, 3) uint8."""
    out = np.empty((len(images8), size, size, 3), dtype=np.uint8)
    for i, img in enumerate(images8):
        grey = Image.fromarray(np.clip(img * (255.0 / 16.0), 0, 255).round().astype(np.uint8), mode="L")
        out[i] = np.asarray(grey.resize((size, size), Image.BILINEAR))[..., None]
    return out


def open_digits(split: str, root: Path, image_size: int) -> SplitReader:
    """The split's labels; images scaled from the 8x8 scans when asked for."""
    from sklearn.datasets import load_digits

    idx = _split_indices()[split]
    digits = load_digits()
    scans = digits.images[idx]
    return SplitReader(labels=digits.target[idx].astype(np.int64),
                       decode_one=lambda i: to_rgb(scans[i : i + 1], image_size)[0], image_size=image_size)


def load(split: str, root: Path, image_size: int) -> LabeledImages:
    """The whole split in memory."""
    return open_digits(split, root, image_size).load()


DIGITS = DatasetSpec(
    name="digits",
    group="Embedded",
    classnames=CLASSNAMES,
    templates=TEMPLATES,
    metric="accuracy",
    loader=ReaderLoader(open_digits),
    aliases=("sklearn-digits",),
    source="scikit-learn (sklearn.datasets.load_digits), shipped with the package",
    notes="Embedded default: real 8x8 handwritten digit scans, upscaled; closest paper dataset: MNIST.",
)
